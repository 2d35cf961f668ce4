"""One entry point for every clustering method over an embedding matrix."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.constraints import Constraints
from rbv.cluster.density import hdbscan, immich_baseline
from rbv.cluster.knn import DEFAULT_K, KnnGraph, build_knn_graph
from rbv.cluster.linkage import agglomerative, connected_components
from rbv.errors import ConfigError

DEFAULT_THRESHOLD = 0.65
"""Cosine similarity users know from buffalo_l; packs may carry a calibrated one."""


class Method(StrEnum):
    """How faces are grouped."""

    connected = "connected"
    agglomerative = "agglomerative"
    hdbscan = "hdbscan"


def cluster_embeddings(
    embeddings: NDArray[np.floating],
    method: Method,
    threshold: float,
    constraints: Constraints | None = None,
    *,
    graph: KnnGraph | None = None,
    k: int = DEFAULT_K,
) -> NDArray[np.int64]:
    """Labels ``0..m-1`` for the rows of ``embeddings`` (every face gets one)."""
    n = len(embeddings)
    if n == 0:
        return np.empty(0, np.int64)
    graph = graph if graph is not None else build_knn_graph(embeddings, k)
    if method is Method.connected:
        return connected_components(graph, threshold, constraints)
    if method is Method.agglomerative:
        return agglomerative(embeddings, graph, threshold, constraints)
    if method is Method.hdbscan:
        return hdbscan(graph, threshold, constraints)
    raise ValueError(f"unknown method {method!r}")


def baseline_labels(
    embeddings: NDArray[np.floating], threshold: float, *, graph: KnnGraph | None = None,
    k: int = DEFAULT_K,
) -> NDArray[np.int64]:
    """The Immich-style baseline on the same embeddings (for ``rbv eval``)."""
    if len(embeddings) == 0:
        return np.empty(0, np.int64)
    return immich_baseline(graph if graph is not None else build_knn_graph(embeddings, k),
                           threshold)


def resolve_threshold(settings: dict[str, Any], method: Method,
                      given: float | None) -> tuple[float, str]:
    """The threshold to use and where it came from."""
    if given is not None:
        if not 0.0 < given < 1.0:
            raise ConfigError(f"--threshold must be between 0 and 1 (got {given})")
        return given, "--threshold"
    stored = (settings.get("thresholds") or {}).get(method.value)
    if stored is not None:
        return float(stored), "the pack's calibrated value"
    return DEFAULT_THRESHOLD, ("buffalo_l's default; calibrate this pack with "
                               "`rbv eval --calibrate --store`")

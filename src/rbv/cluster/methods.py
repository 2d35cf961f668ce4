"""One entry point for every clustering method over an embedding matrix."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.constraints import Constraints
from rbv.cluster.defaults import DEFAULT_THRESHOLD, Method
from rbv.cluster.density import hdbscan, immich_baseline
from rbv.cluster.evidence import (
    DEFAULT_BUDGET,
    ImpostorModel,
    evidence_linkage,
    random_pair_similarities,
)
from rbv.cluster.knn import DEFAULT_K, KnnGraph, build_knn_graph
from rbv.cluster.linkage import agglomerative, connected_components

__all__ = ["DEFAULT_THRESHOLD", "Method", "baseline_labels", "cluster_embeddings"]


def cluster_embeddings(
    embeddings: NDArray[np.floating],
    method: Method,
    threshold: float,
    constraints: Constraints | None = None,
    *,
    graph: KnnGraph | None = None,
    k: int = DEFAULT_K,
    impostor: ImpostorModel | None = None,
    budget: float = DEFAULT_BUDGET,
    n_library: int | None = None,
) -> NDArray[np.int64]:
    """Labels ``0..m-1`` for the rows of ``embeddings`` (every face gets one).

    ``threshold`` is the similarity of the threshold methods; ``evidence`` ignores it and
    takes ``impostor`` (estimated from ``embeddings`` when None), ``budget`` and
    ``n_library`` (the library's size, when ``embeddings`` are part of it)."""
    n = len(embeddings)
    if n == 0:
        return np.empty(0, np.int64)
    graph = graph if graph is not None else build_knn_graph(embeddings, k)
    if method is Method.evidence:
        if impostor is None:
            ids = np.arange(n, dtype=np.int64)
            impostor = ImpostorModel.from_library_pairs(
                random_pair_similarities(embeddings, ids))
        return evidence_linkage(embeddings, graph, impostor, budget, constraints,
                                n_library=n_library)
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

"""The merge-suggestion ranking as it was before issue #22, for the scripts' baselines:
candidate pairs from a k-NN graph over every face (each face's 10 nearest faces; a pair
of persons is a candidate when one edge joins them, its best pair the best such edge),
scored by the same calibrated score as rbv.cluster.suggestions."""

from __future__ import annotations

import math
from collections.abc import Collection

import numpy as np
from numpy.typing import NDArray
from scipy.special import log_ndtr

from rbv.cluster.defaults import ImpostorModel
from rbv.cluster.knn import build_knn_graph, normalize
from rbv.cluster.suggestions import MergeSuggestion

CANDIDATE_K = 10


def face_knn_suggest_merges(embeddings: NDArray[np.floating], persons: NDArray[np.int64],
                   image_ids: NDArray[np.int64], model: ImpostorModel, *,
                   forbidden: Collection[tuple[int, int]] = (),
                   k: int = CANDIDATE_K, limit: int | None = None) -> list[MergeSuggestion]:
    """Ranked merge suggestions among the persons of the rows (``persons``: a code
    ``0..P-1`` per row, ``-1`` for a face with no person). ``forbidden``: person pairs
    ``(a, b)`` with ``a < b`` that a user told apart (never suggested). Strongest first;
    at most ``limit``."""
    forbidden = set(forbidden)
    assigned = np.flatnonzero(persons >= 0)
    if len(assigned) < 2:
        return []
    x = normalize(embeddings[assigned]).astype(np.float64)
    code = persons[assigned].astype(np.int64)
    images = image_ids[assigned].astype(np.int64)
    p_count = int(code.max()) + 1
    sums = np.zeros((p_count, x.shape[1]))
    np.add.at(sums, code, x)
    sizes = np.bincount(code, minlength=p_count).astype(np.float64)
    cohesion = np.einsum("ij,ij->i", sums, sums) / np.maximum(sizes, 1.0) ** 2
    pairs, best, best_rows = _candidate_pairs(x, code, k)
    if len(pairs) == 0:
        return []
    keep = ~_share_a_photo(pairs, code, images)
    if forbidden:
        keep &= np.array([(a, b) not in forbidden for a, b in pairs.tolist()], bool)
    pairs, best, best_rows = pairs[keep], best[keep], best_rows[keep]
    a, b = pairs[:, 0], pairs[:, 1]
    mean = np.einsum("ij,ij->i", sums[a], sums[b]) / (sizes[a] * sizes[b])
    z = (mean - model.mu) / np.sqrt(model.sigma ** 2 * cohesion[a] * cohesion[b]
                                    + model.tau ** 2)
    z_pair = (best - model.mu) / math.sqrt(model.sigma ** 2 + model.tau ** 2)
    log_mean = log_ndtr(-z)
    log_pair = np.minimum(np.log(sizes[a] * sizes[b]) + log_ndtr(-z_pair), 0.0)
    log_chance = np.minimum(np.log(2.0) + np.minimum(log_mean, log_pair), 0.0)
    person_pairs = max(p_count * (p_count - 1) / 2.0, 1.0)
    log_expected = log_chance + math.log(person_pairs)
    probability = 1.0 / (1.0 + np.exp(np.minimum(log_expected, 700.0)))
    order = np.lexsort((b, a, log_chance))
    if limit is not None:
        order = order[:limit]
    rows = assigned
    return [MergeSuggestion(int(a[i]), int(b[i]), float(probability[i]),
                            float(log_chance[i] / math.log(10.0)), float(mean[i]), float(z[i]),
                            float(best[i]),
                            (int(rows[best_rows[i, 0]]), int(rows[best_rows[i, 1]])))
            for i in order.tolist()]


def _candidate_pairs(x: NDArray[np.float64], code: NDArray[np.int64], k: int
                     ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.int64]]:
    """Person pairs ``(a < b)`` joined by a k-NN edge between their faces, each with its
    best edge's similarity and rows (a's row first)."""
    graph = build_knn_graph(x.astype(np.float32), k)
    u, v, sim = graph.edges()
    cu, cv = code[u], code[v]
    cross = cu != cv
    u, v, sim, cu, cv = u[cross], v[cross], sim[cross], cu[cross], cv[cross]
    swap = cu > cv
    u, v = np.where(swap, v, u), np.where(swap, u, v)
    cu, cv = np.minimum(cu, cv), np.maximum(cu, cv)
    key = cu * (int(code.max()) + 1) + cv
    # edges() is sorted by similarity, highest first: a pair's first edge is its best.
    _, first = np.unique(key, return_index=True)
    pairs = np.stack([cu[first], cv[first]], axis=1)
    return pairs, sim[first].astype(np.float64), np.stack([u[first], v[first]], axis=1)


def _share_a_photo(pairs: NDArray[np.int64], code: NDArray[np.int64],
                   images: NDArray[np.int64]) -> NDArray[np.bool_]:
    """Per pair: do the two persons have faces in one photo?"""
    by_person: dict[int, set[int]] = {}
    for c, img in zip(code.tolist(), images.tolist(), strict=True):
        by_person.setdefault(c, set()).add(img)
    return np.array([not by_person[a].isdisjoint(by_person[b]) for a, b in pairs.tolist()],
                    bool)

"""Merge suggestions: pairs of persons that are probably one person, ranked by how
unlikely their likeness would be between two different people.

Evidence for persons A and B (unit embeddings, sums ``S``, sizes ``n``, cohesion
``c = |S|² / n²``), under the recognizer's impostor model (mean ``mu``, spreads
``sigma`` and ``tau``, see :mod:`rbv.cluster.evidence`):

* centroids: the average cross similarity ``m = <S_A, S_B> / (n_A n_B)`` and its
  ``z = (m − mu) / sqrt(sigma² c_A c_B + tau²)``, the statistic evidence linkage merges
  on; its chance under the impostor model is ``Φ(−z)``;
* best face pair: the most similar pair of faces, whose chance is that of the best of
  ``n_A n_B`` impostor pairs: ``n_A n_B · Φ(−z_pair)``.

The stronger of the two (Bonferroni: twice the smaller chance) times the number of
person pairs in the library is how many pairs of *different* people would look at
least this alike by chance (``expected``); ``probability = 1 / (1 + expected)``.
Persons with a face in one photo are never one person and are never suggested; nor
are persons a user has told apart (a cannot-link between their faces, or a face of one
rejected from the other): accepting the merge would undo that decision.

Pure numpy: arrays in, ranked pairs out.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import log_ndtr

from rbv.cluster.defaults import ImpostorModel
from rbv.cluster.knn import build_knn_graph, normalize
from rbv.cluster.person_split import nearer_strangers, others_pair_stats, stranger_spread

CANDIDATE_K = 10
"""Neighbours per face looked at for candidate pairs (a pair needs one such edge)."""


@dataclass(frozen=True)
class MergeSuggestion:
    """Persons ``a`` and ``b`` (person codes) that are probably one person."""

    a: int
    b: int
    probability: float  # 1 / (1 + expected look-alike pairs of different people)
    log10_chance: float  # log10 of the chance of this likeness between two people
    mean: float  # average cross similarity of their faces
    z: float  # ``mean`` against the impostor model
    best: float  # similarity of their most similar pair of faces
    best_faces: tuple[int, int]  # rows of that pair (a's, b's)

    def why(self) -> str:
        """The evidence in words."""
        return (f"average similarity {self.mean:.2f} (z {self.z:.1f}), best pair "
                f"{self.best:.2f}")


def suggest_merges(embeddings: NDArray[np.floating], persons: NDArray[np.int64],
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


@dataclass(frozen=True)
class FaceFit:
    """How well one face of a person fits the rest of it."""

    row: int
    mean: float  # average similarity to the person's other faces
    z: float  # ``mean`` against the impostor model (low: could be anyone)
    nearer_strangers: bool = False  # ``mean`` is more like strangers' than like the
    # similarity of the person's other faces with each other (see person_split)


def least_typical_first(embeddings: NDArray[np.floating], model: ImpostorModel
                        ) -> list[FaceFit]:
    """The rows of one person's faces, least typical first: each face's average
    similarity to the person's *other* faces (leave-one-out, so a face does not vouch
    for itself), and its z against the impostor model (the spread of an average over
    the rest's cohesion, as in evidence linkage). ``nearer_strangers``: the face's
    average is nearer the impostor mean than the similarity of the other faces' own pairs
    (each in its spread, :func:`rbv.cluster.person_split.nearer_strangers`): a stranger
    in a tight person can beat the impostor bar and still sit far below the person."""
    x = normalize(embeddings).astype(np.float64)
    n = len(x)
    if n == 0:
        return []
    if n == 1:
        return [FaceFit(0, 1.0, math.inf)]
    total = x.sum(axis=0)
    rest = total[None, :] - x
    mean = (x @ total - 1.0) / (n - 1)
    cohesion = np.einsum("ij,ij->i", rest, rest) / (n - 1) ** 2
    z = (mean - model.mu) / np.sqrt(model.sigma ** 2 * cohesion + model.tau ** 2)
    others = others_pair_stats(x, stranger_spread(model))
    order = np.lexsort((np.arange(n), mean))
    return [FaceFit(int(i), float(mean[i]), float(z[i]),
                    nearer_strangers(float(mean[i]), others[i], model))
            for i in order.tolist()]

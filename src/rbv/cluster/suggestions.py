"""Merge suggestions: pairs of persons that may be one person, with the chance that
they are, ranked by what an answer is worth.

Evidence for persons A and B (unit embeddings, sums ``S``, sizes ``n``, cohesion
``c = |S|² / n²``), under the recognizer's impostor model (mean ``mu``, spreads
``sigma`` and ``tau``, see :mod:`rbv.cluster.evidence`):

* centroids: the average cross similarity ``m = <S_A, S_B> / (n_A n_B)`` and its
  ``z = (m − mu) / sqrt(sigma² c_A c_B + tau²)``, the statistic evidence linkage merges
  on; its chance under the impostor model is ``Φ(−z)``;
* best face pair: the most similar pair of faces, whose chance is that of the best of
  ``n_A n_B`` impostor pairs: ``n_A n_B · Φ(−z_pair)``.

The stronger of the two (Bonferroni: twice the smaller chance) is the pair's
``log10_chance``. The probability shown is calibrated from it and from how far the pair
stands above its crowd (:mod:`rbv.cluster.pair_odds`), and learns from the user's
answers. Pairs are ranked by what an answer is worth: the probability times the faces
a "yes" puts right (``faces_put_right``), so a large person's lost half comes before
two lone faces; each face counted by how much a user cares about it
(:func:`face_care`: a stranger small in the background of someone else's photo counts
for little, so prompts about such persons come later, never hidden). Persons with a
face in one photo are never one person and are never suggested; nor are persons a user
has told apart (a cannot-link between their faces, or a face of one rejected from the
other): accepting the merge would undo that decision.

Candidate pairs come from the persons' centroids (each person's ``CANDIDATE_K`` nearest
persons: one row per person, so quick at any number of faces); each candidate's best
face pair is then found exactly (a product of the two persons' faces).

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
from rbv.cluster.knn import EXACT_LIMIT, build_knn_graph, normalize, unit_rows
from rbv.cluster.pair_odds import PRIOR, PairOdds, pair_features
from rbv.cluster.person_split import nearer_strangers, others_pair_stats, stranger_spread

CANDIDATE_K = 10
"""Nearest persons (by centroid direction) per person looked at for candidate pairs; each
candidate's best face pair is then found exactly. Instead of a k-NN graph over every
face (about 15 s of 22 at 100k faces): the same pairs above 0.5 at 100k synthetic faces,
and every true merge the face graph found on the labelled sets
(scripts/bench/suggest_precision.py)."""


@dataclass(frozen=True)
class MergeSuggestion:
    """Persons ``a`` and ``b`` (person codes) that may be one person."""

    a: int
    b: int
    probability: float  # the chance that they are one person (calibrated)
    log10_chance: float  # log10 of the chance of this likeness between two people
    mean: float  # average cross similarity of their faces
    z: float  # ``mean`` against the impostor model
    best: float  # similarity of their most similar pair of faces
    best_faces: tuple[int, int]  # rows of that pair (a's, b's)
    features: tuple[float, ...] = ()  # what the probability was computed from (pair_odds)
    worth: float = 0.0  # probability × faces a "yes" puts right: the ranking

    def why(self) -> str:
        """The evidence in words."""
        return (f"average similarity {self.mean:.2f} (z {self.z:.1f}), best pair "
                f"{self.best:.2f}")


def face_care(prominence: NDArray[np.floating]) -> NDArray[np.float64]:
    """How much a user cares about each face, in faces, from its ``prominence`` (its
    short edge over that of its photo's largest face): its area against that face's,
    ``prominence²``: 1 for a photo's largest face (a portrait's, a lone face's), 0.64
    for one 80 % as large beside it in a group photo, 1/16 for a 25 px stranger behind
    a 100 px subject. Users review the people their photos are of, not the strangers
    behind them. Measured against counting such faces as half a subject's size and
    more whole (``review_effort.py``, lfw_many: skips of background persons in the
    first 100 clicks 15 against 5, clicks to pairwise F 0.99 49 against 45; family
    and faces alike)."""
    ratio = np.clip(np.asarray(prominence, np.float64), 0.0, 1.0)
    return ratio * ratio


def faces_put_right(n_a: NDArray[np.floating], n_b: NDArray[np.floating]
                    ) -> NDArray[np.float64]:
    """What merging two persons of one identity is worth, in faces: each face's share
    of its identity found rises by the other side's faces over the whole (BCubed
    recall), ``2 n_a n_b / (n_a + n_b)``: two lone faces 1, a lost face of a person of
    seven 1.75, two halves of eight 8."""
    return 2.0 * n_a * n_b / (n_a + n_b)


def suggest_merges(embeddings: NDArray[np.floating], persons: NDArray[np.int64],
                   image_ids: NDArray[np.int64], model: ImpostorModel, *,
                   odds: PairOdds = PRIOR, forbidden: Collection[tuple[int, int]] = (),
                   k: int = CANDIDATE_K, limit: int | None = None,
                   min_probability: float = 0.0,
                   care: NDArray[np.floating] | None = None) -> list[MergeSuggestion]:
    """Ranked merge suggestions among the persons of the rows (``persons``: a code
    ``0..P-1`` per row, ``-1`` for a face with no person). ``forbidden``: person pairs
    ``(a, b)`` with ``a < b`` that a user told apart (never suggested); ``odds``: the
    calibration (learned from the library's answers, else the shipped prior). Most
    worth first (probability × :func:`faces_put_right`, each face counted by its
    ``care``, per row: :func:`face_care`; 1 when not given); at most ``limit``, none
    below ``min_probability``.

    Candidate pairs: each person's ``k`` nearest persons by centroid direction (a k-NN
    over one row per person), each pair's best face pair then found exactly."""
    forbidden = set(forbidden)
    assigned = np.flatnonzero(persons >= 0)
    if len(assigned) < 2:
        return []
    code = persons[assigned].astype(np.int64)
    # Faces grouped by person: sums by one pass of reduceat, a person's faces a slice.
    by_code = np.argsort(code, kind="stable")
    rows = assigned[by_code]
    code = code[by_code]
    x = unit_rows(embeddings[rows])
    images = image_ids[rows].astype(np.int64)
    p_count = int(code.max()) + 1
    sizes_int = np.bincount(code, minlength=p_count)
    starts = np.concatenate([[0], np.cumsum(sizes_int)])
    sums = np.zeros((p_count, x.shape[1]))
    present = np.flatnonzero(sizes_int)
    sums[present] = np.add.reduceat(x, starts[present], axis=0, dtype=np.float64)
    sizes = sizes_int.astype(np.float64)
    cohesion = np.einsum("ij,ij->i", sums, sums) / np.maximum(sizes, 1.0) ** 2
    pairs = _candidate_pairs(sums, present, k)
    if len(pairs) == 0:
        return []
    # Every candidate is measured, those never suggested too: they are the cohorts.
    best, best_rows = _best_face_pairs(x, starts, pairs)
    a, b = pairs[:, 0], pairs[:, 1]
    mean = np.einsum("ij,ij->i", sums[a], sums[b]) / (sizes[a] * sizes[b])
    z = (mean - model.mu) / np.sqrt(model.sigma ** 2 * cohesion[a] * cohesion[b]
                                    + model.tau ** 2)
    z_pair = (best - model.mu) / math.sqrt(model.sigma ** 2 + model.tau ** 2)
    log_mean = log_ndtr(-z)
    log_pair = np.minimum(np.log(sizes[a] * sizes[b]) + log_ndtr(-z_pair), 0.0)
    log10_chance = np.minimum(np.log(2.0) + np.minimum(log_mean, log_pair), 0.0) / math.log(10)
    features = pair_features(log10_chance, mean, best, pairs, model.sigma, model.mu)
    probability = odds.probability(features)
    cared: NDArray[np.float64] = sizes if care is None else np.bincount(
        code, weights=np.asarray(care, np.float64)[rows], minlength=p_count).astype(np.float64)
    worth = probability * faces_put_right(cared[a], cared[b])
    keep = ~_share_a_photo(pairs, code, images, p_count)
    if forbidden:
        keep &= np.array([(i, j) not in forbidden for i, j in pairs.tolist()], bool)
    keep &= probability >= min_probability
    order = np.lexsort((b, a, -worth))
    order = order[keep[order]]
    if limit is not None:
        order = order[:limit]
    return [MergeSuggestion(int(a[i]), int(b[i]), float(probability[i]),
                            float(log10_chance[i]), float(mean[i]), float(z[i]),
                            float(best[i]),
                            (int(rows[best_rows[i, 0]]), int(rows[best_rows[i, 1]])),
                            tuple(float(v) for v in features[i]), float(worth[i]))
            for i in order.tolist()]


def _candidate_pairs(sums: NDArray[np.float64], present: NDArray[np.int64], k: int
                     ) -> NDArray[np.int64]:
    """Person pairs ``(a < b)`` where one is among the other's ``k`` nearest persons by
    centroid direction (one row per person, so this is quick however many faces)."""
    if len(present) < 2:
        return np.zeros((0, 2), np.int64)
    c = normalize(sums[present])
    n = len(c)
    k = min(k, n - 1)
    if n > EXACT_LIMIT:
        u, v, _ = build_knn_graph(c, k).edges()
    else:  # blocked products: no faiss to load (a quarter of a second) for a few rows
        near = np.empty((n, k), np.int64)
        step = max(1, (1 << 21) // n)  # 8 MB of similarities at a time: stays in cache
        for lo in range(0, n, step):
            sims = c[lo:lo + step] @ c.T
            sims[np.arange(len(sims)), np.arange(lo, lo + len(sims))] = -np.inf
            near[lo:lo + step] = np.argpartition(sims, n - k, axis=1)[:, n - k:]
        u, v = np.repeat(np.arange(n), k), near.ravel()
    # Each pair once, as sorted int keys: np.unique(axis=0) sorts rows as a structured
    # type, holding the interpreter for ~70 ms at 5,500 persons (rbv serve ranks in the
    # background of the page's answers); an int sort lets it go, and is quicker.
    m = int(present.max()) + 1
    key = np.unique(present[np.minimum(u, v)] * m + present[np.maximum(u, v)])
    return np.stack([key // m, key % m], axis=1)


def _best_face_pairs(x: NDArray[np.float32], starts: NDArray[np.int64],
                     pairs: NDArray[np.int64]
                     ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Per pair ``(a, b)``: the similarity of its most similar pair of faces, exactly,
    and their rows (a's first). ``x``'s rows are grouped by person (person ``p``'s are
    ``starts[p]:starts[p + 1]``): one product of a person's faces with the faces of all
    its candidates at once, in slices of a's faces (two persons of 20k faces are 400M
    similarities)."""
    best = np.empty(len(pairs))
    best_rows = np.empty((len(pairs), 2), np.int64)
    by_a = np.argsort(pairs[:, 0], kind="stable")
    bounds = np.flatnonzero(np.diff(pairs[by_a, 0])) + 1
    for group in np.split(by_a, bounds):
        a = int(pairs[group[0], 0])
        bs = pairs[group, 1]
        lengths = starts[bs + 1] - starts[bs]
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        cols = np.repeat(starts[bs] - offsets[:-1], lengths) + np.arange(offsets[-1])
        xb = x[cols]
        top = np.full(len(cols), -np.inf, np.float32)  # per column: best of a's rows
        top_row = np.zeros(len(cols), np.int64)
        chunk = max(1, (1 << 22) // len(cols))  # at most 16 MB of similarities at a time
        for lo in range(starts[a], starts[a + 1], chunk):
            sims = x[lo:min(lo + chunk, starts[a + 1])] @ xb.T
            r = sims.argmax(axis=0)
            v = sims[r, np.arange(len(cols))]
            better = v > top  # strictly: the first row wins a tie, as argmax's
            top[better], top_row[better] = v[better], lo - starts[a] + r[better]
        seg_max = np.maximum.reduceat(top, offsets[:-1])
        hits = np.flatnonzero(top == np.repeat(seg_max, lengths))
        at = hits[np.searchsorted(hits, offsets[:-1])]  # each segment's first best column
        best[group] = seg_max
        best_rows[group, 0] = starts[a] + top_row[at]
        best_rows[group, 1] = cols[at]
    return best, best_rows


def _share_a_photo(pairs: NDArray[np.int64], code: NDArray[np.int64],
                   images: NDArray[np.int64], p_count: int) -> NDArray[np.bool_]:
    """Per pair: do the two persons have faces in one photo?"""
    keys = _mate_keys(code, images, p_count)
    return np.isin(pairs[:, 0] * p_count + pairs[:, 1], keys)


def photo_mates(code: NDArray[np.int64], images: NDArray[np.int64]) -> NDArray[np.int64]:
    """The person pairs ``(a < b)`` with faces in one photo (``code``: each face's
    person, ``images``: its photo), each once."""
    if len(code) == 0:
        return np.zeros((0, 2), np.int64)
    p_count = int(code.max()) + 1
    keys = np.unique(_mate_keys(code, images, p_count))
    return np.stack([keys // p_count, keys % p_count], axis=1)


def _mate_keys(code: NDArray[np.int64], images: NDArray[np.int64], p_count: int
               ) -> NDArray[np.int64]:
    """``a * p_count + b`` for persons ``a < b`` in one photo (repeats kept)."""
    seen = np.unique(images * p_count + code)  # (photo, person) once, by photo
    photo, person = seen // p_count, seen % p_count
    keys: list[NDArray[np.int64]] = [np.zeros(0, np.int64)]
    step = 1
    while step < len(seen):  # persons ``step`` apart in one photo's sorted run
        same = photo[step:] == photo[:-step]
        if not same.any():
            break
        keys.append(person[:-step][same] * p_count + person[step:][same])
        step += 1
    return np.concatenate(keys)


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

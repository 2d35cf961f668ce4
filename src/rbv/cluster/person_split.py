"""Does one person hold two people? The best two-way partition of its faces, and whether
the halves are more alike as strangers are than as one person's faces are.

Two models judge a similarity ``s`` of faces:

* strangers: the recognizer's impostor model, mean ``mu`` and single-pair spread
  ``sqrt(sigma² + tau²)`` (:class:`rbv.cluster.defaults.ImpostorModel`);
* this person: the similarities of its own faces' pairs (inside the halves, for a split;
  among the other faces, for one face), their mean and spread. The spread is never taken
  below the strangers' one: a handful of pairs can look exactly alike by chance, and a
  same-person pair is not more predictable than a stranger pair (measured on
  data/lfw_many: the pooled spread of same-person pairs is larger).

A similarity is *nearer strangers* when it lies fewer of the strangers' spreads above
their mean than it lies of the person's spreads below the person's mean: the boundary
between the two normal models of equal weight, with no constant of rbv's own. Sums of
pair similarities come from the faces' sums and either their n × n similarities or
their d × d Gram matrix, whichever is smaller: O(n·d·min(n, d)) time and memory of
O(min(n, d)²) beyond the faces.

Faces a user linked ``same`` go to one half together. Pure numpy: arrays in, verdicts
out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.defaults import ImpostorModel
from rbv.cluster.knn import normalize
from rbv.cluster.union_find import components

MIN_HALF = 2
"""A half needs two faces to say how alike its own faces are; one face apart from the
rest is the doubtful-face test's case, not a split."""
ITERATIONS = 50
"""Two-means rounds per start (it settles in a handful)."""
POWER_ROUNDS = 30
"""Power-iteration rounds for a person's main axis (a start for two-means, which then
settles the halves; it need not be exact)."""


def stranger_spread(model: ImpostorModel) -> float:
    """The spread of one pair of different people's similarity."""
    return math.sqrt(model.sigma ** 2 + model.tau ** 2)


@dataclass(frozen=True)
class PairStats:
    """Mean and spread of the similarities of a set of face pairs."""

    count: int
    mean: float
    spread: float


def pair_stats(sums: float, squares: float, count: int, floor: float) -> PairStats:
    """From the sum and sum of squares of ``count`` pair similarities; the spread is at
    least ``floor``."""
    if count <= 0:
        return PairStats(0, math.nan, floor)
    mean = sums / count
    var = max(squares / count - mean * mean, 0.0) * (count / max(count - 1, 1))
    return PairStats(count, mean, max(math.sqrt(var), floor))


def _squares(x: NDArray[np.float64]) -> float:
    """The sum of squared similarities of all ordered pairs of rows, self-pairs included:
    ``||X Xᵀ||² = ||Xᵀ X||²``, from the smaller of the two."""
    m = x @ x.T if len(x) <= x.shape[1] else x.T @ x
    return float(np.sum(m * m))


def _within(x: NDArray[np.float64]) -> tuple[float, float, int]:
    """Sum and sum of squares of the similarities of all pairs of rows, and their count."""
    n = len(x)
    total = x.sum(axis=0)
    return ((float(total @ total) - n) / 2.0, (_squares(x) - n) / 2.0, n * (n - 1) // 2)


def nearer_strangers(similarity: float, own: PairStats, model: ImpostorModel) -> bool:
    """Is ``similarity`` more like strangers' than like the person's own pairs?"""
    if own.count == 0 or not similarity < own.mean:
        return False
    z_stranger = (similarity - model.mu) / stranger_spread(model)
    z_own = (own.mean - similarity) / own.spread
    return z_own > z_stranger


@dataclass(frozen=True)
class SplitTest:
    """A person's best two-way partition and the verdict on it."""

    half: NDArray[np.int64]  # per row: 0 or 1 (1: the smaller half)
    sizes: tuple[int, int]  # larger half first
    cross: float  # average similarity of a face of one half with one of the other
    own: PairStats  # the pairs inside the halves
    z_stranger: float  # ``cross`` above the impostor mean, in strangers' spreads
    z_own: float  # ``cross`` below the person's own mean, in its spreads
    two_people: bool

    def as_dict(self) -> dict[str, object]:
        return {"sizes": list(self.sizes), "cross_similarity": round(self.cross, 4),
                "own_similarity": round(self.own.mean, 4),
                "own_spread": round(self.own.spread, 4),
                "z_stranger": round(self.z_stranger, 2), "z_own": round(self.z_own, 2),
                "two_people": self.two_people}


def two_halves(x: NDArray[np.float64],
               units: NDArray[np.int64] | None = None) -> NDArray[np.int64] | None:
    """The best two-means partition of unit rows ``x`` (spherical: the halves' summed
    similarity to their own centroid, highest of two deterministic starts: the least
    typical face against the face least like it, and the two ends of the main axis, a
    spread either side of the centre);
    None when every start leaves one half empty. ``units``: per row, its group of rows
    that go together (faces a user linked ``same``); each group goes to one half whole
    (its rows' summed similarity to a centroid decides). None: every row alone."""
    n = len(x)
    if n < 2:
        return None
    if units is None:
        units, sums_of, counts = np.arange(n, dtype=np.int64), x, np.ones(n)
    else:
        groups, units = np.unique(units, return_inverse=True)
        sums_of = np.zeros((len(groups), x.shape[1]))
        np.add.at(sums_of, units, x)
        counts = np.bincount(units, minlength=len(groups)).astype(np.float64)
    total = x.sum(axis=0)
    a = int(np.argmin(x @ total))
    b = int(np.argmin(x @ x[a]))
    centre = total / n
    step = _main_axis(x - centre, x[b] - x[a])
    best: tuple[float, NDArray[np.int64]] | None = None
    for ca, cb in ((x[a], x[b]), (centre + step, centre - step)):
        half: NDArray[np.int64] | None = None
        sums = total
        for _ in range(ITERATIONS):
            new = (sums_of @ (cb - ca) > 0).astype(np.int64)
            size = int(counts @ new)
            if size in (0, n) or (half is not None and np.array_equal(new, half)):
                break
            half = new
            sums = new.astype(np.float64) @ sums_of  # the second half's sum
            ca, cb = (total - sums) / (n - size), sums / size
        if half is None:
            continue
        score = float(np.linalg.norm(total - sums) + np.linalg.norm(sums))
        if best is None or score > best[0]:
            best = (score, half)
    if best is None:
        return None
    rows = best[1][units]
    return rows if int(rows.sum()) * 2 <= n else 1 - rows


def _main_axis(centred: NDArray[np.float64], start: NDArray[np.float64]) -> NDArray[np.float64]:
    """The rows' main axis, scaled to their spread along it (power iteration from
    ``start``: O(n·d) a round, where a full SVD costs O(n·d·min(n, d)))."""
    v = start / max(float(np.linalg.norm(start)), 1e-12)
    for _ in range(POWER_ROUNDS):
        w = centred.T @ (centred @ v)
        norm = float(np.linalg.norm(w))
        if norm < 1e-12:
            return np.zeros_like(v)
        v = w / norm
    return v * float(np.linalg.norm(centred @ v)) / math.sqrt(len(centred))


def split_test(embeddings: NDArray[np.floating], model: ImpostorModel,
               units: NDArray[np.int64] | None = None) -> SplitTest | None:
    """The best two-way partition of one person's faces and whether its halves look like
    two people: their cross similarity is nearer strangers' than the similarity of the
    halves' own pairs. None when there is no partition with two faces on each side.
    ``units``: rows that must stay in one half (see :func:`two_halves`)."""
    x = normalize(embeddings).astype(np.float64)
    if len(x) < 2 * MIN_HALF:
        return None
    half = two_halves(x, units)
    if half is None:
        return None
    big, small = x[half == 0], x[half == 1]
    if min(len(big), len(small)) < MIN_HALF:
        return None
    floor = stranger_spread(model)
    s1, q1, c1 = _within(big)
    s2, q2, c2 = _within(small)
    own = pair_stats(s1 + s2, q1 + q2, c1 + c2, floor)
    cross = float(big.sum(axis=0) @ small.sum(axis=0)) / (len(big) * len(small))
    z_stranger = (cross - model.mu) / floor
    z_own = (own.mean - cross) / own.spread
    return SplitTest(half, (len(big), len(small)), cross, own, z_stranger, z_own,
                     nearer_strangers(cross, own, model))


def linked_units(n: int, pairs: NDArray[np.int64]) -> NDArray[np.int64] | None:
    """Per row of ``0..n-1``: its group of rows joined by ``pairs`` (directly or through
    others); None when no pair joins two rows."""
    if len(pairs) == 0:
        return None
    return components(n, pairs[:, 0], pairs[:, 1])


def others_pair_stats(x: NDArray[np.float64], floor: float) -> list[PairStats]:
    """Per row of unit rows ``x``: the statistics of the pairs of the *other* rows."""
    n = len(x)
    total = x.sum(axis=0)
    rest = total[None, :] - x
    sums = (np.einsum("ij,ij->i", rest, rest) - (n - 1)) / 2.0
    # Without row i, a unit row: the squares lose sum_j (x_i·x_j)² twice, then gain back
    # the self-pair's 1 counted in both.
    if n <= x.shape[1]:
        sims = x @ x.T
        own = np.einsum("ij,ij->i", sims, sims)
        every = float(own.sum())
    else:
        gram = x.T @ x
        own = np.einsum("ij,ij->i", x @ gram, x)
        every = float(np.sum(gram * gram))
    squares = (every - 2.0 * own + 1.0 - (n - 1)) / 2.0
    count = (n - 1) * (n - 2) // 2
    return [pair_stats(float(s), float(q), count, floor)
            for s, q in zip(sums.tolist(), squares.tolist(), strict=True)]

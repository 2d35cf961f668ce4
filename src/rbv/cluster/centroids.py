"""Centroids of unit embeddings: the one place that averages faces, measures how close
faces are to an average, drops members far from it and routes faces to the nearest one.

Closeness is cosine similarity between unit rows (higher = more alike), the one scale
every command speaks.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.knn import normalize


def centroid(x: NDArray[np.floating]) -> NDArray[np.float32]:
    """The unit-length mean direction of the rows of ``x``."""
    return normalize(np.asarray(x, np.float32).mean(axis=0, keepdims=True))[0]


def similarities(x: NDArray[np.floating], centre: NDArray[np.floating]
                 ) -> NDArray[np.float32]:
    """Cosine similarity of each unit row of ``x`` to ``centre``."""
    return np.asarray(x @ centre, np.float32)


def recentred_members(x: NDArray[np.float32], passes: Sequence[float], *, nested: bool
                      ) -> tuple[list[NDArray[np.bool_]], NDArray[np.float32]]:
    """Drop rows far from the centroid in passes, re-centring each time: pass ``i``
    measures against the centroid of the previous pass's members (of all rows at first)
    and keeps the rows at least ``passes[i]`` similar to it; with ``nested`` only rows
    the previous pass kept can stay. Returns each pass's kept mask and the centroid of
    the last kept set (of all rows when none is kept)."""
    keep = np.ones(len(x), bool)
    kept: list[NDArray[np.bool_]] = []
    for min_similarity in passes:
        if keep.any():  # an emptied set stays empty
            near = similarities(x, centroid(x[keep])) >= min_similarity
            keep = keep & near if nested else near
        kept.append(keep)
    return kept, centroid(x[keep]) if keep.any() else centroid(x)


def nearest_per_image(rows: NDArray[np.int64], image_ids: NDArray[np.int64],
                      similarity: NDArray[np.floating]) -> NDArray[np.int64]:
    """Of ``rows``, the one nearest (highest ``similarity``) per image."""
    best: dict[int, int] = {}
    for r in rows.tolist():
        img = int(image_ids[r])
        if img not in best or similarity[r] > similarity[best[img]]:
            best[img] = r
    return np.array(sorted(best.values()), np.int64)


def nearest_centroid(x: NDArray[np.floating], centres: NDArray[np.floating]
                     ) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """For each unit row of ``x``: the index of its nearest centre (centres need not be
    unit length) and the similarity to it."""
    sim = np.asarray(x @ normalize(centres).T, np.float32)
    best = sim.argmax(axis=1).astype(np.int64)
    return best, sim[np.arange(len(x)), best]


def group_sums(x: NDArray[np.floating], groups: NDArray[np.int64], m: int, *,
               unit: bool = False) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Sum of the unit rows of ``x`` in each of ``m`` groups (``groups[i]`` in
    ``0..m-1``; ``-1``: in none), in float64, and each group's size; ``unit``: the rows
    are unit already (:func:`rbv.cluster.knn.unit_rows`) and are added as they are.
    Rows are taken in blocks, so memory stays at the sums plus one block."""
    member = np.flatnonzero(groups >= 0)
    counts = np.bincount(groups[member], minlength=m).astype(np.int64)
    sums = np.zeros((m, x.shape[1]), np.float64)
    if len(member) == len(groups) and counts.max(initial=0) <= 1:
        # Every row a group of its own (an incremental run's nodes before merging):
        # each row put in its place, without the three temporary copies of them that
        # adding through an index makes (at 1,851 × 512 in a run: 35 ms against 3 ms).
        sums[groups] = x if unit else normalize(x)
        return sums, counts
    order = member[np.argsort(groups[member], kind="stable")]
    for lo in range(0, len(order), _BLOCK):
        rows = order[lo:lo + _BLOCK]
        present, starts, sizes = np.unique(groups[rows], return_index=True,
                                           return_counts=True)
        block = x[rows] if unit else normalize(x[rows])
        # A group of one row here: that row, added at once with the others' (most
        # groups of an incremental run's merge nodes: a call each cost more than it).
        one = sizes == 1
        sums[present[one]] += block[starts[one]]
        # A larger group's rows at a time, added up in order: what
        # ``np.add.reduceat(..., axis=0)`` gives, bit for bit, at 1/30 of its time (it
        # took 1.5 s at 100k).
        many = np.flatnonzero(~one)
        if len(many):
            sums[present[many]] += [
                np.add.reduce(block[a:a + n], axis=0, dtype=np.float64)
                for a, n in zip(starts[many].tolist(), sizes[many].tolist(), strict=True)]
    return sums, counts


L = TypeVar("L", bound=Hashable)


def label_sums(x: NDArray[np.floating], labels: Sequence[L], min_rows: int
               ) -> tuple[list[L], NDArray[np.int64], NDArray[np.float64]]:
    """The labels of the rows of ``x`` (sorted, each once) and, of each label with
    ``min_rows`` rows or more, its row count and the float64 sum of its unit rows (of
    the others 0 and zeros: :func:`group_sums`)."""
    distinct = sorted(set(labels))  # type: ignore[type-var]
    index = {p: i for i, p in enumerate(distinct)}
    label = np.array([index[p] for p in labels], np.int64)
    large = np.bincount(label, minlength=len(distinct)) >= min_rows
    sums, counts = group_sums(x, np.where(large[label], label, -1), len(distinct))
    return distinct, counts, sums


_BLOCK = 8_192
"""Rows added up at a time: 16 MB at 512-d, which the allocator hands back for the next
block (blocks of 65,536 were new pages each time: a second clustering pass at 100k
faces spent 1.3 s in here, most of it on the pages and normalising rows already unit)."""

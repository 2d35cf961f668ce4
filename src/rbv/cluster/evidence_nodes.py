"""Evidence linkage's merge nodes: single faces read in place, groups by their sums; and
the work spread over the machine's cores. No numba here, so small runs never load it."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from numpy.typing import NDArray

CHUNKS_PER_THREAD = 8
"""Pieces of work per thread (unequal pieces still keep every core busy)."""


def threads() -> int:
    """Cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Nodes:
    """Cluster nodes and their candidate pairs: node ``u`` is ``rows[ref[u]]`` (one
    face's float32 unit row) when ``ref[u] >= 0``, else the float64 sum
    ``sums[-ref[u] - 1]``; ``count``: its faces; ``pairs``: (u, v) rows, u < v, once.
    The same for both passes of crowding, so the first scores are computed once."""

    rows: NDArray[np.float32]
    sums: NDArray[np.float64]
    ref: NDArray[np.int64]
    count: NDArray[np.float64]
    pairs: NDArray[np.int64]

    @classmethod
    def of_sums(cls, sums: NDArray[np.float64], count: NDArray[np.float64],
                pairs: NDArray[np.int64]) -> Nodes:
        """Nodes given by their sums alone."""
        sums = np.ascontiguousarray(sums, np.float64)
        return cls(np.empty((0, sums.shape[1]), np.float32), sums,
                   -np.arange(len(sums), dtype=np.int64) - 1,
                   np.asarray(count, np.float64), np.asarray(pairs, np.int64).reshape(-1, 2))

    def full_sums(self) -> NDArray[np.float64]:
        """Every node's sum as one float64 array (small inputs: the interpreted loop)."""
        out = np.empty((len(self.ref), self.sums.shape[1]))
        single = self.ref >= 0
        out[single] = self.rows[self.ref[single]]
        out[~single] = self.sums[-self.ref[~single] - 1]
        return out

    @cached_property
    def scores(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``S_u·S_w`` of each pair and each node's cohesion ``|S_u|² / count²``,
        computed on every core."""
        from rbv.cluster.evidence_kernels import pair_dots  # numba: loaded when needed

        rows = np.ascontiguousarray(self.rows, np.float32)
        sums, ref, pairs = (np.ascontiguousarray(a) for a in (self.sums, self.ref,
                                                              self.pairs))
        dots, cohesion = np.empty(len(pairs)), np.empty(len(ref))

        def pair_part(part: tuple[int, int]) -> None:
            pair_dots(rows, sums, ref, pairs, dots, part[0], part[1])

        def node_part(part: tuple[int, int]) -> None:
            lo, hi = part
            nodes, own = np.arange(lo, hi), ref[lo:hi]
            single = own >= 0
            # numpy's einsum on float64 rows, as the interpreted loop computes it
            own_rows = rows[own[single]].astype(np.float64)
            cohesion[nodes[single]] = np.einsum("ij,ij->i", own_rows, own_rows)
            own_sums = sums[-own[~single] - 1]
            cohesion[nodes[~single]] = np.einsum("ij,ij->i", own_sums, own_sums)

        jobs = threads()
        with ThreadPoolExecutor(jobs, thread_name_prefix="rbv-merge") as pool:
            list(pool.map(pair_part, parts(len(pairs), jobs * CHUNKS_PER_THREAD)))
            list(pool.map(node_part, parts(len(ref), jobs * CHUNKS_PER_THREAD)))
        return dots, cohesion / self.count ** 2


def parts(n: int, pieces: int) -> list[tuple[int, int]]:
    """``0..n`` cut into up to ``pieces`` (start, stop) ranges of nearly equal size."""
    bounds = np.linspace(0, n, max(1, min(pieces, n)) + 1).astype(np.int64)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]

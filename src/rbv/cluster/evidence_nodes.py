"""Evidence linkage's merge nodes: single faces read in place, groups by their sums. No
numba here, so small runs never load it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.parallel_work import on_all_cores

_COHESION_BLOCK = 8_192
"""Nodes whose cohesion is computed at once (8,192 × 512-d float64 rows: 32 MB)."""


@dataclass
class Nodes:
    """Cluster nodes and their candidate pairs: node ``u`` is ``rows[ref[u]]`` (one
    face's float32 unit row) when ``ref[u] >= 0``, else the float64 sum
    ``sums[-ref[u] - 1]``; ``count``: its faces; ``pairs``: (u, v) rows, u < v, once
    (int32 where the node ids fit: 230 MB less at a million faces), until the merge loop
    takes them (:meth:`release_pairs`)."""

    rows: NDArray[np.float32]
    sums: NDArray[np.float64]
    ref: NDArray[np.int64]
    count: NDArray[np.float64]
    pairs: NDArray[np.integer]
    near: NDArray[np.int64] | None = None
    """Each node's inverted list of the k-NN graph: the first scores are computed pair
    by pair in the order of their first node's list, so rows read together lie near
    each other (from cache more than from memory). The order itself is made then and
    dropped (a million faces' pairs: 230 MB)."""

    @classmethod
    def of_sums(cls, sums: NDArray[np.float64], count: NDArray[np.float64],
                pairs: NDArray[np.integer]) -> Nodes:
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

    def release_pairs(self) -> NDArray[np.integer]:
        """The pairs, which these nodes then no longer hold (``pairs`` empty): the merge
        loop keeps them as neighbour lists, and at a million faces the pairs and their
        first scores were 460 MB of its peak memory while it ran."""
        pairs, self.pairs = self.pairs, self.pairs[:0]
        return pairs

    def scores(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """``S_u·S_w`` of each pair and each node's cohesion ``|S_u|² / count²``,
        computed on every core."""
        from rbv.cluster.evidence_kernels import pair_dots  # numba: loaded when needed

        rows = np.ascontiguousarray(self.rows, np.float32)
        sums, ref, pairs = (np.ascontiguousarray(a) for a in (self.sums, self.ref,
                                                              self.pairs))
        dots, cohesion = np.empty(len(pairs)), np.empty(len(ref))

        order = (np.arange(len(pairs)) if self.near is None or len(pairs) == 0
                 else np.argsort(self.near[pairs[:, 0]], kind="stable"))

        def pair_part(lo: int, hi: int) -> None:
            pair_dots(rows, sums, ref, pairs, order, dots, lo, hi)

        def node_part(lo: int, hi: int) -> None:
            # A block at a time: a core's share of a million faces' rows widened to
            # float64 at once was 380 MB (the peak of a whole clustering run).
            for start in range(lo, hi, _COHESION_BLOCK):
                nodes = np.arange(start, min(start + _COHESION_BLOCK, hi))
                own = ref[nodes]
                single = own >= 0
                # numpy's einsum on float64 rows, as the interpreted loop computes it
                own_rows = rows[own[single]].astype(np.float64)
                cohesion[nodes[single]] = np.einsum("ij,ij->i", own_rows, own_rows)
                own_sums = sums[-own[~single] - 1]
                cohesion[nodes[~single]] = np.einsum("ij,ij->i", own_sums, own_sums)

        on_all_cores(pair_part, len(pairs))
        on_all_cores(node_part, len(ref))
        return dots, cohesion / self.count ** 2

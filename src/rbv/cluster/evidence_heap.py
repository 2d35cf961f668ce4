"""Evidence linkage's greedy merge loop, interpreted: for small merges.

The same rule as the compiled loop (:mod:`rbv.cluster.evidence_merge`): highest ``z``
first, one merge at a time, one heap entry per cluster. Loading the compiled code costs
2-5 s per process (numba's import and its cache; 0.6 s where the OS still caches their
files); this loop merges a few thousand clusters in a fraction of that, so small merges
(a small library, the new faces of a nightly run against the known persons near them)
use it. Every pair's first score is computed in array operations before the loop (a
call per cluster was a third of the loop's time). The tests check that both loops and a
plain score-every-pair greedy give the same partitions.
"""

from __future__ import annotations

import heapq

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.defaults import ImpostorModel

_BLOCK = 512
"""Pairs whose rows the first scoring gathers at once (2 MB a side at 512-d: a block of
4,096 pairs, its rows' pages faulted in afresh each time, took 3 times as long)."""


def heap_merger_roots(sums: NDArray[np.float64], count: NDArray[np.float64],
                      anchored: NDArray[np.bool_], cannot: NDArray[np.int64],
                      pairs: NDArray[np.integer], mu: float, sigma: float, tau: float,
                      z_min: float, crowd: NDArray[np.float64] | None = None
                      ) -> NDArray[np.int64]:
    """Each node's final node, by the interpreted heap loop (arguments as
    :func:`rbv.cluster.evidence_merge.merge_greedily`)."""
    merger = HeapMerger(sums.copy(), count.copy(), anchored, cannot, pairs,
                        ImpostorModel(mu, sigma, tau), z_min, crowd)
    merger.link()
    return merger.roots()


class HeapMerger:
    """The interpreted heap-based greedy merge loop over cluster nodes (see the module doc)."""

    def __init__(self, sums: NDArray[np.float64], count: NDArray[np.float64],
                 anchored: NDArray[np.bool_], cannot: NDArray[np.int64],
                 pairs: NDArray[np.integer], model: ImpostorModel, z_min: float,
                 crowd: NDArray[np.float64] | None = None) -> None:
        m = len(count)
        self.model = model
        self.z_min = z_min
        self.sums = sums
        self.count = count
        self.crowd = np.zeros(m) if crowd is None else np.array(crowd, np.float64)
        self.cohesion = np.einsum("ij,ij->i", self.sums, self.sums) / self.count ** 2
        # Per node, the terms of z that depend on it alone (crowding per face, σ²·
        # cohesion), kept up to date by _merge: the same products, computed once.
        self.rate = self.crowd / self.count
        self.sigma2 = model.sigma ** 2
        self.tau2 = model.tau ** 2
        self.spread = self.sigma2 * self.cohesion
        self.anchored = anchored.copy()
        self.pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
        # Cluster nodes that may never join: cannot-links between their faces.
        self.blocked: list[set[int]] = [set() for _ in range(m)]
        for a, b in np.asarray(cannot, np.int64).reshape(-1, 2).tolist():
            self.blocked[a].add(b)
            self.blocked[b].add(a)
        self.parent = np.arange(m)
        self.version = np.zeros(m, np.int64)
        self.alive = np.ones(m, bool)
        self.adjacent: list[set[int]] = []  # filled by link()
        self.best_z = np.full(m, -np.inf)  # the partner a cluster's newest entry holds,
        self.best_w = np.full(m, -1, np.int64)  # and its z
        self._mark = np.zeros(m, bool)  # scratch: the clusters a cluster may not join

    def _z(self, u: int, vs: NDArray[np.int64]) -> NDArray[np.float64]:
        # The operations (and their order) of evidence_merge's z, so both loops round
        # alike; only what depends on one node alone is cached (rate, spread).
        mean = (self.sums[vs] @ self.sums[u]) / (self.count[vs] * self.count[u])
        mu = self.model.mu + 0.5 * (self.rate[u] + self.rate[vs])
        spread = self.spread[vs] * self.cohesion[u] + self.tau2
        return (mean - mu) / np.sqrt(spread)

    def link(self) -> None:
        """Merge greedily, the highest z first, while z ≥ z_min. The heap holds one
        entry per cluster (its best partner), refreshed when either side has changed
        since, so it stays as small as the number of clusters."""
        self._adjacency()
        heap = self._first_entries()
        while heap:
            _, u, w, version_u, version_w = heapq.heappop(heap)
            if not self.alive[u] or self.version[u] != version_u:
                continue  # u changed since: a fresher entry of u is in the heap
            if self.alive[w] and self.version[w] == version_w:
                survivor = self._merge(u, w)
                self._push_best(survivor, heap, absorbed=w if survivor == u else u)
                continue
            # Only the partner changed (it grew, or was merged into another cluster).
            # Usually it is still u's best and only its z moved: re-score that one pair;
            # look at all of u's neighbours again only when the pair got worse.
            w = self._root(w)
            if w == u:
                continue
            if self._allowed(u, w):
                z = float(self._z(u, np.array([w]))[0])
                if z >= self.z_min and z >= self.best_z[u]:
                    self.best_z[u], self.best_w[u] = z, w
                    heapq.heappush(heap, (-z, u, w, version_u, int(self.version[w])))
                    continue
            self._push_best(u, heap)

    def _adjacency(self) -> None:
        """Each cluster's neighbours (the candidate pairs, both ways), as sets."""
        m = len(self.count)
        us = np.concatenate([self.pairs[:, 0], self.pairs[:, 1]])
        ws = np.concatenate([self.pairs[:, 1], self.pairs[:, 0]])
        order = np.argsort(us, kind="stable")
        bounds = [0, *np.cumsum(np.bincount(us, minlength=m)).tolist()]
        ws = ws[order].tolist()
        self.adjacent = [set(ws[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]

    def _first_entries(self) -> list[tuple[float, int, int, int, int]]:
        """The heap before any merge: each cluster's best mergeable partner, scored for
        every pair at once (what :meth:`_push_best` of each cluster in turn gives, in a
        few array operations instead of a call per cluster; a tie goes to the lower
        node)."""
        m = len(self.count)
        a, b = self.pairs[:, 0], self.pairs[:, 1]
        cannot = np.array([(u, w) for u in range(m) for w in self.blocked[u]],
                          np.int64).reshape(-1, 2)
        keep = (a != b) & ~(self.anchored[a] & self.anchored[b]) \
            & ~np.isin(a * m + b, cannot[:, 0] * m + cannot[:, 1])
        a, b = a[keep], b[keep]
        z = np.empty(len(a))
        for lo in range(0, len(a), _BLOCK):  # rows gathered a block at a time
            u, w = a[lo:lo + _BLOCK], b[lo:lo + _BLOCK]
            mean = np.einsum("ij,ij->i", self.sums[u], self.sums[w]) \
                / (self.count[w] * self.count[u])
            mu = self.model.mu + 0.5 * (self.rate[u] + self.rate[w])
            z[lo:lo + _BLOCK] = (mean - mu) / np.sqrt(self.spread[w] * self.cohesion[u]
                                                     + self.tau2)
        us, ws, zs = np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([z, z])
        passing = zs >= self.z_min
        us, ws, zs = us[passing], ws[passing], zs[passing]
        order = np.lexsort((ws, -zs, us))  # by cluster, then best first
        first = order[np.r_[True, us[order][1:] != us[order][:-1]]] if len(order) else order
        u, w, best = us[first], ws[first], zs[first]
        self.best_z[u], self.best_w[u] = best, w
        heap = [(-zz, uu, ww, 0, 0)
                for zz, uu, ww in zip(best.tolist(), u.tolist(), w.tolist(), strict=True)]
        heapq.heapify(heap)
        return heap

    def _root(self, v: int) -> int:
        root = v
        while self.parent[root] != root:
            root = int(self.parent[root])
        while self.parent[v] != root:  # path compression
            self.parent[v], v = root, int(self.parent[v])
        return root

    def _allowed(self, u: int, w: int) -> bool:
        return w not in self.blocked[u] and not (self.anchored[u] and self.anchored[w])

    def _push_best(self, u: int, heap: list[tuple[float, int, int, int, int]],
                   absorbed: int = -1) -> None:
        """Push cluster ``u``'s best mergeable partner, if one passes; and, to neighbours
        for which ``u`` is now a better partner than the one they hold, that entry (so
        the merge order stays exactly greedy). ``absorbed``: the cluster ``u`` has just
        taken in (its neighbours' entries are refreshed when popped)."""
        self.best_z[u], self.best_w[u] = -np.inf, -1
        adjacent, blocked = self.adjacent[u], self.blocked[u]
        ws = np.fromiter(adjacent, np.int64, len(adjacent))
        if blocked and len(ws):
            out = np.fromiter(blocked, np.int64, len(blocked))
            self._mark[out] = True
            ws = ws[~self._mark[ws]]
            self._mark[out] = False
        if self.anchored[u] and len(ws):
            ws = ws[~self.anchored[ws]]
        if len(ws) == 0:
            return
        z = self._z(u, ws)
        best = int(z.argmax())
        if z[best] >= self.z_min:
            w = int(ws[best])
            self.best_z[u], self.best_w[u] = float(z[best]), w
            heapq.heappush(heap, (-float(z[best]), u, w, int(self.version[u]),
                                  int(self.version[w])))
        better = ((z >= self.z_min) & (z > self.best_z[ws]) & (self.best_w[ws] != u)
                  & (self.best_w[ws] != absorbed))
        for w, zz in zip(ws[better].tolist(), z[better].tolist(), strict=True):
            self.best_z[w], self.best_w[w] = zz, u
            heapq.heappush(heap, (-zz, w, u, int(self.version[w]), int(self.version[u])))

    def _merge(self, u: int, v: int) -> int:
        """Join clusters ``u`` and ``v``; returns the surviving node."""
        if len(self.adjacent[u]) < len(self.adjacent[v]):
            u, v = v, u  # keep the node with more neighbours
        self.sums[u] += self.sums[v]
        self.count[u] += self.count[v]
        self.crowd[u] += self.crowd[v]
        self.cohesion[u] = float(self.sums[u] @ self.sums[u]) / self.count[u] ** 2
        self.rate[u] = self.crowd[u] / self.count[u]
        self.spread[u] = self.sigma2 * self.cohesion[u]
        self.anchored[u] |= self.anchored[v]
        for w in self.blocked[v]:
            self.blocked[w].discard(v)
            self.blocked[w].add(u)
        self.blocked[u] |= self.blocked[v]
        moved = self.adjacent[v] - {u}
        for w in moved:
            self.adjacent[w].discard(v)
            self.adjacent[w].add(u)
        self.adjacent[u] |= moved
        self.adjacent[u].discard(v)
        self.blocked[v], self.adjacent[v] = set(), set()
        self.alive[v] = False
        self.parent[v] = u
        self.version[u] += 1
        return u

    def roots(self) -> NDArray[np.int64]:
        root = self.parent.copy()
        while True:
            nxt = root[root]
            if np.array_equal(nxt, root):
                return root
            root = nxt

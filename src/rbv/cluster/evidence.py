"""Evidence linkage: average linkage whose merge rule is a test against the recognizer's
different-person ("impostor") similarities, strict for little evidence and for big
libraries, looser for two large coherent clusters.

For clusters A and B of unit embeddings (sums ``S``, sizes ``n``) the average cross
similarity is ``m = <S_A, S_B> / (n_A n_B)`` (exact average linkage, no n×n matrix). If
A and B were different people, ``m`` would come from the impostor distribution: mean
``mu`` and a spread that shrinks as the groups grow, ``sigma² c_A c_B + tau²`` where
``c = |S|² / n²`` is 1 for one face and the group's cohesion for many (``tau`` is the
person-to-person part that averaging cannot remove). The merge statistic is

    z(A, B) = (m − mu) / sqrt(sigma² c_A c_B + tau²)

and pairs are merged greedily, highest ``z`` first, while ``z ≥ z_N``. ``z_N`` holds the
expected number of impostor face pairs that would pass a single-pair test at ``budget``
among the library's N(N−1)/2 pairs, so a bigger library asks more of each merge:
``z_N = Φ⁻¹(1 − budget / (N(N−1)/2))``. For SFace a lone pair of faces then needs a
cosine of 0.40 in a library of 200 faces, 0.51 at 3,400 and 0.63 at 100k.

``mu``/``sigma`` belong to the recognizer, not to who is in the photos, which is why the
setting transfers between libraries; ``tau`` and ``budget`` are dimensionless.
"""

from __future__ import annotations

import heapq

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.constraints import NO_ANCHOR, Constraints, anchor_chain_pairs, enforce
from rbv.cluster.defaults import DEFAULT_BUDGET, ImpostorModel
from rbv.cluster.knn import KnnGraph, normalize
from rbv.cluster.linkage import components

_CHUNK = 65_536


def random_pair_similarities(embeddings: NDArray[np.floating], image_ids: NDArray[np.int64],
                             samples: int = 200_000, seed: int = 0) -> NDArray[np.float32]:
    """Similarities of random face pairs from different photos (in a library of many
    people nearly all are impostor pairs)."""
    x = normalize(embeddings)
    n = len(x)
    if n < 2:
        return np.empty(0, np.float32)
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, n, samples), rng.integers(0, n, samples)
    keep = (i != j) & (image_ids[i] != image_ids[j])
    return np.einsum("ij,ij->i", x[i[keep]], x[j[keep]]).astype(np.float32)


def labelled_impostor_similarities(embeddings: NDArray[np.floating], labels: NDArray[np.str_],
                                   samples: int = 500_000, seed: int = 0
                                   ) -> NDArray[np.float32]:
    """Similarities of face pairs whose labels differ (all pairs, or a random sample of
    ``samples`` where there are more)."""
    x = normalize(embeddings)
    n = len(x)
    if n < 2:
        return np.empty(0, np.float32)
    if n * (n - 1) // 2 <= samples:
        i, j = np.triu_indices(n, 1)
    else:
        rng = np.random.default_rng(seed)
        i, j = rng.integers(0, n, samples), rng.integers(0, n, samples)
    keep = labels[i] != labels[j]
    i, j = i[keep], j[keep]
    out = np.empty(len(i), np.float32)
    for lo in range(0, len(i), _CHUNK):
        a, b = i[lo:lo + _CHUNK], j[lo:lo + _CHUNK]
        out[lo:lo + _CHUNK] = np.einsum("ij,ij->i", x[a], x[b])
    return out


def evidence_linkage(
    embeddings: NDArray[np.floating],
    graph: KnnGraph,
    model: ImpostorModel,
    budget: float = DEFAULT_BUDGET,
    constraints: Constraints | None = None,
    *,
    n_library: int | None = None,
) -> NDArray[np.int64]:
    """Labels ``0..m-1`` for the rows of ``embeddings``.

    Candidate merges are clusters joined by a k-NN edge of ``graph`` above ``mu``.
    ``constraints``: cannot-links are never joined; must-links start together; faces
    with the same anchor start as one cluster, and clusters holding different anchors
    never merge (so known persons can take in new faces but never each other).
    ``n_library``: the library size the test is made for (default: the rows given).
    """
    x = normalize(embeddings).astype(np.float64)
    n = len(x)
    if n == 0:
        return np.empty(0, np.int64)
    constraints = constraints or Constraints(n)
    z_min = model.z_threshold(n_library or n, budget)
    start = _starting_clusters(constraints)
    merger = _Merger(x, start, constraints, model, z_min)
    merger.link(graph)
    labels = merger.labels()
    edges = graph.edges()
    return enforce(labels, edges, constraints)


def _starting_clusters(constraints: Constraints) -> NDArray[np.int64]:
    """Faces sharing an anchor or joined by must-links start as one cluster."""
    pairs = constraints.must
    if constraints.anchors is not None:  # build() chains them into must; a bare one may not
        pairs = np.concatenate([pairs, anchor_chain_pairs(constraints.anchors)])
    return components(constraints.n, pairs[:, 0], pairs[:, 1])


class _Merger:
    """The greedy merge loop over cluster nodes (one per starting cluster)."""

    def __init__(self, x: NDArray[np.float64], start: NDArray[np.int64],
                 constraints: Constraints, model: ImpostorModel, z_min: float) -> None:
        m = int(start.max()) + 1
        self.node = start
        self.model = model
        self.z_min = z_min
        self.sums = np.zeros((m, x.shape[1]))
        np.add.at(self.sums, start, x)
        self.count = np.bincount(start, minlength=m).astype(np.float64)
        self.cohesion = np.einsum("ij,ij->i", self.sums, self.sums) / self.count ** 2
        self.anchored = np.zeros(m, bool)
        if constraints.anchors is not None:
            self.anchored[start[constraints.anchors != NO_ANCHOR]] = True
        # Cluster nodes that may never join: cannot-links between their faces.
        self.blocked: list[set[int]] = [set() for _ in range(m)]
        for a, b in start[constraints.cannot].tolist():
            self.blocked[a].add(b)
            self.blocked[b].add(a)
        self.parent = np.arange(m)
        self.version = np.zeros(m, np.int64)
        self.alive = np.ones(m, bool)
        self.adjacent: list[set[int]] = [set() for _ in range(m)]
        self.best_z = np.full(m, -np.inf)  # the partner a cluster's newest entry holds,
        self.best_w = np.full(m, -1, np.int64)  # and its z
        self._mark = np.zeros(m, bool)  # scratch: the clusters a cluster may not join

    def _z(self, u: int, vs: NDArray[np.int64]) -> NDArray[np.float64]:
        mean = (self.sums[vs] @ self.sums[u]) / (self.count[vs] * self.count[u])
        spread = self.model.sigma ** 2 * self.cohesion[vs] * self.cohesion[u] + self.model.tau ** 2
        return np.asarray((mean - self.model.mu) / np.sqrt(spread), np.float64)

    def link(self, graph: KnnGraph) -> None:
        """Merge greedily, the highest z first, while z ≥ z_min. The heap holds one
        entry per cluster (its best partner), refreshed when either side has changed
        since, so it stays as small as the number of clusters."""
        a, b, _ = graph.edges(self.model.mu)
        a, b = self.node[a], self.node[b]
        keep = a != b
        a, b = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
        if len(a) == 0:
            return
        m = len(self.count)
        key = np.unique(a * m + b)
        pu, pv = key // m, key % m
        for u, v in zip(pu.tolist(), pv.tolist(), strict=True):
            self.adjacent[u].add(v)
            self.adjacent[v].add(u)
        heap: list[tuple[float, int, int, int, int]] = []
        for u in range(m):
            self._push_best(u, heap)
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
                if z >= self.best_z[u]:
                    self.best_z[u], self.best_w[u] = z, w
                    heapq.heappush(heap, (-z, u, w, version_u, int(self.version[w])))
                    continue
            self._push_best(u, heap)

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
        self.cohesion[u] = float(self.sums[u] @ self.sums[u]) / self.count[u] ** 2
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

    def labels(self) -> NDArray[np.int64]:
        root = self.parent.copy()
        while True:
            nxt = root[root]
            if np.array_equal(nxt, root):
                break
            root = nxt
        return np.unique(root[self.node], return_inverse=True)[1].astype(np.int64)

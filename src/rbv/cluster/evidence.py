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
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from rbv.cluster.constraints import NO_ANCHOR, Constraints, enforce
from rbv.cluster.knn import KnnGraph, normalize

DEFAULT_BUDGET = 10.0
"""Expected impostor face pairs a library may let through a single-pair test. Measured
plateau (SFace, both labelled sets ≥ 0.98 pairwise F): 10–50."""
TAU_PER_SIGMA = 0.23
"""``tau`` as a share of ``sigma`` when a recognizer's model is estimated, not measured."""
_CHUNK = 65_536


@dataclass(frozen=True)
class ImpostorModel:
    """Different-person cosine similarity of one recognizer: mean ``mu``, spread
    ``sigma``, and ``tau``, the spread that averaging over faces does not remove."""

    mu: float
    sigma: float
    tau: float

    @classmethod
    def from_pairs(cls, similarities: NDArray[np.floating], *, robust: bool) -> ImpostorModel:
        """From similarities of face pairs of different people: mean and standard
        deviation; or (``robust``, for random pairs of a library, some of which are the
        same person) from the lower half alone, which same-person pairs do not reach:
        the median, and the spread that puts the lower quartile where a normal
        distribution has it. Measured: a 25-person library's estimate scores pairwise
        F 0.970 with this, 0.956 with the median absolute deviation."""
        s = np.asarray(similarities, np.float64)
        if robust:
            mu = float(np.median(s))
            sigma = float((mu - np.quantile(s, 0.25)) / 0.6745)
        else:
            mu, sigma = float(s.mean()), float(s.std())
        return cls(round(mu, 4), round(sigma, 4), round(TAU_PER_SIGMA * sigma, 4))

    def z_threshold(self, n_faces: int, budget: float) -> float:
        """The z a merge needs in a library of ``n_faces`` faces (at least 1)."""
        pairs = max(n_faces * (n_faces - 1) / 2.0, 1.0)
        p = min(budget / pairs, 0.5)
        return float(max(-ndtri(p), 1.0))

    def pair_similarity(self, n_faces: int, budget: float) -> float:
        """The cosine similarity two single faces need to be merged."""
        z = self.z_threshold(n_faces, budget)
        return self.mu + z * float(np.sqrt(self.sigma ** 2 + self.tau ** 2))

    def as_dict(self) -> dict[str, float]:
        return {"mu": self.mu, "sigma": self.sigma, "tau": self.tau}


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
    n = constraints.n
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    pairs = [constraints.must]
    if constraints.anchors is not None:
        anchored = np.flatnonzero(constraints.anchors != NO_ANCHOR)
        order = anchored[np.argsort(constraints.anchors[anchored], kind="stable")]
        same = constraints.anchors[order[1:]] == constraints.anchors[order[:-1]]
        pairs.append(np.stack([order[:-1][same], order[1:][same]], 1))
    for a, b in np.concatenate(pairs).tolist():
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([find(i) for i in range(n)], np.int64)
    return np.unique(roots, return_inverse=True)[1].astype(np.int64)


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

    def _z(self, u: int, vs: NDArray[np.int64]) -> NDArray[np.float64]:
        mean = (self.sums[vs] @ self.sums[u]) / (self.count[vs] * self.count[u])
        spread = self.model.sigma ** 2 * self.cohesion[vs] * self.cohesion[u] + self.model.tau ** 2
        return np.asarray((mean - self.model.mu) / np.sqrt(spread), np.float64)

    def link(self, graph: KnnGraph) -> None:
        a, b, _ = graph.edges(self.model.mu)
        a, b = self.node[a], self.node[b]
        keep = a != b
        a, b = np.minimum(a[keep], b[keep]), np.maximum(a[keep], b[keep])
        if len(a) == 0:
            return
        key = np.unique(a * len(self.count) + b)
        pu, pv = key // len(self.count), key % len(self.count)
        for u, v in zip(pu.tolist(), pv.tolist(), strict=True):
            self.adjacent[u].add(v)
            self.adjacent[v].add(u)
        z = np.empty(len(pu))
        for lo in range(0, len(pu), _CHUNK):  # no (pairs × dim) temporaries
            u_, v_ = pu[lo:lo + _CHUNK], pv[lo:lo + _CHUNK]
            mean = np.einsum("ij,ij->i", self.sums[u_], self.sums[v_]) / (
                self.count[u_] * self.count[v_])
            spread = (self.model.sigma ** 2 * self.cohesion[u_] * self.cohesion[v_]
                      + self.model.tau ** 2)
            z[lo:lo + _CHUNK] = (mean - self.model.mu) / np.sqrt(spread)
        ok = (z >= self.z_min) & ~(self.anchored[pu] & self.anchored[pv])
        heap = list(zip((-z[ok]).tolist(), pu[ok].tolist(), pv[ok].tolist(),
                        [0] * int(ok.sum()), [0] * int(ok.sum()), strict=True))
        heapq.heapify(heap)
        while heap:
            _, u, v, version_u, version_v = heapq.heappop(heap)
            if (not (self.alive[u] and self.alive[v]) or self.version[u] != version_u
                    or self.version[v] != version_v):
                continue  # stale entry
            if v in self.blocked[u]:
                continue  # cannot-link; retried if either cluster changes
            self._merge(u, v, heap)

    def _merge(self, u: int, v: int, heap: list[tuple[float, int, int, int, int]]) -> None:
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
        if not self.adjacent[u]:
            return
        ws = np.fromiter(self.adjacent[u], np.int64, len(self.adjacent[u]))
        if self.anchored[u]:
            ws = ws[~self.anchored[ws]]
        if len(ws) == 0:
            return
        z = self._z(u, ws)
        passing = z >= self.z_min
        for w, zz in zip(ws[passing].tolist(), z[passing].tolist(), strict=True):
            p, q = (u, w) if u < w else (w, u)
            heapq.heappush(heap, (-zz, p, q, int(self.version[p]), int(self.version[q])))

    def labels(self) -> NDArray[np.int64]:
        root = self.parent.copy()
        while True:
            nxt = root[root]
            if np.array_equal(nxt, root):
                break
            root = nxt
        return np.unique(root[self.node], return_inverse=True)[1].astype(np.int64)

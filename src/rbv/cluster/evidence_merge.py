"""The greedy merge loop of evidence linkage, compiled (numba).

Highest ``z`` first, one merge at a time: the statistic is not reducible (a merged
cluster is less cohesive than its parts, so its spread shrinks and its ``z`` to a third
cluster can exceed both parts'), so merging all mutual best pairs at once, the usual
vectorised shortcut, would give other partitions. The loop itself is compiled instead:
at 100k faces the interpreted version spent about a minute on set and heap bookkeeping.
The compiled code is cached next to this file (first use in a fresh install: a few
seconds to compile).

``tests.support.evidence_reference`` holds the interpreted loop it replaced and a plain
quadratic greedy; the tests check that all three give the same partitions.
"""

from __future__ import annotations

import heapq

import numpy as np
from numba import njit
from numpy.typing import NDArray

_Entry = tuple[float, float, float, float, float]


def merge_greedily(sums: NDArray[np.float64], count: NDArray[np.float64],
                   anchored: NDArray[np.bool_], cannot: NDArray[np.int64],
                   pairs: NDArray[np.int64], mu: float, sigma: float, tau: float,
                   z_min: float, crowd: NDArray[np.float64] | None = None
                   ) -> NDArray[np.int64]:
    """Each cluster node's final node (the root it merged into).

    ``sums``/``count``: each node's sum of unit embeddings and its size (``sums`` is
    updated in place); ``crowd``: each node's sum of its faces' crowding (a pair's
    impostor mean is ``mu`` plus half the two sides' mean crowding; see
    :mod:`rbv.cluster.crowding`; None: none); ``anchored``: nodes holding a known
    person (two never merge);
    ``cannot``: node pairs that may never join; ``pairs``: candidate node pairs
    (``u < v``, each once). Ties in ``z`` go to the lower node id."""
    cohesion = np.einsum("ij,ij->i", sums, sums) / count ** 2
    crowd = np.zeros(len(count)) if crowd is None else np.array(crowd, np.float64)
    parent = _link(sums, count, cohesion, crowd, anchored.copy(),
                   np.ascontiguousarray(cannot, np.int64).reshape(-1, 2),
                   np.ascontiguousarray(pairs, np.int64).reshape(-1, 2),
                   float(mu), float(sigma) ** 2, float(tau) ** 2, float(z_min))
    return np.asarray(_roots(parent), np.int64)


def _roots(parent: NDArray[np.int64]) -> NDArray[np.int64]:
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _dot(sums, u, w):
    out = 0.0
    for j in range(sums.shape[1]):
        out += sums[u, j] * sums[w, j]
    return out


@njit(cache=True, nogil=True)
def _mu(count, crowd, u, w, mu):
    """The pair's impostor mean: ``mu`` raised by half the sides' mean crowding."""
    return mu + 0.5 * (crowd[u] / count[u] + crowd[w] / count[w])


@njit(cache=True, nogil=True)
def _z(sums, count, cohesion, crowd, u, w, mu, sigma2, tau2):
    mean = _dot(sums, w, u) / (count[w] * count[u])
    return ((mean - _mu(count, crowd, u, w, mu))
            / np.sqrt(sigma2 * cohesion[w] * cohesion[u] + tau2))


@njit(cache=True, nogil=True)
def _root(parent, v):
    root = v
    while parent[root] != root:
        root = parent[root]
    while parent[v] != root:  # path compression
        nxt = parent[v]
        parent[v] = root
        v = nxt
    return root


@njit(cache=True, nogil=True)
def _link(sums, count, cohesion, crowd, anchored, cannot, pairs, mu, sigma2, tau2, z_min):
    """The heap holds one entry per cluster (its best partner), refreshed when either
    side has changed since, so it stays as small as the number of clusters. Entries are
    (-z, u, w, version of u, version of w), all floats (exact below 2**53).

    ``adjacent[u]`` maps each neighbour ``w`` to an upper bound of
    ``S_u·S_w − n_u n_w`` (the sum of ``similarity − 1`` over their face pairs: never
    positive, and only falls as either side takes in faces), exact when last scored
    and carried through merges by addition. A neighbour whose bound keeps its ``z``
    below ``z_min`` can be neither a cluster's best partner nor a better one for
    anybody, so it is not scored: a large cluster's thousands of neighbours cost a
    subtraction each, not a dot product each, every time it grows."""
    m = len(count)
    parent = np.arange(m)
    version = np.zeros(m, np.int64)
    alive = np.ones(m, np.bool_)
    best_z = np.full(m, -np.inf)
    best_w = np.full(m, -1, np.int64)
    adjacent = [{np.int64(-1): 0.0} for _ in range(m)]
    blocked = [{np.int64(-1)} for _ in range(m)]
    for u in range(m):
        adjacent[u].pop(-1)
        blocked[u].discard(-1)
    for i in range(len(cannot)):
        blocked[cannot[i, 0]].add(cannot[i, 1])
        blocked[cannot[i, 1]].add(cannot[i, 0])
    for i in range(len(pairs)):
        adjacent[pairs[i, 0]][pairs[i, 1]] = 0.0  # 0: the bound that holds for any pair
        adjacent[pairs[i, 1]][pairs[i, 0]] = 0.0
    ws = np.empty(m, np.int64)  # scratch: one cluster's mergeable neighbours
    zs = np.empty(m)  # and their z
    heap = [(0.0, 0.0, 0.0, 0.0, 0.0)]
    heap.pop()  # typed, empty
    for u in range(m):
        _push_best(u, -1, heap, sums, count, cohesion, crowd, anchored, adjacent,
                   blocked, version, best_z, best_w, ws, zs, mu, sigma2, tau2, z_min)
    while len(heap):
        _, fu, fw, fversion_u, fversion_w = heapq.heappop(heap)
        u, w = int(fu), int(fw)
        if not alive[u] or version[u] != int(fversion_u):
            continue  # u changed since: a fresher entry of u is in the heap
        if alive[w] and version[w] == int(fversion_w):
            survivor, absorbed = _merge(u, w, sums, count, cohesion, crowd, anchored,
                                        adjacent, blocked, parent, version, alive)
            _push_best(survivor, absorbed, heap, sums, count, cohesion, crowd, anchored,
                       adjacent, blocked, version, best_z, best_w, ws, zs, mu, sigma2, tau2,
                       z_min)
            continue
        # Only the partner changed (it grew, or was merged into another cluster).
        # Usually it is still u's best and only its z moved: re-score that one pair;
        # look at all of u's neighbours again only when the pair got worse.
        w = _root(parent, w)
        if w == u:
            continue
        if w not in blocked[u] and not (anchored[u] and anchored[w]):
            z = _z(sums, count, cohesion, crowd, u, w, mu, sigma2, tau2)
            if z >= z_min and z >= best_z[u]:
                best_z[u], best_w[u] = z, w
                heapq.heappush(heap, (-z, float(u), float(w), fversion_u, float(version[w])))
                continue
        _push_best(u, -1, heap, sums, count, cohesion, crowd, anchored, adjacent,
                   blocked, version, best_z, best_w, ws, zs, mu, sigma2, tau2, z_min)
    return parent


@njit(cache=True, nogil=True)
def _push_best(u, absorbed, heap, sums, count, cohesion, crowd, anchored, adjacent,
               blocked, version, best_z, best_w, ws, zs, mu, sigma2, tau2, z_min):
    """Push cluster ``u``'s best mergeable partner, if one passes; and, to neighbours
    for which ``u`` is now a better partner than the one they hold, that entry (so the
    merge order stays exactly greedy). ``absorbed``: the cluster ``u`` has just taken
    in (its neighbours' entries are refreshed when popped)."""
    best_z[u], best_w[u] = -np.inf, -1
    blocked_u = blocked[u]
    slack = 1e-9 * (1.0 + abs(z_min))  # rounding, always in the bound's favour
    n = 0  # first the neighbours whose bound reaches z_min, with that bound
    for w, bound in adjacent[u].items():
        if w in blocked_u or (anchored[u] and anchored[w]):
            continue
        most = ((1.0 + bound / (count[u] * count[w]) - _mu(count, crowd, u, w, mu))
                / np.sqrt(sigma2 * cohesion[w] * cohesion[u] + tau2))
        if most >= z_min - slack:
            ws[n], zs[n] = w, most
            n += 1
    if n == 0:
        return
    # Then exact scores, the highest bound first, for the neighbours that may be u's
    # best (bound ≥ the best so far) or may find u better than the partner they hold.
    first = int(np.argmax(zs[:n]))
    best, top = -1, -np.inf
    for step in range(n):
        i = first if step == 0 else step - 1 if step <= first else step
        w, most = ws[i], zs[i]
        if not (most >= top - slack or (best_w[w] != u and best_w[w] != absorbed
                                        and most > best_z[w] - slack)):
            zs[i] = -np.inf  # neither u's best nor better than w's own: not scored
            continue
        dot = _dot(sums, w, u)
        pairs = count[w] * count[u]
        z = ((dot / pairs - _mu(count, crowd, u, w, mu))
             / np.sqrt(sigma2 * cohesion[w] * cohesion[u] + tau2))
        adjacent[u][w] = dot - pairs
        zs[i] = z
        if z > top or (z == top and w < ws[best]):
            best, top = i, z
    if top >= z_min:
        w = ws[best]
        best_z[u], best_w[u] = top, w
        heapq.heappush(heap, (-top, float(u), float(w), float(version[u]), float(version[w])))
    for i in range(n):
        w, z = ws[i], zs[i]
        if z >= z_min and z > best_z[w] and best_w[w] != u and best_w[w] != absorbed:
            best_z[w], best_w[w] = z, u
            heapq.heappush(heap, (-z, float(w), float(u), float(version[w]),
                                  float(version[u])))


@njit(cache=True, nogil=True)
def _merge(u, v, sums, count, cohesion, crowd, anchored, adjacent, blocked, parent, version,
           alive):
    """Join clusters ``u`` and ``v``; returns (the surviving node, the absorbed one).
    Work in proportion to the smaller side's neighbours: the survivor's other bounds
    stay valid as they are (``v``'s faces can only lower them)."""
    if len(adjacent[u]) < len(adjacent[v]):
        u, v = v, u  # keep the node with more neighbours
    for j in range(sums.shape[1]):
        sums[u, j] += sums[v, j]
    count[u] += count[v]
    crowd[u] += crowd[v]
    cohesion[u] = _dot(sums, u, u) / count[u] ** 2
    anchored[u] = anchored[u] or anchored[v]
    for w in blocked[v]:
        if w != v:
            blocked[w].discard(v)
            blocked[w].add(u)
    blocked[u] |= blocked[v]
    adjacent_u = adjacent[u]
    for w, bound in adjacent[v].items():
        if w == u:
            continue
        adjacent_w = adjacent[w]
        from_w = adjacent_w.pop(v)
        if u in adjacent_w:
            adjacent_w[u] += from_w
            adjacent_u[w] += bound
        else:
            adjacent_w[u] = from_w
            adjacent_u[w] = bound
    adjacent_u.pop(v, 0.0)
    blocked[v].clear()
    adjacent[v].clear()
    alive[v] = False
    parent[v] = u
    version[u] += 1
    return u, v

"""The greedy merge loop of evidence linkage, compiled (numba).

Highest ``z`` first, one merge at a time: the statistic is not reducible (a merged
cluster is less cohesive than its parts, so its spread shrinks and its ``z`` to a third
cluster can exceed both parts'), so merging all mutual best pairs at once, the usual
vectorised shortcut, would give other partitions, and so would splitting the work
between cores (the candidate graph of a library is one component). The loop itself is
compiled instead, and laid out for a million faces:

* a node is a face's float32 unit row, read in place, until it takes in another face;
  then its float64 sum gets a slot of its own (slots are reused as clusters merge). A
  dot product copies float32 rows to float64 first, so it is the one a float64 copy of
  every row would give (products of float32 values are exact in float64): a full copy
  was 4 GB at 1M × 512-d;
* what looking at a neighbour reads (its size, cohesion, crowding, best partner,
  parent) shares one row of one array: scanning a large cluster's thousands of
  neighbours costs one cache line per neighbour;
* neighbour lists are segments of one pool: a merge appends the smaller list to the
  larger, and entries that name a node merged since are counted for its root, once,
  when the list is next read (no per-node hash tables);
* the first score of every candidate pair (the bulk of the dot products) is computed on
  every core before the loop, once for both passes of crowding (:func:`prepare`).

``tests.support.evidence_reference`` holds a plain quadratic greedy; the tests check that
this loop, the interpreted one (:mod:`rbv.cluster.evidence_heap`) and it give the same
partitions.
"""

from __future__ import annotations

import heapq

import numpy as np
from numba import njit
from numpy.typing import NDArray

from rbv.cluster.cores import on_all_cores
from rbv.cluster.evidence_kernels import (
    append_list,
    build_lists,
    dot64,
    node_row,
    prefetch,
    prefetch_row,
)
from rbv.cluster.evidence_nodes import Nodes

# Columns of the per-node array, one 64-byte cache line: what looking at a neighbour
# reads (all float64; ids and clocks are exact below 2**53). SEEN: the clock of the last
# scan that met the cluster as a neighbour; WHERE: the entry that scan gave it.
COUNT, COHESION, CROWD_MEAN, BEST_Z, BEST_W, PARENT, SEEN, WHERE = range(8)
AHEAD = 16
"""Neighbour entries a scan asks the CPU for before it reads them."""


def merge_greedily(nodes: Nodes, anchored: NDArray[np.bool_], cannot: NDArray[np.int64],
                   mu: float, sigma: float, tau: float, z_min: float,
                   crowd: NDArray[np.float64] | None = None) -> NDArray[np.int64]:
    """Each node's final node (the root it merged into).

    ``crowd``: each node's sum of its faces' crowding (a pair's impostor mean is ``mu``
    plus half the two sides' mean crowding; see :mod:`rbv.cluster.crowding`; None:
    none); ``anchored``: nodes holding a known person (two never merge); ``cannot``:
    node pairs that may never join. Ties in ``z`` go to the lower node id."""
    m, dim = len(nodes.ref), nodes.sums.shape[1]
    if m == 0:
        return np.empty(0, np.int64)
    dots, cohesion = nodes.scores
    info = _cache_lines(m, 8)
    info[:, COUNT] = nodes.count
    info[:, COHESION] = cohesion
    crowd = np.zeros(m) if crowd is None else np.array(crowd, np.float64)
    info[:, CROWD_MEAN] = crowd / nodes.count
    info[:, BEST_Z] = -np.inf
    info[:, BEST_W] = -1.0
    info[:, PARENT] = np.arange(m)
    info[:, SEEN] = -1.0
    info[:, WHERE] = 0.0
    anchored = np.array(anchored, np.bool_)
    adj_seg, adj_t, adj_b = build_lists(m, np.ascontiguousarray(nodes.pairs), dots)
    blk_seg, blk_t, _ = build_lists(m, np.ascontiguousarray(cannot, np.int64).reshape(-1, 2),
                              np.zeros(len(cannot)))
    sigma2, tau2 = float(sigma) ** 2, float(tau) ** 2

    def first(lo: int, hi: int) -> None:
        _first_best(lo, hi, info, anchored, adj_seg, adj_t, adj_b, blk_seg, blk_t, float(mu),
                    sigma2, tau2, float(z_min))

    on_all_cores(first, m)
    # Slots for sums of merged clusters: at most one per two faces, reserved, not
    # touched (memory is used as clusters form; slots are reused).
    sums = np.empty((len(nodes.sums) + m // 2 + 1, dim))
    sums[:len(nodes.sums)] = nodes.sums
    ref = nodes.ref.copy()
    rows = np.ascontiguousarray(nodes.rows, np.float32)
    _link(rows, sums, len(nodes.sums), ref, info, crowd, anchored, adj_seg, adj_t, adj_b,
          blk_seg, blk_t, float(mu), sigma2, tau2, float(z_min))
    return np.asarray(_roots(info[:, PARENT].astype(np.int64)), np.int64)


def _cache_lines(m: int, columns: int) -> NDArray[np.float64]:
    """An uninitialised (m, columns) float64 array whose rows start on 64-byte
    boundaries (numpy only promises 16)."""
    buf = np.empty(m * columns + 8)
    skip = (-buf.ctypes.data % 64) // 8
    return buf[skip:skip + m * columns].reshape(m, columns)


def _roots(parent: NDArray[np.int64]) -> NDArray[np.int64]:
    root = parent.copy()
    while True:
        nxt = root[root]
        if np.array_equal(nxt, root):
            return root
        root = nxt


@njit(cache=True, nogil=True)
def _first_best(lo, hi, info, anchored, adj_seg, adj_t, adj_b, blk_seg, blk_t, mu, sigma2,
                tau2, z_min):
    """Nodes ``lo..hi-1``: each one's best partner from the pairs' dot products (stored
    in ``adj_b``, replaced by the bound ``dot − n_u n_w``, exact while nothing merged)."""
    mark = np.full(info.shape[0], -1, np.int64)
    for u in range(lo, hi):
        for e in range(blk_seg[u, 0], blk_seg[u, 0] + blk_seg[u, 1]):
            mark[blk_t[e]] = u
        best, top = -1, -np.inf
        cu, hu, au = info[u, COUNT], info[u, COHESION], info[u, CROWD_MEAN]
        for e in range(adj_seg[u, 0], adj_seg[u, 0] + adj_seg[u, 1]):
            w = adj_t[e]
            dot = adj_b[e]
            pairs = info[w, COUNT] * cu
            adj_b[e] = dot - pairs
            if mark[w] == u or (anchored[u] and anchored[w]):
                continue
            z = ((dot / pairs - (mu + 0.5 * (au + info[w, CROWD_MEAN])))
                 / np.sqrt(sigma2 * info[w, COHESION] * hu + tau2))
            if z > top or (z == top and w < best):
                best, top = w, z
        if top >= z_min:
            info[u, BEST_Z], info[u, BEST_W] = top, best


@njit(cache=True, nogil=True)
def _find(info, v):
    root = v
    while int(info[root, PARENT]) != root:
        root = int(info[root, PARENT])
    while v != root:  # path compression
        nxt = int(info[v, PARENT])
        info[v, PARENT] = root
        v = nxt
    return root


@njit(cache=True, nogil=True)
def _link(rows, sums, used, ref, info, crowd, anchored, adj_seg, adj_t, adj_b, blk_seg, blk_t, mu,
          sigma2, tau2, z_min):
    """The heap holds one entry per cluster (its best partner), refreshed when either
    side has changed since, so it stays as small as the number of clusters. Entries are
    (-z, u, w, version of u, version of w), all floats.

    A neighbour list entry (w, b) bounds ``S_u·S_w − n_u n_w`` from above (the sum of
    ``similarity − 1`` over some of their face pairs: never positive, and only falls as
    either side takes in faces), exact when last scored; a node's entries that now
    resolve to one cluster are added up (they cover different face pairs). A neighbour
    whose bound keeps its ``z`` below ``z_min`` can be neither a cluster's best partner
    nor a better one for anybody, so it is not scored: a large cluster's thousands of
    neighbours cost a subtraction each, not a dot product each, every time it grows."""
    m = info.shape[0]
    dim = sums.shape[1]
    heap = [(0.0, 0.0, 0.0, 0.0, 0.0)]
    heap.pop()  # typed, empty
    for u in range(m):
        if info[u, BEST_Z] >= z_min:
            heap.append((-info[u, BEST_Z], float(u), info[u, BEST_W], 0.0, 0.0))
    heapq.heapify(heap)
    free = np.empty(len(sums), np.int64)  # sum slots given back, a stack
    # slots used, slots free, the scans' clock, each pool's first unused entry
    state = np.array([used, 0, 0, adj_seg[m - 1, 0] + adj_seg[m - 1, 2],
                      blk_seg[m - 1, 0] + blk_seg[m - 1, 2]], np.int64)
    version = np.zeros(m)
    blocked = np.full(m, -1, np.int64)  # scratch: the clock of the scan that found it
    skip = np.zeros(m, np.bool_)  # the entries of blocked clusters in a scan
    ws = np.empty(m, np.int64)  # scratch: one cluster's mergeable neighbours' entries
    zs = np.empty(m)  # and their z
    su, sw = np.empty(dim), np.empty(dim)
    no_values = np.empty(0)
    while len(heap):
        _, fu, fw, fversion_u, fversion_w = heapq.heappop(heap)
        u, w = int(fu), int(fw)
        if int(info[u, PARENT]) != u or version[u] != fversion_u:
            continue  # u changed since: a fresher entry of u is in the heap
        if int(info[w, PARENT]) == w and version[w] == fversion_w:
            if adj_seg[u, 1] < adj_seg[w, 1]:
                u, w = w, u  # the longer neighbour list takes in the shorter
            _merge_sums(rows, sums, ref, info, crowd, state, free, u, w)
            anchored[u] = anchored[u] or anchored[w]
            adj_t, adj_b = append_list(adj_seg, adj_t, adj_b, state, 3, u, w)
            blk_t, _ = append_list(blk_seg, blk_t, no_values, state, 4, u, w)
            info[w, PARENT] = u
            version[u] += 1
            _push_best(u, w, heap, rows, sums, ref, info, anchored, adj_seg, adj_t, adj_b,
                       blk_seg, blk_t, state, version, blocked, skip, ws, zs, su, sw, mu,
                       sigma2, tau2, z_min)
            continue
        # Only the partner changed (it grew, or was merged into another cluster).
        # Usually it is still u's best and only its z moved: re-score that one pair;
        # look at all of u's neighbours again only when the pair got worse.
        w = _find(info, w)
        if w == u:
            continue
        if not (anchored[u] and anchored[w]) and not _is_blocked(info, blk_seg, blk_t, u, w):
            dot = dot64(node_row(rows, sums, ref, w, sw), node_row(rows, sums, ref, u, su))
            z = ((dot / (info[w, COUNT] * info[u, COUNT])
                  - (mu + 0.5 * (info[u, CROWD_MEAN] + info[w, CROWD_MEAN])))
                 / np.sqrt(sigma2 * info[w, COHESION] * info[u, COHESION] + tau2))
            if z >= z_min and z >= info[u, BEST_Z]:
                info[u, BEST_Z], info[u, BEST_W] = z, w
                heapq.heappush(heap, (-z, float(u), float(w), fversion_u, version[w]))
                continue
        _push_best(u, -1, heap, rows, sums, ref, info, anchored, adj_seg, adj_t, adj_b,
                   blk_seg, blk_t, state, version, blocked, skip, ws, zs, su, sw, mu, sigma2,
                   tau2, z_min)


@njit(cache=True, nogil=True)
def _merge_sums(rows, sums, ref, info, crowd, state, free, u, v):
    """Cluster ``u`` takes in ``v``'s faces: sum (in a slot of its own from now on),
    size, crowding and cohesion."""
    ru, rv = ref[u], ref[v]
    if ru >= 0 and rv < 0:
        slot = -rv - 1  # u takes v's slot
        for j in range(sums.shape[1]):
            sums[slot, j] += rows[ru, j]
    elif ru >= 0:
        if state[1] > 0:
            state[1] -= 1
            slot = free[state[1]]
        else:
            slot = state[0]
            state[0] += 1
        for j in range(sums.shape[1]):
            sums[slot, j] = np.float64(rows[ru, j]) + np.float64(rows[rv, j])
    else:
        slot = -ru - 1
        if rv < 0:
            for j in range(sums.shape[1]):
                sums[slot, j] += sums[-rv - 1, j]
            free[state[1]] = -rv - 1
            state[1] += 1
        else:
            for j in range(sums.shape[1]):
                sums[slot, j] += rows[rv, j]
    ref[u] = -slot - 1
    info[u, COUNT] += info[v, COUNT]
    crowd[u] += crowd[v]
    info[u, CROWD_MEAN] = crowd[u] / info[u, COUNT]
    info[u, COHESION] = dot64(sums[slot], sums[slot]) / info[u, COUNT] ** 2


@njit(cache=True, nogil=True)
def _is_blocked(info, blk_seg, blk_t, u, w):
    for e in range(blk_seg[u, 0], blk_seg[u, 0] + blk_seg[u, 1]):
        if _find(info, blk_t[e]) == w:
            return True
    return False


@njit(cache=True, nogil=True)
def _push_best(u, absorbed, heap, rows, sums, ref, info, anchored, adj_seg, adj_t, adj_b,
               blk_seg, blk_t, state, version, blocked, skip, ws, zs, su, sw, mu, sigma2,
               tau2, z_min):
    """Push cluster ``u``'s best mergeable partner, if one passes; and, to neighbours
    for which ``u`` is now a better partner than the one they hold, that entry (so the
    merge order stays exactly greedy). ``absorbed``: the cluster ``u`` has just taken
    in (its neighbours' entries are refreshed when popped)."""
    info[u, BEST_Z], info[u, BEST_W] = -np.inf, -1.0
    state[2] += 1
    clock = state[2]
    # u's neighbour list with one entry per cluster (internal entries dropped, entries
    # of one cluster added up), rewritten in place; each neighbour's row asked for
    # AHEAD entries early.
    flat = info.reshape(-1)
    s, out, end = adj_seg[u, 0], adj_seg[u, 0], adj_seg[u, 0] + adj_seg[u, 1]
    for e in range(s, end):
        if e + AHEAD < end:
            prefetch(flat, adj_t[e + AHEAD] * 8)
        r = _find(info, adj_t[e])
        if r == u:
            continue
        if info[r, SEEN] == clock:
            adj_b[int(info[r, WHERE])] += adj_b[e]
        else:
            info[r, SEEN], info[r, WHERE] = clock, out
            adj_t[out], adj_b[out] = r, adj_b[e]
            out += 1
    adj_seg[u, 1] = out - s
    # The clusters u may not join (its list rewritten the same way): their entries
    # are skipped.
    bs, bout = blk_seg[u, 0], blk_seg[u, 0]
    for e in range(bs, bs + blk_seg[u, 1]):
        r = _find(info, blk_t[e])
        if r != u and blocked[r] != clock:
            blocked[r] = clock
            blk_t[bout] = r
            bout += 1
            if info[r, SEEN] == clock:
                skip[int(info[r, WHERE]) - s] = True
    blk_seg[u, 1] = bout - bs
    slack = 1e-9 * (1.0 + abs(z_min))  # rounding, always in the bound's favour
    cu, hu, au = info[u, COUNT], info[u, COHESION], info[u, CROWD_MEAN]
    anchored_u = anchored[u]
    n = 0  # first the neighbours whose bound reaches z_min, with that bound
    for e in range(s, out):
        w = adj_t[e]
        if skip[e - s] or (anchored_u and anchored[w]):
            continue
        most = ((1.0 + adj_b[e] / (cu * info[w, COUNT]) - (mu + 0.5 * (au + info[w, CROWD_MEAN])))
                / np.sqrt(sigma2 * info[w, COHESION] * hu + tau2))
        if most >= z_min - slack:
            ws[n], zs[n] = e, most
            n += 1
    for e in range(bs, bout):
        r = blk_t[e]
        if info[r, SEEN] == clock:
            skip[int(info[r, WHERE]) - s] = False
    if n == 0:
        return
    # Then exact scores, the highest bound first, for the neighbours that may be u's
    # best (bound ≥ the best so far) or may find u better than the partner they hold.
    first = int(np.argmax(zs[:n]))
    best, top = -1, -np.inf
    row_u = node_row(rows, sums, ref, u, su)
    for step in range(n):
        i = first if step == 0 else step - 1 if step <= first else step
        if step + 1 < n:  # the next one's row, when it may be scored
            following = step if step + 1 <= first else step + 1
            if zs[following] >= top - slack:
                prefetch_row(rows, sums, ref, adj_t[ws[following]])
        e, most = ws[i], zs[i]
        w = adj_t[e]
        partner = int(info[w, BEST_W])
        if not (most >= top - slack or (partner != u and partner != absorbed
                                        and most > info[w, BEST_Z] - slack)):
            zs[i] = -np.inf  # neither u's best nor better than w's own: not scored
            continue
        dot = dot64(node_row(rows, sums, ref, w, sw), row_u)
        pairs = info[w, COUNT] * cu
        z = ((dot / pairs - (mu + 0.5 * (au + info[w, CROWD_MEAN])))
             / np.sqrt(sigma2 * info[w, COHESION] * hu + tau2))
        adj_b[e] = dot - pairs
        zs[i] = z
        if z > top or (z == top and w < adj_t[ws[best]]):
            best, top = i, z
    if top >= z_min:
        w = adj_t[ws[best]]
        info[u, BEST_Z], info[u, BEST_W] = top, w
        heapq.heappush(heap, (-top, float(u), float(w), version[u], version[w]))
    for i in range(n):
        w, z = adj_t[ws[i]], zs[i]
        partner = int(info[w, BEST_W])
        if z >= z_min and z > info[w, BEST_Z] and partner != u and partner != absorbed:
            info[w, BEST_Z], info[w, BEST_W] = z, u
            heapq.heappush(heap, (-z, float(w), float(u), version[w], version[u]))

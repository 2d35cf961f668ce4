"""The compiled (numba) greedy merge loop of evidence linkage and its kernels: the best
partner of every node first (:func:`first_best`, on every core), then one merge at a
time, highest ``z`` first (:func:`link`). :func:`rbv.cluster.evidence_merge.merge_greedily`
sets up its arrays and calls it; that module says how the loop is laid out."""

from __future__ import annotations

import heapq
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.evidence_kernels import (
    append_list,
    append_one,
    dot64,
    node_dot,
    node_row,
    prefetch,
    prefetch_row,
)
from rbv.cluster.evidence_singles import (  # the per-node array's columns, too
    BEST_W,
    BEST_Z,
    COHESION,
    COUNT,
    CROWD_MEAN,
    IN_HEAP,
    PARENT,
    PARTIAL_FROM_AT,
    SEEN,
    WHERE,
    heap_singles,
    is_single,
    offer,
    unheap,
    walk,
)
from rbv.compiled import njit

AHEAD = 16
"""Neighbour entries a scan asks the CPU for before it reads them."""
REKEY_GROWTH = 1.1
"""A heap's keys are set again when its cluster has grown this much since (their
crowding term is bounded by the least crowding of any face as the cluster grows)."""
REST_MIN = 64
"""Entries after a heap that may pile up (clusters told of merged faces, lists taken in)
before the heap's faces are read with them again."""


class Parts(NamedTuple):
    """Large clusters' heaps of single faces (:mod:`rbv.cluster.evidence_singles`)."""

    heap_len: NDArray[np.int64]
    """Per cluster: entries at the front of its list that are its heap."""
    n_ref: NDArray[np.float64]
    """Per cluster: its size when its heap's keys were set."""
    rest_ref: NDArray[np.int64]
    """Per cluster: entries after its heap when the heap was last filled."""
    big: NDArray[np.bool_]
    """Per cluster: it keeps a heap (its single faces' merges tell it)."""
    heap_of: NDArray[np.int64]
    """Per single face: the last cluster that put it in its heap."""
    told: NDArray[np.int64]
    """Scratch: the large clusters one scan found."""
    fstate: NDArray[np.float64]
    """The least crowding and cohesion of a single face, and ``partial_from``."""


@njit(cache=True, nogil=True)
def first_best(lo, hi, info, anchored, adj_seg, adj_t, adj_b, blk_seg, blk_t, mu, sigma2,
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
def link(rows, sums, used, ref, info, crowd, anchored, adj_seg, adj_t, adj_b, blk_seg, blk_t, mu,
         sigma2, tau2, z_min, part, order):
    """The heap holds one entry per cluster (its best partner), refreshed when either
    side has changed since, so it stays as small as the number of clusters. Entries are
    (-z, u, w, version of u, version of w), all floats.

    A neighbour list entry (w, b) bounds ``S_u·S_w − n_u n_w`` from above (the sum of
    ``similarity − 1`` over some of their face pairs: never positive, and only falls as
    either side takes in faces), exact when last scored; a node's entries that now
    resolve to one cluster are added up (they cover different face pairs). A neighbour
    whose bound keeps its ``z`` below ``z_min`` can be neither a cluster's best partner
    nor a better one for anybody, so it is not scored: a large cluster's thousands of
    neighbours cost a subtraction each, not a dot product each, every time it grows;
    and its single faces, nearly all of them, cost nothing until they may be its best
    (:mod:`rbv.cluster.evidence_singles`)."""
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
    ws = np.empty(m, np.int64)  # scratch: one cluster's mergeable neighbours' entries
    zs = np.empty(m)  # and their z
    su = np.empty(dim)  # scratch: u's row, when it is a face's
    no_values = np.empty(0)
    merged = 0
    while len(heap):
        negative_z, fu, fw, fversion_u, fversion_w = heapq.heappop(heap)
        u, w = int(fu), int(fw)
        if int(info[u, PARENT]) != u or version[u] != fversion_u:
            continue  # u changed since: a fresher entry of u is in the heap
        if int(info[w, PARENT]) == w and version[w] == fversion_w:
            if adj_seg[u, 1] < adj_seg[w, 1]:
                u, w = w, u  # the longer neighbour list takes in the shorter
            if merged < len(order):
                order[merged] = -negative_z
            merged += 1
            single = info[u, COUNT] == 1.0 or info[w, COUNT] == 1.0
            unheap(w, info, adj_seg, adj_t, adj_b, part.heap_len, part.n_ref, state)
            _merge_sums(rows, sums, ref, info, crowd, state, free, u, w)
            anchored[u] = anchored[u] or anchored[w]
            adj_t, adj_b = append_list(adj_seg, adj_t, adj_b, state, 3, u, w)
            blk_t, _ = append_list(blk_seg, blk_t, no_values, state, 4, u, w)
            info[w, PARENT] = u
            version[u] += 1
            told = _push_best(u, w, single, heap, rows, sums, ref, info, anchored, adj_seg,
                              adj_t, adj_b, blk_seg, blk_t, state, version, blocked, ws, zs,
                              su, mu, sigma2, tau2, z_min, part)
            for i in range(told):  # the large clusters whose heaps name a face of u's
                adj_t, adj_b = append_one(adj_seg, adj_t, adj_b, state, 3, part.told[i], u,
                                          0.0)
            continue
        # Only the partner changed (it grew, or was merged into another cluster).
        # Usually it is still u's best and only its z moved: re-score that one pair;
        # look at all of u's neighbours again only when the pair got worse.
        w = _find(info, w)
        if w == u:
            continue
        if not (anchored[u] and anchored[w]) and not _is_blocked(info, blk_seg, blk_t, u, w):
            dot = node_dot(rows, sums, ref, w, node_row(rows, sums, ref, u, su))
            z = ((dot / (info[w, COUNT] * info[u, COUNT])
                  - (mu + 0.5 * (info[u, CROWD_MEAN] + info[w, CROWD_MEAN])))
                 / np.sqrt(sigma2 * info[w, COHESION] * info[u, COHESION] + tau2))
            if z >= z_min and z >= info[u, BEST_Z]:
                info[u, BEST_Z], info[u, BEST_W] = z, w
                heapq.heappush(heap, (-z, float(u), float(w), fversion_u, version[w]))
                continue
        _push_best(u, -1, False, heap, rows, sums, ref, info, anchored, adj_seg, adj_t, adj_b,
                   blk_seg, blk_t, state, version, blocked, ws, zs, su, mu, sigma2, tau2,
                   z_min, part)


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
def _push_best(u, absorbed, single, heap, rows, sums, ref, info, anchored, adj_seg, adj_t, adj_b,
               blk_seg, blk_t, state, version, blocked, ws, zs, su, mu, sigma2, tau2, z_min,
               part):
    """Push cluster ``u``'s best mergeable partner, if one passes; and, to neighbours
    it scores for which ``u`` is now a better partner than the one they hold, that entry
    (the merge order stays exactly greedy: a pair is always in the heap through the side
    that changed last, which scores all of its own pairs that may be its best).
    ``absorbed``: the cluster ``u`` has just taken in (its neighbours' entries are
    refreshed when popped); ``single``: one of the two was a single face. A large list
    keeps its single faces in a heap at its front (:mod:`rbv.cluster.evidence_singles`);
    the rest is read whole. Returns how many large clusters (``part.told``) hold a single
    face that is now u's in their heaps."""
    info[u, BEST_Z], info[u, BEST_W] = -np.inf, -1.0
    s = adj_seg[u, 0]
    h = part.heap_len[u]
    if h > 0 and (info[u, COUNT] > REKEY_GROWTH * part.n_ref[u]
                  or adj_seg[u, 1] - h - part.rest_ref[u] > max(REST_MIN, h // 2)):
        unheap(u, info, adj_seg, adj_t, adj_b, part.heap_len, part.n_ref, state)
        h = 0
    state[2] += 1
    clock = state[2]
    # The clusters u may not join (its list of them rewritten with one entry each).
    bs, bout = blk_seg[u, 0], blk_seg[u, 0]
    for e in range(bs, bs + blk_seg[u, 1]):
        r = _find(info, blk_t[e])
        if r != u and blocked[r] != clock:
            blocked[r] = clock
            blk_t[bout] = r
            bout += 1
    blk_seg[u, 1] = bout - bs
    # The list after the heap with one entry per cluster (internal entries dropped,
    # entries of one cluster added up), rewritten in place; each neighbour's row asked
    # for AHEAD entries early.
    flat = info.reshape(-1)
    out, end = s + h, s + adj_seg[u, 1]
    told = 0
    for e in range(s + h, end):
        if e + AHEAD < end:
            prefetch(flat, adj_t[e + AHEAD] * 8)
        r = _find(info, adj_t[e])
        if r == u:
            continue
        if info[r, SEEN] == clock:
            if info[r, WHERE] >= 0.0:
                adj_b[int(info[r, WHERE])] += adj_b[e]
            continue
        if single and part.big[r]:
            part.told[told] = r
            told += 1
        if h > 0 and part.heap_of[r] == u and is_single(info, r):
            # u's heap holds this face: its entry bounds the pair already (the one
            # read here covers fewer of its face pairs), and the walk reads it
            info[r, SEEN], info[r, WHERE] = clock, IN_HEAP
            continue
        info[r, SEEN], info[r, WHERE] = clock, out
        adj_t[out], adj_b[out] = r, adj_b[e]
        out += 1
    adj_seg[u, 1] = out - s
    cu, hu, au = info[u, COUNT], info[u, COHESION], info[u, CROWD_MEAN]
    anchored_u = anchored[u]
    slack = 1e-9 * (1.0 + abs(z_min))  # rounding, always in the bound's favour
    n = 0  # first the neighbours whose bound reaches z_min, with that bound
    for e in range(s + h, out):
        w = adj_t[e]
        if blocked[w] == clock or (anchored_u and anchored[w]):
            continue
        most = ((1.0 + adj_b[e] / (cu * info[w, COUNT]) - (mu + 0.5 * (au + info[w, CROWD_MEAN])))
                / np.sqrt(sigma2 * info[w, COHESION] * hu + tau2))
        if most >= z_min - slack:
            ws[n], zs[n] = e, most
            n += 1
    best, top = -1, -np.inf
    if n > 0:
        best, top = _score(u, absorbed, heap, rows, sums, ref, info, adj_t, adj_b, version, ws,
                           zs, n, su, mu, sigma2, tau2, z_min)
    if h > 0:
        best, top = walk(u, absorbed, best, top, heap, rows, sums, ref, info, anchored,
                         adj_seg, adj_t, adj_b, blocked, clock, version, ws, zs, su, mu,
                         sigma2, tau2, z_min, part)
    if top >= z_min:
        info[u, BEST_Z], info[u, BEST_W] = top, best
        heapq.heappush(heap, (-top, float(u), float(best), version[u], version[best]))
    if part.heap_len[u] == 0 and (part.big[u] or adj_seg[u, 1] >= part.fstate[PARTIAL_FROM_AT]):
        part.big[u] = True  # from now on its single faces are kept in a heap
        part.n_ref[u] = cu
    if part.big[u]:
        heap_singles(u, info, anchored, adj_seg, adj_t, adj_b, blocked, clock, part)
    return told


@njit(cache=True, nogil=True)
def _score(u, absorbed, heap, rows, sums, ref, info, adj_t, adj_b, version, ws, zs, n, su,
           mu, sigma2, tau2, z_min):
    """Exact scores, the highest bound first, for the candidate entries ``ws[:n]``
    (bounds ``zs``) that may be u's best (bound ≥ the best so far) or may find u better
    than the partner they hold; pushes the latter. Returns u's best (target, z)."""
    slack = 1e-9 * (1.0 + abs(z_min))
    cu, hu, au = info[u, COUNT], info[u, COHESION], info[u, CROWD_MEAN]
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
        dot = node_dot(rows, sums, ref, w, row_u)
        pairs = info[w, COUNT] * cu
        z = ((dot / pairs - (mu + 0.5 * (au + info[w, CROWD_MEAN])))
             / np.sqrt(sigma2 * info[w, COHESION] * hu + tau2))
        adj_b[e] = dot - pairs
        zs[i] = z
        if z > top or (z == top and w < best):
            best, top = w, z
    for i in range(n):
        offer(adj_t[ws[i]], u, zs[i], absorbed, heap, info, version, z_min)
    return best, top

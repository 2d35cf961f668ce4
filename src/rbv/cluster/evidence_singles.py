"""A large cluster's single-face neighbours, kept as a heap (numba).

A person with thousands of photos ends up with thousands of neighbours in the merge
loop, nearly all of them its own faces not yet taken in, one at a time. Reading all of
them after each one was quadratic in the person's size (at 300k synthetic faces, 94 %
of the entries the loop read were in lists of 256 neighbours or more). A single face
never changes until it merges, so its pair with a growing cluster ``u`` has a bound that
only the cluster's own state moves, the same way for every face:

    S_u·x − n_u  ≤  b      (b: the sum of similarity − 1 over some of their face pairs)

and with ``κ = b − n_ref a_x / 2`` (``n_ref``: u's size when the keys were set,
``a_x``: the face's crowding, ``a_min`` the lowest any face has)

    z(u, x)  ≤  (1 + (κ − (n_u − n_ref) a_min / 2) / n_u − mu − a_u / 2) / D_u,

``D_u = sqrt(σ² c_u c_min + τ²)`` (``c_min``: the lowest cohesion of a single face, 1
up to rounding): one increasing function of ``κ`` for all of u's single faces. So the
faces are kept in a max-heap on ``κ`` at the front of u's list, and after each change
only its top is scored, until the bound of the next one falls below the best score
found: a few dot products instead of thousands of bounds.

The rest of the list (clusters of several faces, and the entries appended since) is
read whole as before. A face that merges stops being single: its heap entry is dropped
when it comes up, and the large clusters it neighboured are told (an entry appended to
their lists), so their next scan reads the pair. A heap entry's key is turned back into a
bound before its list is read whole or appended to another (:func:`unheap`).
"""

from __future__ import annotations

import heapq

import numpy as np

from rbv.cluster.evidence_kernels import node_dot, node_row, prefetch_row
from rbv.compiled import njit

# Columns of evidence_merge's per-node array, one 64-byte cache line: what looking at a
# neighbour reads (all float64; ids and clocks are exact below 2**53). SEEN: the clock of
# the last scan that met the cluster as a neighbour; WHERE: the entry that scan gave it.
COUNT, COHESION, CROWD_MEAN, BEST_Z, BEST_W, PARENT, SEEN, WHERE = range(8)
A_MIN_AT, C_MIN_AT, PARTIAL_FROM_AT = range(3)
"""Entries of ``fstate``: the least crowding and cohesion of a single face, and
``partial_from``."""
IN_HEAP, SCORED = -1.0, -2.0
"""``WHERE`` of a face met in a scan: its entry in the heap was kept (not read), or has
been scored."""


@njit(cache=True, nogil=True)
def is_single(info, x):
    """Node ``x`` is still a face alone (a root that has taken in nothing)."""
    return int(info[x, PARENT]) == x and info[x, COUNT] == 1.0


@njit(cache=True, nogil=True)
def sift_up(target, value, s, i):
    """Entry ``s + i`` of the heap at ``s`` moved up to its place (largest value first)."""
    t, v = target[s + i], value[s + i]
    while i > 0:
        parent = (i - 1) // 2
        if value[s + parent] >= v:
            break
        target[s + i], value[s + i] = target[s + parent], value[s + parent]
        i = parent
    target[s + i], value[s + i] = t, v


@njit(cache=True, nogil=True)
def sift_down(target, value, s, h, i):
    """Entry ``s + i`` of the heap of ``h`` entries at ``s`` moved down to its place."""
    t, v = target[s + i], value[s + i]
    while True:
        child = 2 * i + 1
        if child >= h:
            break
        if child + 1 < h and value[s + child + 1] > value[s + child]:
            child += 1
        if value[s + child] <= v:
            break
        target[s + i], value[s + i] = target[s + child], value[s + child]
        i = child
    target[s + i], value[s + i] = t, v


@njit(cache=True, nogil=True)
def unheap(u, info, seg, target, value, heap_len, n_ref, state):
    """Cluster ``u``'s heap keys turned back into bounds ``b`` (one entry per face, the
    lowest; faces no longer single get ``0``, which bounds anything), so its list can be
    read whole or appended to another's. Entries of one face may overlap in the pairs
    they cover (a key set again after scoring covers all of them), so they are never
    added up: the lowest is kept, the rest get ``0``."""
    h = heap_len[u]
    if h == 0:
        return
    state[2] += 1
    clock = state[2]
    s = seg[u, 0]
    for e in range(s, s + h):
        x = target[e]
        if not is_single(info, x):
            value[e] = 0.0
            continue
        b = value[e] + 0.5 * n_ref[u] * info[x, CROWD_MEAN]
        if info[x, SEEN] == clock:
            kept = int(info[x, WHERE])
            if b < value[kept]:
                value[kept], value[e] = b, 0.0
            else:
                value[e] = 0.0
        else:
            info[x, SEEN], info[x, WHERE] = clock, e
            value[e] = b
    heap_len[u] = 0


@njit(cache=True, nogil=True)
def offer(w, u, z, absorbed, heap, info, version, z_min):
    """u, at score ``z``, becomes ``w``'s best partner (pushed) when it passes and beats
    the one ``w`` holds, unless that one is u or the cluster u just took in."""
    partner = int(info[w, BEST_W])
    if z >= z_min and z > info[w, BEST_Z] and partner != u and partner != absorbed:
        info[w, BEST_Z], info[w, BEST_W] = z, u
        heapq.heappush(heap, (-z, float(w), float(u), version[w], version[u]))


@njit(cache=True, nogil=True)
def walk(u, absorbed, best, top, heap, rows, sums, ref, info, anchored, adj_seg, adj_t, adj_b,
          blocked, clock, version, ws, zs, su, mu, sigma2, tau2, z_min, part):
    """u's single faces from the top of its heap, each scored exactly, until the bound
    of the next falls below the best score so far (and ``z_min``); their keys set again
    from the exact products. Faces no longer single, read already in this scan, or never
    mergeable with u are dropped. Returns u's best (target, z)."""
    slack = 1e-9 * (1.0 + abs(z_min))
    s, h = adj_seg[u, 0], part.heap_len[u]
    h0 = h
    cu, hu, au = info[u, COUNT], info[u, COHESION], info[u, CROWD_MEAN]
    n_ref = part.n_ref[u]
    spread = np.sqrt(sigma2 * hu * part.fstate[C_MIN_AT] + tau2)
    shift = 0.5 * (cu - n_ref) * part.fstate[A_MIN_AT]
    anchored_u = anchored[u]
    row_u = node_row(rows, sums, ref, u, su)
    kept = 0
    while h > 0:
        if (1.0 + (adj_b[s] - shift) / cu - (mu + 0.5 * au)) / spread < max(top, z_min) - slack:
            break
        x = adj_t[s]
        h -= 1
        adj_t[s], adj_b[s] = adj_t[s + h], adj_b[s + h]
        sift_down(adj_t, adj_b, s, h, 0)
        if h > 0:  # the next one up, while this one is scored
            prefetch_row(rows, sums, ref, adj_t[s])
        if (not is_single(info, x) or blocked[x] == clock or (anchored_u and anchored[x])
                or (info[x, SEEN] == clock and info[x, WHERE] != IN_HEAP)):
            continue
        info[x, SEEN], info[x, WHERE] = clock, SCORED
        dot = node_dot(rows, sums, ref, x, row_u)
        pairs = info[x, COUNT] * cu
        z = ((dot / pairs - (mu + 0.5 * (au + info[x, CROWD_MEAN])))
             / np.sqrt(sigma2 * info[x, COHESION] * hu + tau2))
        ws[kept], zs[kept] = x, (dot - pairs) - 0.5 * n_ref * info[x, CROWD_MEAN]
        kept += 1
        if z > top or (z == top and x < best):
            best, top = x, z
        offer(x, u, z, absorbed, heap, info, version, z_min)
    for i in range(kept):
        part.heap_of[ws[i]] = u
        adj_t[s + h], adj_b[s + h] = ws[i], zs[i]
        sift_up(adj_t, adj_b, s, h)
        h += 1
    # The room left by dropped entries is filled from the end of the rest.
    gap, length = h0 - h, adj_seg[u, 1]
    moved = min(gap, length - h0)
    for i in range(moved):
        adj_t[s + h + i], adj_b[s + h + i] = adj_t[s + length - moved + i], \
            adj_b[s + length - moved + i]
    adj_seg[u, 1] = length - gap
    part.heap_len[u] = h
    return best, top


@njit(cache=True, nogil=True)
def heap_singles(u, info, anchored, adj_seg, adj_t, adj_b, blocked, clock, part):
    """The single faces after u's heap (ones that may merge with u) moved into it, with
    their keys."""
    s, h = adj_seg[u, 0], part.heap_len[u]
    half_ref = 0.5 * part.n_ref[u]
    anchored_u = anchored[u]
    for e in range(s + h, s + adj_seg[u, 1]):
        x = adj_t[e]
        if not is_single(info, x) or blocked[x] == clock or (anchored_u and anchored[x]):
            continue
        key = adj_b[e] - half_ref * info[x, CROWD_MEAN]
        part.heap_of[x] = u
        adj_t[e], adj_b[e] = adj_t[s + h], adj_b[s + h]
        adj_t[s + h], adj_b[s + h] = x, key
        sift_up(adj_t, adj_b, s, h)
        h += 1
    part.heap_len[u] = h
    part.rest_ref[u] = adj_seg[u, 1] - h

"""Compiled pieces of evidence linkage's merge loop (numba): dot products of nodes, and
neighbour lists, one segment per cluster node in one pool of entries (node ids int32:
a million faces' 57M entries take 0.7 GB). A merge appends the smaller list to the
larger; the space left behind is reclaimed when the pool is full, by moving the lists
down in place (grown only when they fill most of it)."""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from rbv.compiled import njit


@intrinsic
def prefetch(typingctx, array, index):  # type: ignore[no-untyped-def]
    """Ask the CPU to start fetching ``array[index]``'s cache line (a hint: it changes
    no value). Loops that read scattered rows one after another wait for each; asking
    for the next ones early overlaps the waits."""
    def codegen(context, builder, signature, args):  # type: ignore[no-untyped-def]
        kind = signature.args[0]
        data = context.make_array(kind)(context, builder, args[0])
        where = cgutils.get_item_pointer(context, builder, kind, data, [args[1]])
        byte = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        hint = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte, i32, i32, i32]),
            "llvm.prefetch.p0")
        # read, keep in every cache level, data
        builder.call(hint, [builder.bitcast(where, byte), ir.Constant(i32, 0),
                            ir.Constant(i32, 3), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def dot64(a, b):
    """Sum of products of two float64 rows (the order of additions left to the
    compiler: the same in every call)."""
    out = 0.0
    for j in range(a.shape[0]):
        out += a[j] * b[j]
    return out


@njit(cache=True, nogil=True, fastmath={"reassoc"})
def _dot_wide(row, b):
    """:func:`dot64` of a float32 row, widened as it is read (the same products)."""
    out = 0.0
    for j in range(row.shape[0]):
        out += np.float64(row[j]) * b[j]
    return out


@njit(cache=True, nogil=True)
def node_dot(rows, sums, ref, w, b):
    """``S_w·b`` for a float64 row ``b``: a face's float32 row is widened as it is read,
    not copied first (the merge loop's scores are nearly all of single faces: the copy
    was a fifth of its time)."""
    r = ref[w]
    if r < 0:
        return dot64(sums[-r - 1], b)
    return _dot_wide(rows[r], b)


@njit(cache=True, nogil=True)
def node_row(rows, sums, ref, u, scratch):
    """Node ``u``'s sum as float64: its slot, or its face's row copied into ``scratch``."""
    r = ref[u]
    if r < 0:
        return sums[-r - 1]
    src = rows[r]
    for j in range(src.shape[0]):
        scratch[j] = src[j]
    return scratch


@njit(cache=True, nogil=True)
def prefetch_row(rows, sums, ref, u):
    """Start fetching node ``u``'s sum (its face's row or its slot), a line at a time."""
    r = ref[u]
    if r >= 0:
        row = rows[r]
        for j in range(0, row.shape[0], 16):  # 64-byte lines of float32
            prefetch(row, j)
    else:
        wide = sums[-r - 1]
        for j in range(0, wide.shape[0], 8):
            prefetch(wide, j)


@njit(cache=True, nogil=True)
def pair_dots(rows, sums, ref, pairs, order, out, lo, hi):
    """``out[i]`` = ``S_u·S_w`` of pairs ``order[lo..hi-1]`` (a thread's share; ``order``
    keeps rows that are read together near each other in memory)."""
    dim = max(rows.shape[1], sums.shape[1])
    a = np.empty(dim)
    for t in range(lo, hi):
        i = order[t]
        out[i] = node_dot(rows, sums, ref, pairs[i, 1],
                          node_row(rows, sums, ref, pairs[i, 0], a))


@njit(cache=True, nogil=True)
def build_lists(m, pairs, values):
    """Both ends' entries of each pair, grouped by node: ``seg[u]`` = (start, length,
    capacity) in ``target``/``value`` (the pair's ``values``), room left for growth."""
    seg = np.zeros((m, 3), np.int64)
    for i in range(len(pairs)):
        seg[pairs[i, 0], 1] += 1
        seg[pairs[i, 1], 1] += 1
    start = 0
    for u in range(m):
        seg[u, 0] = start
        seg[u, 2] = seg[u, 1]
        start += seg[u, 1]
        seg[u, 1] = 0
    size = start + start // 4 + 16
    target = np.empty(size, np.int32)
    value = np.empty(size)
    for i in range(len(pairs)):
        for side in range(2):
            u, w = pairs[i, side], pairs[i, 1 - side]
            e = seg[u, 0] + seg[u, 1]
            target[e], value[e] = w, values[i]
            seg[u, 1] += 1
    return seg, target, value


@njit(cache=True, nogil=True)
def append_list(seg, target, value, state, end, u, v):
    """``v``'s list appended to ``u``'s (``value`` empty: a list without values);
    ``state[end]``: the pool's first unused entry. A full pool is compacted (grown when
    half of it is in use)."""
    lu, lv = seg[u, 1], seg[v, 1]
    if lv == 0:
        return target, value
    with_values = len(value) > 0
    target, value = _make_room(seg, target, value, state, end, u, lv, with_values)
    s, t = seg[v, 0], seg[u, 0] + lu
    target[t:t + lv] = target[s:s + lv]
    if with_values:
        value[t:t + lv] = value[s:s + lv]
    seg[u, 1] = lu + lv
    seg[v, 1] = seg[v, 2] = 0
    return target, value


@njit(cache=True, nogil=True)
def append_one(seg, target, value, state, end, u, t, b):
    """Entry ``(t, b)`` appended to ``u``'s list (as :func:`append_list` does)."""
    target, value = _make_room(seg, target, value, state, end, u, 1, True)
    target[seg[u, 0] + seg[u, 1]], value[seg[u, 0] + seg[u, 1]] = t, b
    seg[u, 1] += 1
    return target, value


@njit(cache=True, nogil=True)
def _make_room(seg, target, value, state, end, u, extra, with_values):
    """Room for ``extra`` more entries after ``u``'s list: where it lacks it, the list
    moves to the pool's first unused entry (``state[end]``) with twice what it will hold
    (the pool compacted first when that does not fit)."""
    lu = seg[u, 1]
    if lu + extra <= seg[u, 2]:
        return target, value
    need = 2 * (lu + extra)
    top = state[end]
    if top + need > len(target):
        target, value, top = _compact_lists(seg, target, value, need, with_values)
    s = seg[u, 0]
    target[top:top + lu] = target[s:s + lu]
    if with_values:
        value[top:top + lu] = value[s:s + lu]
    seg[u, 0], seg[u, 2] = top, need
    state[end] = top + need
    return target, value


@njit(cache=True, nogil=True)
def _compact_lists(seg, target, value, need, with_values):
    """The lists moved down tightly, in place, in the order they lie (so none is
    overwritten before it has moved); the pool grown when that leaves less than
    ``need``, a quarter of what they hold and a quarter of the number of lists (each
    compaction sorts the lists: a pool much smaller than that, such as the cannot-links',
    was compacted every few merges, and took a third of the merge loop's time). Returns
    the pool and its first unused entry."""
    empty = seg[:, 1] == 0
    seg[empty, 2] = 0  # an empty list has no room: its next entry moves it
    live = np.flatnonzero(~empty)
    top = 0
    for u in live[np.argsort(seg[live, 0])]:
        s, n = seg[u, 0], seg[u, 1]
        for j in range(n):
            target[top + j] = target[s + j]
        if with_values:
            for j in range(n):
                value[top + j] = value[s + j]
        seg[u, 0], seg[u, 2] = top, n
        top += n
    size = top + need + top // 4 + len(seg) // 4
    if size > len(target):
        grown = np.empty(size, target.dtype)
        grown[:top] = target[:top]
        target = grown
        if with_values:
            more = np.empty(size)
            more[:top] = value[:top]
            value = more
    return target, value, top

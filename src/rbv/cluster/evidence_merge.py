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
* a large cluster keeps its single-face neighbours (nearly all of a big person's
  neighbours: its own faces not yet taken in) in a heap on a key whose bound one
  function of the cluster's state gives, so taking in a face scores the top few
  instead of reading thousands (:mod:`rbv.cluster.evidence_singles`: the loop was
  quadratic in a person's size);
* neighbour lists are segments of one pool: a merge appends the smaller list to the
  larger, and entries that name a node merged since are counted for its root, once,
  when the list is next read (no per-node hash tables);
* the first score of every candidate pair (the bulk of the dot products) is computed on
  every core before the loop (:meth:`rbv.cluster.evidence_nodes.Nodes.scores`);
  the pairs and those scores are then kept only as the neighbour lists.

``tests.support.evidence_reference`` holds a plain quadratic greedy; the tests check that
this loop, the interpreted one (:mod:`rbv.cluster.evidence_heap`) and it give the same
partitions.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.evidence_kernels import build_lists
from rbv.cluster.evidence_merge_loop import Parts, first_best, link
from rbv.cluster.evidence_nodes import Nodes
from rbv.cluster.evidence_singles import (
    A_MIN_AT,
    BEST_W,
    BEST_Z,
    C_MIN_AT,
    COHESION,
    COUNT,
    CROWD_MEAN,
    PARENT,
    PARTIAL_FROM_AT,
    SEEN,
    WHERE,
)
from rbv.cluster.parallel_work import on_all_cores

PARTIAL_FROM = 256
"""Neighbour clusters from which a cluster keeps its single faces in a heap
(:mod:`rbv.cluster.evidence_singles`); below it reading them all is as cheap."""


def merge_greedily(nodes: Nodes, anchored: NDArray[np.bool_], cannot: NDArray[np.int64],
                   mu: float, sigma: float, tau: float, z_min: float,
                   crowd: NDArray[np.float64] | None = None, *,
                   partial_from: int = PARTIAL_FROM,
                   order: NDArray[np.float64] | None = None) -> NDArray[np.int64]:
    """Each node's final node (the root it merged into).

    ``crowd``: each node's sum of its faces' crowding (a pair's impostor mean is ``mu``
    plus half the two sides' mean crowding; see :mod:`rbv.cluster.crowding`; None:
    none); ``anchored``: nodes holding a known person (two never merge); ``cannot``:
    node pairs that may never join. Ties in ``z`` go to the lower node id.
    ``partial_from``: the neighbours from which a cluster keeps its single faces in a
    heap (the same partitions for any value; tests make every cluster do it).
    ``order``: filled with each merge's ``z``, in order (as many as fit; for tests: a
    merge out of the greedy order shows there before it changes a partition).
    ``nodes``' pairs are taken (:meth:`Nodes.release_pairs`): nodes are merged once."""
    m, dim = len(nodes.ref), nodes.sums.shape[1]
    if m == 0:
        return np.empty(0, np.int64)
    dots, cohesion = nodes.scores()
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
    adj_seg, adj_t, adj_b = build_lists(m, np.ascontiguousarray(nodes.release_pairs()),
                                        dots)
    del dots
    blk_seg, blk_t, _ = build_lists(m, np.ascontiguousarray(cannot, np.int64).reshape(-1, 2),
                              np.zeros(len(cannot)))
    sigma2, tau2 = float(sigma) ** 2, float(tau) ** 2

    def first(lo: int, hi: int) -> None:
        first_best(lo, hi, info, anchored, adj_seg, adj_t, adj_b, blk_seg, blk_t, float(mu),
                   sigma2, tau2, float(z_min))

    on_all_cores(first, m)
    # Slots for sums of merged clusters: at most one per two faces, reserved, not
    # touched (memory is used as clusters form; slots are reused).
    sums = np.empty((len(nodes.sums) + m // 2 + 1, dim))
    sums[:len(nodes.sums)] = nodes.sums
    ref = nodes.ref.copy()
    rows = np.ascontiguousarray(nodes.rows, np.float32)
    singles = nodes.count == 1
    fstate = np.empty(3)
    fstate[A_MIN_AT] = info[singles, CROWD_MEAN].min() if singles.any() else 0.0
    fstate[C_MIN_AT] = cohesion[singles].min() if singles.any() else 1.0
    fstate[PARTIAL_FROM_AT] = max(partial_from, 1)
    part = Parts(np.zeros(m, np.int64), np.ones(m), np.zeros(m, np.int64),
                 np.zeros(m, np.bool_), np.full(m, -1, np.int64), np.empty(m, np.int64),
                 fstate)
    link(rows, sums, len(nodes.sums), ref, info, crowd, anchored, adj_seg, adj_t, adj_b,
         blk_seg, blk_t, float(mu), sigma2, tau2, float(z_min), part,
         np.empty(0) if order is None else order)
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

"""Connected components and average-linkage agglomerative clustering on a k-NN graph.

Both take a cosine-similarity ``threshold`` (higher = stricter) and never build an
n×n matrix over all faces:

* connected components join two faces when either lists the other among its ``k``
  nearest at or above the threshold (single linkage, cut at the threshold);
* average linkage runs exactly (dense, scipy) but only inside each connected component
  of that same graph: an average above the threshold needs at least one pair above it,
  so no average-linkage cluster spans two components. A component larger than
  ``max_block`` faces is first split by raising the threshold on its own edges in
  steps of 0.02 until every piece fits; that piece-wise limit (memory ~4·max_block² bytes)
  is the method's documented approximation for very large identities.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.constraints import NO_ANCHOR, Constraints, enforce
from rbv.cluster.knn import KnnGraph, normalize
from rbv.cluster.union_find import components

MAX_BLOCK = 6_000
_FORBIDDEN = 1e12  # distance for a cannot-link pair: no average below the cut can hold it

Edges = tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float32]]


def connected_components(
    graph: KnnGraph, threshold: float, constraints: Constraints | None = None
) -> NDArray[np.int64]:
    """Faces joined by k-NN edges with similarity ≥ ``threshold``, constraints honoured."""
    constraints = constraints or Constraints(graph.size)
    edges = graph.edges(threshold)
    labels = components(graph.size, edges[0], edges[1])
    return enforce(labels, edges, constraints)


def agglomerative(
    embeddings: NDArray[np.floating],
    graph: KnnGraph,
    threshold: float,
    constraints: Constraints | None = None,
    *,
    max_block: int = MAX_BLOCK,
) -> NDArray[np.int64]:
    """Average-linkage clusters whose mean pairwise similarity is ≥ ``threshold``."""
    x = normalize(embeddings)
    n = graph.size
    constraints = constraints or Constraints(n)
    edges = graph.edges(threshold)
    a, b, s = edges
    must = constraints.must
    base = components(n, np.r_[a, must[:, 0]], np.r_[b, must[:, 1]])
    blocks = _blocks(base, edges, threshold, max_block)
    block_of = np.empty(n, np.int64)
    for i, block in enumerate(blocks):
        block_of[block] = i
    multi = [i for i, block in enumerate(blocks) if len(block) > 1]
    local = constraints.partition(block_of, multi)
    labels = np.empty(n, np.int64)
    next_label = 0
    for i, block in enumerate(blocks):
        if len(block) == 1:
            labels[block] = next_label
            next_label += 1
            continue
        members = np.sort(block)  # partition() numbers members in index order
        sub = _average_linkage(x[members], threshold, local[i])
        labels[members] = sub + next_label
        next_label += int(sub.max()) + 1
    return enforce(labels, edges, constraints)


def _blocks(labels: NDArray[np.int64], edges: Edges, threshold: float,
            max_block: int) -> list[NDArray[np.int64]]:
    """Groups of faces (index arrays) no larger than ``max_block``."""
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.r_[True, labels[order][1:] != labels[order][:-1], True])
    out: list[NDArray[np.int64]] = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        members = order[lo:hi]
        if len(members) <= max_block:
            out.append(members)
            continue
        index = np.full(len(labels), -1, np.int64)
        index[members] = np.arange(len(members))
        a, b, s = edges
        inside = (index[a] >= 0) & (index[b] >= 0)
        stricter = threshold + 0.02
        keep = s[inside] >= stricter
        sub_edges = (index[a[inside]][keep], index[b[inside]][keep], s[inside][keep])
        sub = components(len(members), sub_edges[0], sub_edges[1])
        for piece in _blocks(sub, sub_edges, stricter, max_block):
            out.append(members[piece])
    return out


def _average_linkage(x: NDArray[np.float32], threshold: float,
                     constraints: Constraints) -> NDArray[np.int64]:
    from scipy.cluster.hierarchy import fcluster, linkage  # imported when asked for
    from scipy.spatial.distance import squareform

    dist = np.clip(1.0 - (x @ x.T).astype(np.float64), 0.0, 2.0)
    if len(constraints.cannot):
        c = constraints.cannot
        dist[c[:, 0], c[:, 1]] = dist[c[:, 1], c[:, 0]] = _FORBIDDEN
    if constraints.anchors is not None:
        anchored = np.flatnonzero(constraints.anchors != NO_ANCHOR)
        if len(anchored) > 1:
            ids = constraints.anchors[anchored]
            same = ids[:, None] == ids[None, :]
            dist[np.ix_(anchored, anchored)] = np.where(same, 0.0, _FORBIDDEN)
    if len(constraints.must):
        mu = constraints.must
        dist[mu[:, 0], mu[:, 1]] = dist[mu[:, 1], mu[:, 0]] = 0.0
    np.fill_diagonal(dist, 0.0)
    condensed = squareform(dist, checks=False)
    tree = linkage(condensed, method="average")
    return (fcluster(tree, t=1.0 - threshold, criterion="distance") - 1).astype(np.int64)

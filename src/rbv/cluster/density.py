"""Density-based grouping on the k-NN graph: HDBSCAN, and the Immich-style baseline.

HDBSCAN runs on the k-NN graph's cosine distances (mutual reachability and its minimum
spanning tree here, then the ``hdbscan`` package's HDBSCAN on that tree; scikit-learn's
HDBSCAN fails on sparse input with an epsilon). The spanning tree must span every face,
so components of the k-NN graph are chained by edges of the largest distance (2.0),
which no cluster can cross below ``1 - threshold``. Faces HDBSCAN calls noise
become persons of their own.

The baseline reproduces how Immich groups faces, for comparison only: faces in order;
a face is *core* when at least ``min_faces`` faces (itself included, as Immich's search
returns it) lie within the distance; a core face joins the person of its nearest
already-assigned neighbour within the distance, else founds a new person; non-core
faces are deferred and then join their nearest assigned neighbour within the distance
if any. No same-photo or manual constraints, as in Immich.
"""

from __future__ import annotations

import warnings

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.constraints import Constraints, enforce
from rbv.cluster.knn import KnnGraph
from rbv.cluster.union_find import components

IMMICH_MIN_FACES = 3


def hdbscan(
    graph: KnnGraph,
    threshold: float,
    constraints: Constraints | None = None,
    *,
    min_cluster_size: int = 2,
    min_samples: int = 1,
) -> NDArray[np.int64]:
    """HDBSCAN clusters; ``threshold`` (similarity) sets ``cluster_selection_epsilon``
    so clusters closer than ``1 - threshold`` are not split further.

    The mutual-reachability graph and its minimum spanning tree (scipy) are built here
    from the k-NN graph in vectorised form; ``hdbscan.HDBSCAN`` then takes the tree as a
    sparse precomputed distance matrix (its spanning tree is the tree itself, and with
    ``min_samples=1`` its own mutual reachability keeps every weight: a face's core
    distance is its shortest edge) and builds, condenses and cuts the hierarchy. Given the
    k-NN graph itself, hdbscan fills a LIL matrix element by element: ~50 s at 100k
    faces; the tree, 2 (n - 1) entries, takes ~5 s.
    """
    from hdbscan import HDBSCAN

    n = graph.size
    constraints = constraints or Constraints(n)
    edges = graph.edges()
    if n < 2 or len(edges[0]) == 0:
        return enforce(np.arange(n, dtype=np.int64), edges, constraints)
    a, b, s = edges
    dist = np.clip(1.0 - s.astype(np.float64), 1e-9, 2.0)
    core = np.clip(1.0 - graph.similarities[:, min(min_samples, graph.neighbors.shape[1]) - 1]
                   .astype(np.float64), 1e-9, 2.0)
    reach = np.maximum(dist, np.maximum(core[a], core[b]))
    from scipy.sparse import csr_matrix  # imported when asked for
    from scipy.sparse.csgraph import minimum_spanning_tree

    comp = components(n, a, b)
    first = np.unique(comp, return_index=True)[1]
    rows, cols = np.r_[a, first[:-1]], np.r_[b, first[1:]]
    weights = np.r_[reach, np.full(len(first) - 1, 2.0)]
    tree = minimum_spanning_tree(csr_matrix((weights, (rows, cols)), shape=(n, n)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        labels = HDBSCAN(metric="precomputed", min_samples=1,
                         min_cluster_size=min_cluster_size, cluster_selection_method="eom",
                         cluster_selection_epsilon=float(max(0.0, 1.0 - threshold)),
                         ).fit((tree + tree.T).tocsr()).labels_
    labels = np.asarray(labels, np.int64)
    noise = labels < 0
    labels[noise] = labels.max() + 1 + np.arange(int(noise.sum()))
    return enforce(labels, edges, constraints)


def immich_baseline(
    graph: KnnGraph, threshold: float, *, min_faces: int = IMMICH_MIN_FACES
) -> NDArray[np.int64]:
    """Immich's incremental DBSCAN-like grouping (see module doc); faces it leaves
    unassigned get labels of their own."""
    n = graph.size
    person = np.full(n, -1, np.int64)
    within = graph.similarities >= threshold
    is_core = within.sum(axis=1) + 1 >= min_faces
    next_person = 0

    def nearest_person(i: int) -> int:
        for j, ok in zip(graph.neighbors[i].tolist(), within[i].tolist(), strict=True):
            if not ok:
                break
            if j >= 0 and person[j] >= 0:
                return int(person[j])
        return -1

    for i in range(n):
        if not is_core[i]:
            continue
        found = nearest_person(i)
        if found < 0:
            found, next_person = next_person, next_person + 1
        person[i] = found
    for i in np.flatnonzero(~is_core).tolist():
        person[i] = nearest_person(i)
    loose = person < 0
    person[loose] = next_person + np.arange(int(loose.sum()))
    return person

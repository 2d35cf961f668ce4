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

import numpy as np
from numpy.typing import NDArray

from rbv.cluster.centroids import group_sums
from rbv.cluster.constraints import NO_ANCHOR, Constraints, anchor_chain_pairs, enforce
from rbv.cluster.crowding import CAP, FIRST_CAP, cohort_crowding, crowding
from rbv.cluster.defaults import DEFAULT_BUDGET, ImpostorModel
from rbv.cluster.evidence_nodes import Nodes
from rbv.cluster.knn import KnnGraph, normalize, unit_rows
from rbv.cluster.union_find import components

_CHUNK = 65_536
INTERPRETED_MAX_PAIRS = 100_000
"""Candidate pairs up to which the interpreted merge loop runs (measured, 128-d: 79k
pairs 0.75 s interpreted; numba's import and cached code take 2-5 s to load; 269k
pairs 4.1 s interpreted, 0.85 s compiled)."""


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
    return _row_dots(x, i[keep], j[keep])


def _row_dots(x: NDArray[np.float32], i: NDArray[np.int64], j: NDArray[np.int64]
              ) -> NDArray[np.float32]:
    """``<x[i[k]], x[j[k]]>`` for each ``k``, the pairs' rows copied a block at a time
    into two buffers kept for the whole loop: the rows of all pairs at once were 2 ×
    400 MB at 512-d (the peak of a first full run at 100k faces, and ~0.8 s of page
    faults), and a new pair of blocks of 8,192 each time still spent most of 0.5 s on
    them (200,000 pairs of 20,000 faces, 512-d: 0.19 s so, the same values)."""
    out = np.empty(len(i), np.float32)
    a = np.empty((min(len(i), _PAIR_BLOCK), x.shape[1]), x.dtype)
    b = np.empty_like(a)
    for lo in range(0, len(i), _PAIR_BLOCK):
        n = min(_PAIR_BLOCK, len(i) - lo)
        np.take(x, i[lo:lo + n], axis=0, out=a[:n])
        np.take(x, j[lo:lo + n], axis=0, out=b[:n])
        out[lo:lo + n] = np.einsum("ij,ij->i", a[:n], b[:n])
    return out


def library_impostor(embeddings: NDArray[np.floating], image_ids: NDArray[np.int64], *,
                     plain: bool = False) -> tuple[ImpostorModel, str]:
    """The impostor model of an unknown recognizer, from random pairs of a sample of a
    library's faces (nearly all are different people in a library of many), and where
    it came from, in words: below the pairs that are one person
    (:meth:`ImpostorModel.from_library_pairs`), or, ``plain``, from the median and
    quartile of all (what the faces centred by age are measured with: there the
    estimate below the one-person pairs cost data/faces 0.973 → 0.948 pairwise F on
    scrfd_fp512 and data/family 0.725 → 0.721 on SFace, one wrong merge each)."""
    pairs = random_pair_similarities(embeddings, image_ids)
    if len(pairs) < 100:
        return ImpostorModel(0.1, 0.09, 0.02), "too few faces to estimate; a generic guess"
    return (ImpostorModel.from_pairs(pairs, robust=True) if plain
            else ImpostorModel.from_library_pairs(pairs),
            f"estimated from {len(embeddings):,} faces of this library")


_PAIR_BLOCK = 1_024


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
    return _row_dots(x, i[keep], j[keep])


def evidence_linkage(
    embeddings: NDArray[np.floating],
    graph: KnnGraph,
    model: ImpostorModel,
    budget: float = DEFAULT_BUDGET,
    constraints: Constraints | None = None,
    *,
    n_library: int | None = None,
    crowded: bool = True,
) -> NDArray[np.int64]:
    """Labels ``0..m-1`` for the rows of ``embeddings``.

    Candidate merges are clusters joined by a k-NN edge of ``graph`` above ``mu``.
    ``constraints``: cannot-links are never joined; must-links start together; faces
    with the same anchor start as one cluster, and clusters holding different anchors
    never merge (so known persons can take in new faces but never each other).
    ``n_library``: the library size the test is made for (default: the rows given).
    ``crowded``: ask more where strangers look alike (:mod:`rbv.cluster.crowding`), in
    two passes: the first measures each face's crowding against every other face (one
    person's many photos then look like a crowd: that pass is strict), the second
    against the first pass's clusters, its own left out (so only strangers count), and
    starts from them (:func:`_kept_clusters`): what the strict pass merged stays merged,
    unless the second pass finds one of its faces more crowded (its cap is higher: a
    crowd of young faces of several children is parted again), so it merges clusters,
    not every face again (at a million synthetic faces the same partition as starting
    from single faces, its loop 0.2 s instead of 76 s).
    """
    x = unit_rows(embeddings)
    n = len(x)
    if n == 0:
        return np.empty(0, np.int64)
    constraints = constraints or Constraints(n)
    z_min = model.z_threshold(n_library or n, budget)
    held = (np.zeros(n, bool) if constraints.anchors is None
            else constraints.anchors != NO_ANCHOR)

    def merge(clusters: NDArray[np.int64], crowd: NDArray[np.float64] | None
              ) -> NDArray[np.int64]:
        """Labels ``0..`` of the faces after merging ``clusters`` (a label ``0..m-1`` per
        face), each face's crowding ``crowd``."""
        m = int(clusters.max()) + 1
        anchored = np.zeros(m, bool)
        anchored[clusters[held]] = True
        nodes = _face_nodes(x, clusters, m, _candidate_pairs(graph, clusters, model.mu),
                            graph.lists)
        node_crowd = (None if crowd is None
                      else np.bincount(clusters, crowd, minlength=m).astype(np.float64))
        root = merge_nodes(nodes, anchored, clusters[constraints.cannot], model, z_min,
                           node_crowd)
        return np.unique(root[clusters], return_inverse=True)[1].astype(np.int64)

    start = _starting_clusters(constraints)
    if crowded:
        strict = crowding(graph, start, model, n_library, cap=FIRST_CAP)[0]
        first = merge(start, strict)
        crowd = crowding(graph, first, model, n_library)[0]
        labels = merge(_kept_clusters(first, start, crowd > strict), crowd)
    else:
        labels = merge(start, None)
    if len(constraints.violations(labels)) == 0:
        return labels  # what enforce() returns then; its sorted edge list is for repairs
    return enforce(labels, graph.edges(), constraints)


def _kept_clusters(first: NDArray[np.int64], start: NDArray[np.int64],
                   stricter: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Where the second pass starts: the first pass's clusters, except those holding a
    face the second pass finds more crowded (``stricter``; its cap is higher), which
    start again from their starting clusters (``start``). Labels ``0..``."""
    undone = np.zeros(int(first.max()) + 1, bool)
    undone[first[stricter]] = True
    return np.unique(np.where(undone[first], first.max() + 1 + start, first),
                     return_inverse=True)[1].astype(np.int64)


def _face_nodes(x: NDArray[np.float32], start: NDArray[np.int64], m: int,
                pairs: NDArray[np.integer], lists: NDArray[np.int64] | None = None) -> Nodes:
    """The starting clusters as merge nodes: a face alone is its row of ``x`` (read in
    place), a group of faces its sum of unit embeddings (float64: merges add up many
    faces). ``lists``: each face's inverted list, to score the pairs list by list."""
    size = np.bincount(start, minlength=m)
    ref = np.empty(m, np.int64)
    alone = size[start] == 1
    ref[start[alone]] = np.flatnonzero(alone)
    groups = np.flatnonzero(size > 1)
    ref[groups] = -np.arange(len(groups)) - 1
    # (np.add.at took 53 s for a million faces in 25,000 groups)
    sums = group_sums(x, np.where(alone, -1, -ref[start] - 1), len(groups), unit=True)[0]
    node_list = None
    if lists is not None:
        node_list = np.empty(m, np.int64)
        node_list[start] = lists
    return Nodes(x, sums, ref, size.astype(np.float64), pairs, node_list)


def merge_nodes(nodes: Nodes, anchored: NDArray[np.bool_], cannot: NDArray[np.int64],
                model: ImpostorModel, z_min: float,
                crowd: NDArray[np.float64] | None = None) -> NDArray[np.int64]:
    """Each cluster node's final node after greedy merging (``crowd``: each node's sum
    of crowding; see :func:`rbv.cluster.evidence_merge.merge_greedily`). Up to
    ``INTERPRETED_MAX_PAIRS`` candidate pairs the interpreted loop runs: it is done
    before the compiled one would have loaded."""
    if len(nodes.pairs) <= INTERPRETED_MAX_PAIRS:
        from rbv.cluster.evidence_heap import heap_merger_roots

        return heap_merger_roots(nodes.full_sums(), nodes.count.copy(), anchored, cannot,
                                 nodes.pairs, model.mu, model.sigma, model.tau, z_min, crowd)
    from rbv.cluster import evidence_merge  # numba: loaded by the runs that need it

    return evidence_merge.merge_greedily(nodes, anchored, cannot, model.mu, model.sigma,
                                         model.tau, z_min, crowd)


def _candidate_pairs(graph: KnnGraph, start: NDArray[np.int64],
                     mu: float) -> NDArray[np.integer]:
    """Starting clusters joined by a k-NN edge above ``mu``: (u, v) rows, u < v, once
    (the faces' edges are not deduplicated or sorted first: the clusters' pairs are).
    The graph is read in row pieces, so only the pairs' keys are held whole (at a
    million faces the temporaries of the whole graph at once were 1.8 GB)."""
    n = len(graph.neighbors)
    m = int(start.max()) + 1
    keys = []
    for lo in range(0, n, _CHUNK):
        near = graph.neighbors[lo:lo + _CHUNK]
        rows, cols = np.nonzero((near >= 0) & (graph.similarities[lo:lo + _CHUNK] >= mu))
        keys.append(_pair_keys(start[lo + rows], start[near[rows, cols]], m))
    key = np.concatenate(keys) if keys else np.empty(0, np.int64)
    del keys
    return _pairs_of_keys(key, m)


def _unique_pairs(a: NDArray[np.int64], b: NDArray[np.int64], m: int
                  ) -> NDArray[np.integer]:
    """The node pairs ``a[i]–b[i]`` of ``m`` nodes as (u, v) rows, u < v, each once
    (a node's pairs with itself dropped), int32 where the node ids fit."""
    return _pairs_of_keys(_pair_keys(a, b, m), m)


def _pair_keys(a: NDArray[np.int64], b: NDArray[np.int64], m: int) -> NDArray[np.int64]:
    """``u * m + v`` of each pair ``a[i]–b[i]`` with u < v (pairs of a node with itself
    dropped)."""
    keep = a != b
    a, b = a[keep], b[keep]
    return np.asarray(np.minimum(a, b) * m + np.maximum(a, b), np.int64)


def _pairs_of_keys(key: NDArray[np.int64], m: int) -> NDArray[np.integer]:
    """Pair keys as (u, v) rows, each once, in key order."""
    # Sorted, then each key once: np.unique's hashing path is ~100× slower here (numpy
    # 2.4: 8 s for 6M keys that a sort handles in 0.1 s).
    key.sort()
    key = key[np.r_[True, key[1:] != key[:-1]]] if len(key) else key
    out = np.empty((len(key), 2), np.int32 if m <= np.iinfo(np.int32).max else np.int64)
    # written in place: ``key // m`` and ``key % m`` were two int64 copies of every key
    np.floor_divide(key, m, out=out[:, 0], casting="unsafe")
    np.remainder(key, m, out=out[:, 1], casting="unsafe")
    return out


def _starting_clusters(constraints: Constraints) -> NDArray[np.int64]:
    """Faces sharing an anchor or joined by must-links start as one cluster."""
    pairs = constraints.must
    if constraints.anchors is not None:  # build() chains them into must; a bare one may not
        pairs = np.concatenate([pairs, anchor_chain_pairs(constraints.anchors)])
    return components(constraints.n, pairs[:, 0], pairs[:, 1])


def grow_known(known_sums: NDArray[np.float64], known_counts: NDArray[np.integer],
               new: NDArray[np.floating], near: tuple[NDArray[np.int64], NDArray[np.int64],
                                                      NDArray[np.floating]],
               new_graph: KnnGraph, model: ImpostorModel, budget: float, n_library: int, *,
               cannot: NDArray[np.int64], must: NDArray[np.int64],
               typical: float | None = None) -> tuple[NDArray[np.int64], float]:
    """Evidence linkage of new faces with known persons, each known person one anchored
    cluster given by its sum of unit embeddings and its size (so its faces need not be
    read): a person may take in new faces and whole groups of them, two never merge.

    Nodes: known persons ``0..P-1``, new faces ``P..P+N-1``. ``near``: (person, new face,
    similarity) of new faces' nearest known faces; ``new_graph``: the new faces' k-NN
    graph among themselves; ``cannot``/``must``: node pairs. A group of must-linked nodes
    holding two known persons keeps its links among new faces only. Crowding is measured
    as in :func:`evidence_linkage`, in two passes, each new face against the known
    persons and the other new faces near it (``typical``: the library's level, as a
    full run measured it; default: from the new faces); a known person counts with the
    mean crowding of the new faces near it. Returns per new face the known person it
    joins (``< P``) or ``P + j`` for the ``j``-th new group, and the typical level."""
    p, n = len(known_counts), len(new)
    if n == 0:
        return np.empty(0, np.int64), typical or 0.0
    sums = np.vstack([np.asarray(known_sums, np.float64),
                      normalize(new).astype(np.float64)])
    count = np.concatenate([np.asarray(known_counts, np.float64), np.ones(n)])
    must = np.asarray(must, np.int64).reshape(-1, 2)
    start = components(p + n, must[:, 0], must[:, 1])
    # Links may not join two known persons: then only those among new faces are kept.
    if (np.bincount(start[:p], minlength=p + n) > 1).any():
        new_only = (must >= p).all(axis=1)
        start = components(p + n, must[new_only, 0], must[new_only, 1])
    person, face, similarity = (np.asarray(v) for v in near)
    to_person = similarity >= model.mu
    k = new_graph.neighbors.shape[1]
    rows, cols = np.repeat(np.arange(n), k), new_graph.neighbors.ravel()
    among_new = (cols >= 0) & (new_graph.similarities.ravel() >= model.mu)
    pair_a = np.concatenate([person[to_person], p + rows[among_new]])
    pair_b = np.concatenate([p + face[to_person], p + cols[among_new]])
    cannot = np.asarray(cannot, np.int64).reshape(-1, 2)
    z_min = model.z_threshold(n_library, budget)
    cohort, cohort_similarity = _cohorts(p, n, (person, face, similarity), new_graph)

    def crowd_of(clusters: NDArray[np.int64], cap: float) -> tuple[NDArray[np.float64],
                                                                    float]:
        """Each known person's and new face's crowding with ``clusters`` (a label each)
        as their own, and the typical level."""
        crowd, level = cohort_crowding(np.where(cohort >= 0,
                                                clusters[np.maximum(cohort, 0)], -1),
                                       cohort_similarity, clusters[p:], model, n_library,
                                       typical, cap)
        # A known person: the mean crowding of the new faces near it (its region's).
        near_sum = np.bincount(person, crowd[face], minlength=p)
        near_count = np.maximum(np.bincount(person, minlength=p), 1)
        return np.concatenate([near_sum / near_count * count[:p], crowd]), level

    def merge(clusters: NDArray[np.int64], crowd: NDArray[np.float64]) -> NDArray[np.int64]:
        """Labels ``0..`` of the known persons and new faces after merging ``clusters``
        (a label ``0..m-1`` each)."""
        m = int(clusters.max()) + 1
        anchored = np.zeros(m, bool)
        anchored[clusters[:p]] = True
        node_sums = group_sums(sums, clusters, m, unit=True)[0]  # np.add.at's sums
        nodes = Nodes.of_sums(node_sums, np.bincount(clusters, weights=count, minlength=m)
                              .astype(np.float64),
                              _unique_pairs(clusters[pair_a], clusters[pair_b], m))
        node_crowd = np.bincount(clusters, crowd, minlength=m).astype(np.float64)
        root = merge_nodes(nodes, anchored, clusters[cannot], model, z_min, node_crowd)
        return np.unique(root[clusters], return_inverse=True)[1].astype(np.int64)

    # Two passes, as in evidence_linkage (the second from the first's clusters).
    strict, _ = crowd_of(start, FIRST_CAP)
    first = merge(start, strict)
    crowd, level = crowd_of(first, CAP)
    final = merge(_kept_clusters(first, start, crowd > strict), crowd)
    person_of_root = {int(r): i for i, r in enumerate(final[:p].tolist())}
    groups = np.unique(final[p:][[int(r) not in person_of_root for r in final[p:].tolist()]])
    group_of = {int(r): p + j for j, r in enumerate(groups.tolist())}
    return np.array([person_of_root.get(int(r), group_of.get(int(r), -1))
                     for r in final[p:].tolist()], np.int64), level


def _cohorts(p: int, n: int, near: tuple[NDArray[np.int64], NDArray[np.int64],
                                          NDArray[np.floating]],
             new_graph: KnnGraph) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """Each new face's neighbours as node ids (known persons ``< p``, new faces after),
    most similar first, ``-1`` padding: its known neighbours and the new faces near it."""
    person, face, similarity = near
    k = new_graph.neighbors.shape[1]
    per_face = np.bincount(face, minlength=n)
    width = k + (int(per_face.max()) if len(face) else 0)
    node = np.full((n, width), -1, np.int64)
    value = np.full((n, width), -np.inf, np.float32)
    node[:, :k] = np.where(new_graph.neighbors >= 0, p + new_graph.neighbors, -1)
    value[:, :k] = np.where(new_graph.neighbors >= 0, new_graph.similarities, -np.inf)
    if len(face):
        order = np.argsort(face, kind="stable")
        slot = np.arange(len(face)) - np.repeat(np.cumsum(per_face) - per_face, per_face)
        node[face[order], k + slot] = person[order]
        value[face[order], k + slot] = similarity[order]
    by_similarity = np.argsort(-value, axis=1, kind="stable")
    return (np.take_along_axis(node, by_similarity, axis=1),
            np.take_along_axis(value, by_similarity, axis=1))

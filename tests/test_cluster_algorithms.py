"""Clustering algorithms and metrics on small synthetic arrays (pure logic)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.cluster import AgglomerativeClustering

from rbv.cluster.assign import Candidate, best_person, match_faces
from rbv.cluster.constraints import NO_ANCHOR, Constraints
from rbv.cluster.density import immich_baseline
from rbv.cluster.faiss_blas import known_2021
from rbv.cluster.knn import NPROBE, _list_probes, build_knn_graph, nearest, unit_rows
from rbv.cluster.knn_search import search_lists
from rbv.cluster.linkage import agglomerative
from rbv.cluster.methods import Method, cluster_embeddings
from rbv.cluster.metrics import bcubed, pairwise


def _identities(ids: int, per: int, dim: int = 128, noise: float = 0.08,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around ``ids`` random centres (same-identity cosine ≈ 0.6)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    truth = np.repeat(np.arange(ids), per)
    x = centres[truth] + rng.normal(size=(len(truth), dim)) * noise
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), truth


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return pairwise(a, b).f1 == 1.0 and len(np.unique(a)) == len(np.unique(b))


def test_exact_knn_graph_matches_brute_force() -> None:
    x, _ = _identities(10, 20)
    graph = build_knn_graph(x, 5)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    expected = np.sort(sims, axis=1)[:, ::-1][:, :5]
    np.testing.assert_allclose(graph.similarities, expected, atol=1e-5)
    assert not (graph.neighbors == np.arange(len(x))[:, None]).any()  # never itself


def test_approximate_knn_graph_finds_the_true_neighbours() -> None:
    x, _ = _identities(40, 50, dim=128)
    exact = build_knn_graph(x, 10)
    approx = build_knn_graph(x, 10, exact_limit=0)
    recall = np.mean([len(set(a) & set(e)) / 10 for a, e in zip(approx.neighbors,
                                                                 exact.neighbors, strict=True)])
    assert recall >= 0.9
    assert not (approx.neighbors == np.arange(len(x))[:, None]).any()


def test_approximate_knn_graph_at_512_d_keeps_its_recall_and_similarities() -> None:
    # 10k faces of a 512-d recognizer's width, 25 per identity (k = 30 reaches into
    # other identities, where the order is noise): recall@30 against the exact graph
    # was 0.9375 with IVF-Flat searched face by face and is 0.9375 with the float16
    # lists searched grouped by list (seed 0); the lists' similarities are within
    # float16's 5e-4 of the exact ones, and 1e-3 is what evidence linkage allows for.
    x, _ = _identities(400, 25, dim=512, noise=0.04)
    exact = build_knn_graph(x, 30)
    approx = build_knn_graph(x, 30, exact_limit=0)
    recall = np.mean([len(set(a) & set(e)) / 30 for a, e in zip(approx.neighbors,
                                                                 exact.neighbors, strict=True)])
    assert recall >= 0.92
    true_sims = np.einsum("ij,ikj->ik", x, x[approx.neighbors])
    assert np.abs(approx.similarities - true_sims).max() <= 1e-3
    assert (np.diff(approx.similarities, axis=1) <= 1e-6).all()  # best first


def test_probing_more_of_the_same_lists_never_finds_worse_neighbours() -> None:
    # bench_knn.py --lists measures other counts of lists and lists probed: with the
    # same lists, more probed is the fewer probed and more (nearest first), so no face's
    # k-th neighbour is less similar, and some better ones are found that were missed.
    x, _ = _identities(2_000, 1, dim=32)  # no identities: neighbours across lists
    few, more = _list_probes(x, 40, 2), _list_probes(x, 40, 8)
    assert few.shape == (len(x), 2) and more.shape == (len(x), 8)
    assert _list_probes(x).shape == (len(x), NPROBE)
    assert (few == more[:, :2]).all()  # the same lists, nearest first
    assert all(len(set(row)) == 8 for row in more.tolist())
    sims_few = search_lists(x, few, 10)[1]
    sims_more = search_lists(x, more, 10)[1]
    # (a product's last bit depends on the shape of the matrix product it is in)
    assert (sims_more[:, -1] >= sims_few[:, -1] - 1e-6).all()
    assert (sims_more[:, -1] > sims_few[:, -1] + 1e-3).any()


def test_a_graph_reordered_names_the_same_neighbours_by_their_new_rows() -> None:
    x, _ = _identities(30, 20, dim=64)
    graph = build_knn_graph(x, 8, exact_limit=0)
    graph.neighbors[3, -1] = -1  # a face with fewer neighbours keeps its padding
    order = np.argsort(graph.lists, kind="stable")
    moved = graph.reordered(order)
    assert moved.lists is not None and (np.diff(moved.lists) >= 0).all()
    assert moved.neighbors.dtype == graph.neighbors.dtype
    back = np.where(moved.neighbors >= 0, order[np.maximum(moved.neighbors, 0)], -1)
    np.testing.assert_array_equal(back, graph.neighbors[order])
    np.testing.assert_array_equal(moved.similarities, graph.similarities[order])


@pytest.mark.parametrize("kind", ["random", "one cycle", "as they are"])
def test_rows_are_moved_into_an_order_in_place(kind: str) -> None:
    from rbv.cluster.knn_search import move_rows

    rng = np.random.default_rng(2)
    x = rng.normal(size=(500, 12)).astype(np.float32)
    order = {"random": rng.permutation(500), "one cycle": np.roll(np.arange(500), 1),
             "as they are": np.arange(500)}[kind]
    want, before = x[order], x.ctypes.data
    move_rows(x, order)
    np.testing.assert_array_equal(x, want)
    assert x.ctypes.data == before
    x.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        move_rows(x, order)


def test_a_full_runs_faces_and_their_aged_copy_move_together_into_the_lists_order() -> None:
    """Above the exact limit the graph comes with the faces, their aged copy and itself
    in the order of its inverted lists (each list one slice of rows): the same graph as
    one built on the faces as read, renumbered."""
    import uuid

    from rbv.cluster.knn import ordered_knn_graph
    from rbv.face_rows import PackFaces

    x, _ = _identities(30, 20, dim=64)
    n = len(x)
    aged = unit_rows(x + np.float32(0.1))  # the faces centred by age: a copy of their own
    people = [None, uuid.uuid4(), uuid.uuid4()]
    faces = PackFaces(np.arange(100, 100 + n), np.arange(n) // 2,
                      [people[i % 3] for i in range(n)], np.arange(n) % 7 == 0, x.copy())
    graph = build_knn_graph(aged, 8, exact_limit=0)
    moved, moved_aged, moved_graph = ordered_knn_graph(faces, aged.copy(), 8, exact_limit=0)
    row = moved.ids - 100  # each row's face, as read
    assert not np.array_equal(row, np.arange(n))
    np.testing.assert_array_equal(moved.embeddings, x[row])
    np.testing.assert_array_equal(moved_aged, aged[row])
    np.testing.assert_array_equal(moved.image_ids, row // 2)
    assert moved.person_ids == [people[i % 3] for i in row.tolist()]
    np.testing.assert_array_equal(moved.manual, row % 7 == 0)
    assert moved_graph.lists is not None and (np.diff(moved_graph.lists) >= 0).all()
    renumbered = graph.reordered(row)
    np.testing.assert_array_equal(np.sort(moved_graph.neighbors, axis=1),
                                  np.sort(renumbered.neighbors, axis=1))
    np.testing.assert_allclose(moved_graph.similarities, renumbered.similarities, atol=1e-6)
    exact = ordered_knn_graph(faces, x, 8)  # no lists: nothing moves
    assert exact[:2] == (faces, x) and exact[2].lists is None
    np.testing.assert_array_equal(exact[2].neighbors, build_knn_graph(x, 8).neighbors)


def test_unit_rows_keeps_unit_float32_rows_without_a_copy() -> None:
    x, _ = _identities(3, 4)
    assert unit_rows(x) is x  # at 1M × 512-d a copy is 2 GB
    scaled = unit_rows(x.astype(np.float64) * 3)
    np.testing.assert_allclose(scaled, x, atol=1e-6)
    assert scaled.dtype == np.float32


def test_nearest_handles_an_empty_base() -> None:
    graph = nearest(np.ones((2, 4)), np.empty((0, 4)), 3)
    assert (graph.neighbors == -1).all()


@pytest.mark.parametrize("method", list(Method))
def test_every_method_recovers_well_separated_identities(method: Method) -> None:
    x, truth = _identities(12, 15)
    labels = cluster_embeddings(x, method, 0.35)
    assert bcubed(labels, truth).f1 > 0.97
    assert len(labels) == len(x) and labels.min() == 0


@pytest.mark.parametrize("method", list(Method))
def test_faces_of_one_photo_are_never_together(method: Method) -> None:
    x, _ = _identities(3, 10)
    x[1] = x[0]  # the same face twice in one photo (a mirror, a poster)
    images = np.arange(len(x))
    images[1] = images[0]
    images[12] = images[2]  # and two faces of one identity share a photo
    labels = cluster_embeddings(x, method, 0.3, Constraints.build(len(x), image_ids=images))
    assert labels[0] != labels[1]
    assert labels[2] != labels[12]


@pytest.mark.parametrize("method", list(Method))
def test_anchors_keep_manual_persons_apart_and_together(method: Method) -> None:
    x, truth = _identities(4, 10)
    anchors = np.full(len(x), NO_ANCHOR)
    anchors[[0, 1]] = 7  # identity 0 split by hand into two persons...
    anchors[[2, 3]] = 8
    anchors[10] = 9  # ...and one face of identity 1 placed with identity 2's anchor
    anchors[20] = 9
    labels = cluster_embeddings(x, method, 0.3, Constraints.build(len(x), anchors=anchors))
    assert labels[0] == labels[1] and labels[2] == labels[3]
    assert labels[0] != labels[2]
    assert labels[10] == labels[20]


def test_must_link_joins_faces_the_threshold_would_keep_apart() -> None:
    x, truth = _identities(3, 5)
    labels = cluster_embeddings(x, Method.connected, 0.3,
                                Constraints.build(len(x), must=[(0, 5)]))
    assert labels[0] == labels[5]
    # Nothing else changed: identity 2 is still on its own.
    assert len(set(labels[truth == 2]) & set(labels[truth != 2])) == 0


def test_average_linkage_does_not_chain_where_single_linkage_does() -> None:
    # Points on an arc: neighbours are similar, the ends are not.
    angles = np.linspace(0, 2.2, 12)
    x = np.stack([np.cos(angles), np.sin(angles), np.zeros_like(angles)], 1).astype(np.float32)
    chained = cluster_embeddings(x, Method.connected, 0.9)
    average = cluster_embeddings(x, Method.agglomerative, 0.9)
    assert len(np.unique(chained)) == 1
    assert len(np.unique(average)) > 1


def test_agglomerative_equals_sklearn_without_constraints() -> None:
    x, _ = _identities(8, 12, noise=0.12)
    ours = cluster_embeddings(x, Method.agglomerative, 0.35, k=len(x) - 1)
    theirs = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                     distance_threshold=0.65).fit_predict(x)
    assert _same_partition(ours, theirs)


def test_agglomerative_splits_oversized_components_into_bounded_blocks() -> None:
    x, truth = _identities(6, 30)
    images = np.arange(len(x))
    images[1] = images[0]
    constraints = Constraints.build(len(x), image_ids=images)
    graph = build_knn_graph(x, 10)
    labels = agglomerative(x, graph, 0.25, constraints, max_block=20)
    assert labels[0] != labels[1]
    assert bcubed(labels, truth).precision > 0.97


def test_immich_baseline_needs_core_faces_and_joins_the_nearest_person() -> None:
    x, truth = _identities(3, 6)
    lone = np.array([[1.0] + [0.0] * 127], np.float32)
    labels = immich_baseline(build_knn_graph(np.vstack([x, lone]), 5), 0.3)
    assert bcubed(labels[:-1], truth).f1 > 0.97
    assert (labels[:-1] != labels[-1]).all()  # an outlier stays alone


def test_matching_honours_rejections_photos_and_the_threshold() -> None:
    cands = [Candidate("ada", 0.9, 1), Candidate("ada", 0.86, 2), Candidate("bob", 0.85, 3)]
    assert best_person(cands, 0.5) == ("ada", pytest.approx(0.88))  # mean of ada's top faces
    assert best_person(cands, 0.5, rejected={"ada"}) == ("bob", 0.85)
    assert best_person(cands, 0.5, image_id=1) == ("bob", 0.85)  # ada is in that photo
    assert best_person(cands, 0.95) is None
    matches = match_faces({10: cands, 11: cands}, 0.5, image_of={10: 7, 11: 7},
                          rejections={}, taken=set())
    # Two new faces of one photo never both join ada: the second is left to clustering.
    assert [(m.face, m.person) for m in matches] == [(10, "ada")]


def test_pairwise_and_bcubed_on_hand_made_labels() -> None:
    truth = ["a", "a", "a", "b", "b", "c"]
    assert pairwise(truth, truth).f1 == 1.0 and bcubed(truth, truth).f1 == 1.0
    predicted = [1, 1, 2, 2, 2, 3]
    # Same-cluster pairs: (0,1) right, (2,3) (2,4) wrong, (3,4) right → P = 2/4.
    # Same-label pairs: (0,1) (0,2) (1,2) (3,4) → found (0,1) (3,4) → R = 2/4.
    p = pairwise(predicted, truth)
    assert (p.precision, p.recall) == (0.5, 0.5)
    # BCubed precision: items 0,1: 1; items 2,3,4: 1/3, 2/3, 2/3; item 5: 1 → 14/3 / 6.
    # BCubed recall: 0,1: 2/3; 2: 1/3; 3,4: 1; 5: 1 → 14/3 / 6.
    b = bcubed(predicted, truth)
    assert b.precision == pytest.approx(14 / 18) and b.recall == pytest.approx(14 / 18)
    one = bcubed([0] * 6, truth)
    assert one.recall == 1.0 and one.precision == pytest.approx((9 + 4 + 1) / 36)
    singletons = pairwise(list(range(6)), truth)
    assert singletons.precision == 1.0 and singletons.recall == 0.0


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(
    st.just(n), st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)),
                         max_size=60))))
def test_components_number_groups_as_scipy_does(graph: tuple[int, list[tuple[int, int]]]
                                                ) -> None:
    """rbv's own connected components (no scipy to import for a run's few links) give
    every node the label scipy's sparse graph gives, numbering included; and the same
    through scipy's graph above SPARSE_EDGES."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    import rbv.cluster.union_find as union_find

    n, edges = graph
    a = np.array([e[0] for e in edges], np.int64)
    b = np.array([e[1] for e in edges], np.int64)
    want = connected_components(coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)),
                                directed=False)[1]
    assert union_find.components(n, a, b).tolist() == want.tolist()
    many = union_find.SPARSE_EDGES
    try:
        union_find.SPARSE_EDGES = 0
        assert union_find.components(n, a, b).tolist() == want.tolist()
    finally:
        union_find.SPARSE_EDGES = many
    for outside in (-1, n):  # refused, as scipy refuses it, never wrapped around
        with pytest.raises(ValueError):
            union_find.components(n, np.r_[a, outside], np.r_[b, 0])


FAISS_CORE = (
    "import json, os\n"
    "from threadpoolctl import threadpool_info\n"
    "from rbv.cluster.faiss_blas import blas_core_type, load_faiss\n"
    "load_faiss()\n"
    "print(json.dumps([blas_core_type(), [lib.get('architecture') for lib in threadpool_info()"
    " if lib['internal_api'] == 'openblas' and 'faiss' in lib['filepath']],"
    " os.environ.get('OPENBLAS_CORETYPE')]))\n")


@pytest.mark.skipif(platform.machine() != "x86_64", reason="faiss-cpu bundles OpenBLAS on x86")
@pytest.mark.parametrize("user_set", [None, "Haswell"])
def test_faiss_multiplies_on_the_kernels_numpy_chose_unless_the_user_chose(
        user_set: str | None) -> None:
    """faiss-cpu's own OpenBLAS (2021) runs its plainest kernels on processors newer than
    itself (the exact graph of 30,000 faces 4× slower on Sapphire Rapids): it is told
    the core type numpy's OpenBLAS found, for the import only; one the user set stays."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if user_set:
        env["OPENBLAS_CORETYPE"] = user_set
    wanted, faiss_core, after = json.loads(subprocess.run(
        [sys.executable, "-c", FAISS_CORE], env=env, capture_output=True, text=True,
        check=True).stdout)
    assert wanted is not None  # numpy's OpenBLAS names a core type faiss's knows
    assert faiss_core == [user_set or wanted]
    assert after == user_set  # set for faiss's import alone


def test_a_core_type_newer_than_faiss_openblas_is_named_as_one_it_knows() -> None:
    assert known_2021("SapphireRapids") == "SkylakeX"
    assert known_2021("Haswell") == "Haswell"
    assert known_2021("Zen") == "Zen"
    assert known_2021("Prescott") is None  # its own fallback: nothing to tell it
    assert known_2021("NeoverseV2") is None  # not one of its x86 names

"""Pure logic of refine on small synthetic arrays."""

from __future__ import annotations

import numpy as np

from rbv.cluster.refine import (
    RefineInput,
    RefineParams,
    merge_by_centroid,
    refine,
    reject_outliers,
    stable_numbers,
)


def _identities(rng: np.random.Generator, sizes: list[int], dim: int = 32,
                spread: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    centres = rng.normal(size=(len(sizes), dim))
    x = np.concatenate([c + spread * rng.normal(size=(n, dim)) for c, n in zip(centres, sizes,
                                                                               strict=True)])
    labels = np.repeat(np.arange(len(sizes)), sizes)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_refine_keeps_big_identities_and_drops_small_and_bad_faces() -> None:
    rng = np.random.default_rng(1)
    x, truth = _identities(rng, [20, 16, 5])
    n = len(x)
    short = np.full(n, 120.0, np.float32)
    short[3] = 50.0  # too small
    blur = np.full(n, 80.0, np.float32)
    blur[4] = 10.0  # too blurred
    data = RefineInput(x, np.arange(n, dtype=np.int64), short, blur,
                       np.full(n, 0.9, np.float32))
    result = refine(data, RefineParams(min_images=10))
    assert len(result.groups) == 2
    assert [set(truth[g]) for g in result.groups] == [{0}, {1}]
    assert 3 not in result.groups[0] and 4 not in result.groups[0]
    assert result.counts["failed_quality"] == 2 and result.counts["too_small"] == 1


def test_centroid_merge_joins_an_over_split_identity() -> None:
    rng = np.random.default_rng(2)
    x, _ = _identities(rng, [10, 10], spread=0.1)
    labels = np.r_[np.zeros(5), np.ones(5), np.full(10, 2)].astype(np.int64)
    merged = merge_by_centroid(x, labels, 0.40)
    assert len(set(merged[:10])) == 1 and merged[0] != merged[10]


def test_outlier_rejection_drops_a_stranger() -> None:
    rng = np.random.default_rng(3)
    x, _ = _identities(rng, [8, 1])
    keep = reject_outliers(x, 0.45)
    assert keep[:8].all() and not keep[8]


def test_stable_numbers_keep_old_numbers_and_never_reuse() -> None:
    previous = {1: {1, 2, 3}, 2: {10, 11, 12}, 5: {20, 21}}
    new = [{10, 11, 12, 13}, {30, 31, 32}, {1, 2, 3, 4}]
    assert stable_numbers(new, previous, next_number=6) == [2, 6, 1]


def test_a_fixed_group_is_one_set_however_spread_its_faces() -> None:
    rng = np.random.default_rng(4)
    x, truth = _identities(rng, [12, 12], spread=0.6)  # loose: splits at a tight initial
    n = len(x)
    data = RefineInput(x, np.arange(n, dtype=np.int64), np.full(n, 120.0, np.float32),
                       np.full(n, 80.0, np.float32), np.full(n, 0.9, np.float32))
    params = RefineParams(initial_similarity=0.8, merge_similarity=0.9,
                          outlier_similarity=-1.0, min_images=2)
    assert not any(sorted(g.tolist()) == list(range(12)) for g in refine(data, params).groups)
    fixed = np.where(truth == 0, 7, -1).astype(np.int64)  # identity 0 is a named person
    groups = refine(RefineInput(x, data.image_ids, data.face_short, data.blur,
                                data.det_score, fixed), params).groups
    assert sorted(groups[0].tolist()) == list(range(12))
    assert all(truth[g].tolist() == [1] * len(g) for g in groups[1:])


def test_a_free_fragment_joins_the_fixed_group_it_is_near_but_two_fixed_never_join() -> None:
    rng = np.random.default_rng(5)
    x, _ = _identities(rng, [10, 10, 10], spread=0.1)
    n = len(x)
    fixed = np.full(n, -1, np.int64)
    fixed[:7] = 0  # person A is named; 3 more faces of A are unassigned
    fixed[10:20] = 1  # person B
    fixed[20:25], fixed[25:30] = 2, 3  # one face identity, named as two persons
    data = RefineInput(x, np.arange(n, dtype=np.int64), np.full(n, 120.0, np.float32),
                       np.full(n, 80.0, np.float32), np.full(n, 0.9, np.float32), fixed)
    sets = sorted(sorted(g.tolist()) for g in refine(data, RefineParams(min_images=2)).groups)
    assert sets == [list(range(10)), list(range(10, 20)), list(range(20, 25)),
                    list(range(25, 30))]


def test_a_cluster_holding_two_people_is_split_along_them() -> None:
    """Two identities refine's similarities would join (one tight crowd), told apart by
    ``people`` (the persons `rbv cluster` makes): two sets, never one."""
    rng = np.random.default_rng(7)
    x, truth = _identities(rng, [8, 8], spread=0.05)
    x = (x + 3 * x.mean(axis=0)).astype(np.float32)  # both close to one centre
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    n = len(x)
    args = (x, np.arange(n, dtype=np.int64), np.full(n, 120.0, np.float32),
            np.full(n, 80.0, np.float32), np.full(n, 0.9, np.float32))
    crowd = refine(RefineInput(*args), RefineParams(min_images=3)).groups
    assert [len(g) for g in crowd] == [16]
    result = refine(RefineInput(*args, people=truth), RefineParams(min_images=3))
    assert sorted(sorted(g.tolist()) for g in result.groups) == [list(range(8)),
                                                                 list(range(8, 16))]
    assert result.counts["split_apart"] == 1


def test_recorded_params_read_old_distances_as_similarities() -> None:
    """A refine manifest written before rbv spoke similarity (issue 62 #12) recorded
    cosine distances under ``initial``, ``merge`` and ``outlier``: they are read as the
    similarities they meant; new keys win, and junk keeps the defaults."""
    old = {"initial": 0.55, "merge": 0.4, "outlier": 0.3, "min_images": 3,
           "split_named": True}
    assert RefineParams.recorded(old) == RefineParams(
        initial_similarity=0.45, merge_similarity=0.6, outlier_similarity=0.7, min_images=3,
        split_named=True)
    new = RefineParams(initial_similarity=0.5, min_face_short=30.0)
    assert RefineParams.recorded(new.as_dict()) == new
    assert RefineParams.recorded({**new.as_dict(), "initial": 0.9}) == new
    junk = {"initial": "0.2", "merge": True, "outlier_similarity": None, "min_images": 2.5,
            "split_named": 1, "surprise": 4}
    assert RefineParams.recorded(junk) == RefineParams()
    assert RefineParams.recorded(None) == RefineParams() == RefineParams.recorded([1, 2])

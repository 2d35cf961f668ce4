"""Pure logic of enrich/refine/eras on small synthetic arrays."""

from __future__ import annotations

import numpy as np
import pytest

from rbv.cluster.eras import EraParams, split_eras
from rbv.cluster.refine import (
    RefineInput,
    RefineParams,
    merge_by_centroid,
    refine,
    reject_outliers,
    stable_numbers,
)
from rbv.faces.alignment import ARCFACE_TEMPLATE
from rbv.faces.landmarks import crop_matrix, output_to_image
from rbv.faces.pose import pose_from_5_points, sharpness, size_score


def test_frontal_template_face_scores_as_frontal_and_symmetric() -> None:
    pose = pose_from_5_points(ARCFACE_TEMPLATE * 3.0 + 40.0)
    assert abs(pose.yaw) < 3 and abs(pose.roll) < 1 and abs(pose.pitch) < 3
    assert pose.frontality > 0.9 and pose.symmetry > 0.95


def test_turned_and_tilted_faces_score_lower() -> None:
    turned = ARCFACE_TEMPLATE.copy()
    turned[2, 0] += 14.0  # nose tip towards one eye: the head is turned
    pose = pose_from_5_points(turned)
    assert pose.yaw > 25 and pose.frontality < 0.6 and pose.symmetry < 0.8
    angle = np.radians(30)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    tilted = pose_from_5_points(ARCFACE_TEMPLATE @ rot.T)
    assert tilted.roll == pytest.approx(30, abs=0.5)
    assert tilted.frontality > 0.9  # roll alone does not make a face less frontal


def test_sharpness_and_size_are_in_unit_range() -> None:
    assert sharpness(0.0) == 0.0 and sharpness(100.0) == 0.5 and sharpness(1e6) < 1.0
    assert sharpness(None) is None
    assert size_score(0) == 0.0 and size_score(128) == 0.5 and size_score(4000) == 1.0


def test_landmark_crop_geometry_round_trips() -> None:
    box = (100.0, 50.0, 180.0, 150.0)
    matrix = crop_matrix(box)
    corners = np.array([[-1.0, -1.0], [1.0, 1.0], [0.0, 0.0]])  # model output space
    image = output_to_image(corners.ravel(), matrix, 3)
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    assert image[2] == pytest.approx(centre, abs=1e-3)
    side = max(box[2] - box[0], box[3] - box[1]) * 1.5  # the crop spans 1.5× the box
    assert image[1, 0] - image[0, 0] == pytest.approx(side, rel=1e-3)


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
    keep = reject_outliers(x, 0.55)
    assert keep[:8].all() and not keep[8]


def test_stable_numbers_keep_old_numbers_and_never_reuse() -> None:
    previous = {1: {1, 2, 3}, 2: {10, 11, 12}, 5: {20, 21}}
    new = [{10, 11, 12, 13}, {30, 31, 32}, {1, 2, 3, 4}]
    assert stable_numbers(new, previous, next_number=6) == [2, 6, 1]


def test_eras_anchor_attach_by_distance_and_year_and_keep_thin_fragments() -> None:
    rng = np.random.default_rng(4)
    basis = np.eye(64)
    a, b, u, v, w = basis[:5]
    side = np.sqrt(1 - 0.62**2)  # cos 0.62 to the anchor: distance 0.38, between the
    near_f, near_g = 0.62 * a + side * u, 0.62 * a + side * v  # sub-cluster and attach cut

    def tight(centre: np.ndarray, n: int) -> np.ndarray:
        return centre + 0.01 * rng.normal(size=(n, 64))

    x = np.concatenate([tight(a, 25), tight(b, 25), tight(near_f, 3), tight(near_g, 3),
                        tight(w, 3)])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    years = np.r_[np.full(25, 1995.0), np.full(25, 2015.0),
                  [1998.0, 1998.0, np.nan],  # near A, same era: attached
                  [2012.0, 2012.0, 2012.0],  # near A, 17 years later: kept apart
                  [1995.0, 1995.0, 1995.0]]  # right years, but far from every anchor
    eras = split_eras(x, years, np.arange(len(x), dtype=np.int64), EraParams())
    anchored = [e for e in eras if not e.thin]
    assert {e.dominant_year for e in anchored} == {1995, 2015}
    era_a = next(e for e in anchored if e.dominant_year == 1995)
    assert set(era_a.rows) == set(range(25)) | {50, 51, 52}
    assert era_a.first_year == 1995 and era_a.last_year == 1998
    thin = sorted(sorted(e.rows) for e in eras if e.thin)
    assert thin == [[53, 54, 55], [56, 57, 58]]

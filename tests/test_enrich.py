"""`rbv enrich`: the pose, sharpness and size scores on small synthetic inputs, and the
command on real faces (every face scored once)."""

from __future__ import annotations

import json

import numpy as np
import psycopg
import pytest

from rbv.config import Settings
from rbv.faces.alignment import ARCFACE_TEMPLATE
from rbv.faces.landmarks import crop_matrix, output_to_image
from rbv.faces.pose import pose_from_5_points, sharpness, size_score
from tests.conftest import run_cli


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


def test_enrich_scores_every_face_once(cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    first = run_cli(cli, "-d", url, "enrich", "--json")
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    with psycopg.connect(url) as conn:
        faces = conn.execute("SELECT count(*) FROM face_detections").fetchone()[0]
        rows = conn.execute("SELECT method, frontality, symmetry, sharpness, yaw, face_short, "
                            "(SELECT least(x2 - x1, y2 - y1) FROM face_detections f "
                            "WHERE f.id = q.face_id) FROM face_quality q").fetchall()
    assert report["faces"] == faces == len(rows) > 0
    assert {r[0] for r in rows} == {"5pt"}  # the test pack has no landmark models
    for _, front, sym, sharp, yaw, short, box_short in rows:
        assert 0.0 <= front <= 1.0 and 0.0 <= sym <= 1.0 and 0.0 <= sharp < 1.0
        assert -90.0 < yaw < 90.0
        assert short == pytest.approx(box_short)
    again = json.loads(run_cli(cli, "-d", url, "enrich", "--json").stdout)
    assert again["faces"] == 0  # incremental: nothing new to score

"""Pure pre/post-processing of the face engine, on small synthetic arrays."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rbv.faces.alignment import ARCFACE_TEMPLATE, align_face, similarity_transform
from rbv.faces.detection import (
    INPUT_MEAN,
    INPUT_STD,
    anchor_centers,
    decode,
    input_size,
    nms,
    prepare_canvas,
    prepare_input,
)
from rbv.faces.quality import laplacian_variance
from rbv.faces.recognition import ARCFACE, RAW_PIXELS, l2_normalise, to_blob


def test_similarity_transform_recovers_rotation_scale_translation() -> None:
    angle, scale, shift = np.deg2rad(25), 2.5, np.array([40.0, -7.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_TEMPLATE.astype(np.float64)
    dst = src @ rot.T + shift
    matrix = similarity_transform(src.astype(np.float32), dst.astype(np.float32))
    np.testing.assert_allclose(matrix[:, :2], rot, atol=1e-4)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-3)


def test_alignment_puts_the_landmarks_on_the_template() -> None:
    # Draw dots at landmarks of a face twice the template's size, shifted; after
    # alignment the dots must sit on the template points.
    image = np.zeros((400, 400, 3), np.uint8)
    keypoints = ARCFACE_TEMPLATE * 2 + np.array([100, 60], np.float32)
    for x, y in keypoints:
        cv2.circle(image, (round(x), round(y)), 3, (255, 255, 255), -1)
    crop = align_face(image, keypoints)
    assert crop.shape == (112, 112, 3)
    for x, y in ARCFACE_TEMPLATE:
        assert crop[round(y), round(x)].max() > 200


def test_nms_keeps_the_best_of_overlapping_boxes() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 9]],
                     np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.6], np.float32)
    assert nms(boxes, scores).tolist() == [1, 2]
    assert nms(boxes[:0], scores[:0]).tolist() == []


def test_input_keeps_the_aspect_and_pads_to_multiples_of_32() -> None:
    assert input_size(1280, 886, 640) == (640, 448)
    assert input_size(3000, 4000, 640) == (480, 640)
    assert input_size(150, 103, 640) == (640, 448)  # small images are enlarged
    assert input_size(1000, 1000, 640, fixed=(640, 640)) == (640, 640)
    blob, factor = prepare_input(np.full((886, 1280, 3), 127, np.uint8), 640)
    assert blob.shape == (1, 3, 448, 640) and factor == pytest.approx(0.5, abs=1e-3)
    assert blob[0, :, 443:].min() < -0.99  # the padding is black



@pytest.mark.parametrize(("shape", "fixed"), [
    ((886, 1280), None), ((103, 150), None), ((1920, 1281), None), ((640, 640), None),
    ((37, 1000), None), ((700, 500), (640, 640)), ((300, 900), (608, 416)),
])
def test_detector_input_is_opencvs_blob_of_the_canvas(shape: tuple[int, int],
                                                      fixed: tuple[int, int] | None) -> None:
    # The table-driven input must be bit for bit what blobFromImage made of the canvas
    # (the detector's boxes and the stored faces depend on it).
    rgb = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    canvas, canvas_factor = prepare_canvas(rgb, 640, fixed)
    expected = cv2.dnn.blobFromImage(canvas, 1.0 / INPUT_STD, canvas.shape[1::-1],
                                     (INPUT_MEAN,) * 3, swapRB=False)
    blob, factor = prepare_input(rgb, 640, fixed)
    assert blob.dtype == np.float32 and blob.flags.c_contiguous
    assert factor == canvas_factor
    np.testing.assert_array_equal(blob, expected)

def test_decode_maps_a_single_anchor_to_its_box_and_keypoints() -> None:
    strides, h, w = (8, 16, 32), 64, 64
    outputs = []
    for stride in strides:
        n = (h // stride) * (w // stride) * 2
        outputs.append(np.zeros((n, 1), np.float32))
    boxes_out = [np.zeros(((h // s) * (w // s) * 2, 4), np.float32) for s in strides]
    kps_out = [np.zeros(((h // s) * (w // s) * 2, 10), np.float32) for s in strides]
    # Anchor 5 of stride 16 (grid 4×4, 2 anchors per cell): cell 2 → centre (32, 0).
    outputs[1][5] = 0.9
    boxes_out[1][5] = [1, 0, 1, 2]  # distances in strides: left, top, right, bottom
    kps_out[1][5] = [0.5, 0.5] * 5
    found = decode(outputs + boxes_out + kps_out, (h, w), strides, 2, 0.5)
    assert len(found) == 1
    centre = anchor_centers(4, 4, 16, 2)[5]
    assert centre.tolist() == [32.0, 0.0]
    np.testing.assert_allclose(found.boxes[0], [16, 0, 48, 32])
    np.testing.assert_allclose(found.keypoints[0], [[40, 8]] * 5)
    assert decode(outputs + boxes_out + kps_out, (h, w), strides, 2, 0.95).scores.size == 0


def test_recognizer_input_normalisation_and_l2() -> None:
    crop = np.full((112, 112, 3), 255, np.uint8)
    assert to_blob([crop], ARCFACE).shape == (1, 3, 112, 112)
    assert to_blob([crop], ARCFACE).max() == pytest.approx(1.0)
    assert to_blob([crop], RAW_PIXELS).max() == pytest.approx(255.0)
    v = l2_normalise(np.array([[3, 4], [0, 0]], np.float32))
    np.testing.assert_allclose(v, np.array([[0.6, 0.8], [0.0, 0.0]]))


def test_blur_is_lower_for_a_blurred_crop() -> None:
    rng = np.random.default_rng(0)
    sharp = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
    blurred = cv2.GaussianBlur(sharp, (9, 9), 3)
    assert laplacian_variance(blurred) < laplacian_variance(sharp) / 10

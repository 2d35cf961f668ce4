"""Which face of an edited photo is which old face: the same place (in the frame a crop or
a resize implies) and the same person, both required. Pure logic on small arrays; the
real photos are in tests/test_photo_carry.py."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from rbv.faces.correspondence import PhotoFaces, match_faces

THRESHOLD = 0.64


def _unit(*values: float) -> NDArray[np.float32]:
    v = np.array(values, np.float32)
    return v / np.linalg.norm(v)


ADA, BOB, ADA_SISTER = _unit(1, 0, 0, 0), _unit(0, 1, 0, 0), _unit(0.9, 0.1, 0.42, 0)


def _photo(frame: tuple[int, int], boxes: list[tuple[float, float, float, float]],
           embeddings: list[NDArray[np.float32]]) -> PhotoFaces:
    b = np.array(boxes, np.float64).reshape(-1, 4)
    # five landmarks at fixed places inside each box, as a detector puts them
    share = np.array([[.3, .4], [.7, .4], [.5, .6], [.35, .8], [.65, .8]])
    size = (b[:, 2:] - b[:, :2])[:, None]
    marks = b[:, None, :2] + share[None] * size
    return PhotoFaces(frame, b, marks, np.array(embeddings, np.float32).reshape(len(boxes), 4))


OLD = _photo((1000, 600), [(100, 50, 250, 250), (700, 60, 840, 250)], [ADA, BOB])


def test_a_retouch_keeps_each_face_in_its_place() -> None:
    new = _photo((1000, 600), [(702, 58, 841, 252), (98, 52, 251, 249)],
                 [_unit(0.05, 1, 0, 0.1), _unit(1, 0.1, 0, 0)])
    assert [(i, j) for i, j, _ in match_faces(OLD, new, THRESHOLD)] == [(0, 1), (1, 0)]


def test_a_crop_shifts_the_frame_and_a_resize_scales_it() -> None:
    cropped = _photo((850, 500), [(550, 10, 690, 200), (-50, 0, 100, 200)], [BOB, ADA])
    assert [(i, j) for i, j, _ in match_faces(OLD, cropped, THRESHOLD)] == [(0, 1), (1, 0)]
    half = _photo((500, 300), [(50, 25, 125, 125), (350, 30, 420, 125)], [ADA, BOB])
    assert [(i, j) for i, j, _ in match_faces(OLD, half, THRESHOLD)] == [(0, 0), (1, 1)]


def test_a_look_alike_at_another_place_is_not_the_face() -> None:
    # Ada and her sister side by side; the crop keeps the sister alone. Both are alike
    # enough to pass the similarity test: the place decides.
    sisters = _photo((1000, 600), [(100, 50, 250, 250), (500, 50, 650, 250)],
                     [ADA, ADA_SISTER])
    assert float(ADA @ ADA_SISTER) > THRESHOLD
    crop = _photo((400, 600), [(100, 50, 250, 250)], [ADA_SISTER])
    assert [(i, j) for i, j, _ in match_faces(sisters, crop, THRESHOLD)] == [(1, 0)]


def test_the_same_person_where_no_crop_puts_the_face_is_another_photo() -> None:
    # Same size, the face elsewhere: no crop of the old photo shows it there.
    other = _photo((1000, 600), [(600, 350, 750, 550)], [ADA])
    assert match_faces(OLD, other, THRESHOLD) == []


def test_another_person_in_the_same_place_is_not_the_face() -> None:
    stranger = _photo((1000, 600), [(100, 50, 250, 250)], [_unit(0.3, 0, 1, 0)])
    assert match_faces(OLD, stranger, THRESHOLD) == []
    assert match_faces(OLD, _photo((1000, 600), [], []), THRESHOLD) == []

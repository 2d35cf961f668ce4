"""A face tile shows the face that is meant (issue 50): centred on it, the largest face in
it, its box outlined when another face shows, the same in ``rbv serve``, ``rbv site``
and contact sheets; a face whose photo is gone says so. Real photos, real detections."""

from __future__ import annotations

import dataclasses
import json
import shutil
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from PIL import Image

from rbv.config import Settings
from rbv.jobs.library.index import run_index
from rbv.media.decode import decode_for_detection
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.media.types import DecodedImage
from rbv.pictures.contact_sheet import HEADER
from rbv.pictures.pixels import (
    FACE_PAD,
    MISSING,
    Box,
    face_tile,
    missing_tile,
    square_window,
    tile_marked,
    tile_window,
)
from rbv.serve.crops import CROP, CropCache
from rbv.store import Database
from rbv.store.queries.review import neighbour_boxes
from rbv.web.site import THUMB
from tests.conftest import MISC, run_cli

SELFIE = MISC / "deepface_selfie-many-people.jpg"  # 600×604, six faces close together
ROW = MISC / "insightface_t1.jpg"  # six faces, each alone in its tile
LARGE = MISC / "fr_obama_and_biden.jpg"  # 2000 px
SMALL_DECODE = 500
"""Tiles are cut from photos decoded this small (JPEG draft mode halves a large one), so
the box's pixels (the original's) and the decoded pixels differ."""


@pytest.fixture(scope="module")
def photos(sface_analyzer) -> dict[Path, tuple[DecodedImage, list[Box]]]:  # type: ignore[no-untyped-def]
    """Each photo decoded small, with the boxes the real pack finds."""
    found = {}
    for path in (SELFIE, ROW, LARGE):
        seen = decode_for_detection(path, "JPEG", image_id=0,
                                    long_edge=sface_analyzer.decode_long_edge,
                                    max_pixels=DEFAULT_MAX_IMAGE_PIXELS)
        boxes = [tuple(float(v) for v in b)
                 for b in sface_analyzer.find_faces(seen).detections.boxes]
        image = decode_for_detection(path, "JPEG", image_id=0, long_edge=SMALL_DECODE,
                                     max_pixels=DEFAULT_MAX_IMAGE_PIXELS)
        found[path] = (image, boxes)
    assert [len(b) for _, b in found.values()] == [6, 6, 3]
    assert found[LARGE][0].scale > 1.5
    return found  # type: ignore[return-value]


def _others(boxes: list[Box], i: int) -> list[Box]:
    return [b for j, b in enumerate(boxes) if j != i]


def _centre(box: Box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2.0, (box[1] + box[3]) / 2.0


def test_a_tile_is_centred_on_its_face_even_at_the_photos_edge(photos) -> None:  # type: ignore[no-untyped-def]
    image, boxes = photos[SELFIE]
    height, width = (v * image.scale for v in image.rgb.shape[:2])
    shifted = [i for i, b in enumerate(boxes)
               if abs(_centre(square_window(b, FACE_PAD, width, height))[0] - _centre(b)[0]) > 40]
    assert len(shifted) >= 2  # faces at the edge, which the old window moved off centre
    for path, (image, boxes) in photos.items():
        for i, box in enumerate(boxes):
            # A dot painted at the box's centre lands in the middle of the tile.
            cx, cy = (round(v / image.scale) for v in _centre(box))
            dotted = image.rgb.copy()
            dotted[cy - 3:cy + 4, cx - 3:cx + 4] = (255, 0, 255)
            plain = face_tile(image, box, FACE_PAD, CROP, _others(boxes, i))
            tile = face_tile(dataclasses.replace(image, rgb=dotted), box, FACE_PAD, CROP,
                             _others(boxes, i))
            diff = np.abs(tile.astype(int) - plain).sum(axis=2).astype(float)
            rows, cols = np.indices(diff.shape)
            at = (float((cols * diff).sum() / diff.sum()), float((rows * diff).sum() / diff.sum()))
            assert max(abs(at[0] - CROP / 2), abs(at[1] - CROP / 2)) <= 2.0, (path.name, i, at)


def test_the_meant_face_is_the_largest_face_in_its_tile(photos) -> None:  # type: ignore[no-untyped-def]
    def shown(box: Box, window: Box) -> float:
        """Area of ``box`` in the tile, in tile pixels."""
        k = CROP / (window[2] - window[0])
        return k * k * max(0.0, min(box[2], window[2]) - max(box[0], window[0])) * max(
            0.0, min(box[3], window[3]) - max(box[1], window[1]))

    image, boxes = photos[SELFIE]
    height, width = (v * image.scale for v in image.rgb.shape[:2])
    before = [i for i, b in enumerate(boxes) if any(
        shown(o, square_window(b, FACE_PAD, width, height)) >= shown(b, square_window(
            b, FACE_PAD, width, height)) for o in _others(boxes, i))]
    assert before  # the old window showed another face at least as large
    for path, (_, boxes) in photos.items():
        for i, box in enumerate(boxes):
            window = tile_window(box, FACE_PAD, _others(boxes, i))
            meant = shown(box, window)
            assert all(shown(o, window) < meant for o in _others(boxes, i)), (path.name, i)


def _outlined(tile: NDArray[np.uint8], box: Box, window: Box) -> float:
    """The share of the box's top edge drawn in yellow just above the face."""
    size = tile.shape[0]
    k = size / (window[2] - window[0])
    top, left, right = (round(k * (v - w)) for v, w in
                        ((box[1], window[1]), (box[0], window[0]), (box[2], window[0])))
    band = tile[max(0, top - 4):top + 1, left + 3:right - 3].astype(int)
    red, green, blue = band[..., 0], band[..., 1], band[..., 2]
    # JPEG's halved chroma leaves a 2 px line ochre: (228, 211, 107) at 96 px
    yellow = (red > 190) & (green > 160) & (red - blue > 90) & (green - blue > 70)
    return float(yellow.any(axis=0).mean())


def test_the_box_is_outlined_when_another_face_shows_and_only_then(photos) -> None:  # type: ignore[no-untyped-def]
    for path, marked in ((SELFIE, True), (ROW, False)):
        image, boxes = photos[path]
        for i, box in enumerate(boxes):
            others = _others(boxes, i)
            assert tile_marked(box, FACE_PAD, others) is marked
            for size in (THUMB, CROP):
                tile = face_tile(image, box, FACE_PAD, size, others)
                share = _outlined(tile, box, tile_window(box, FACE_PAD, others))
                assert share > 0.9 if marked else share < 0.1, (path.name, i, size, share)


def test_a_face_whose_photo_is_gone_says_so() -> None:
    tile = missing_tile(CROP)
    assert tile.shape == (CROP, CROP, 3)
    words = (tile.min(axis=2) > 200).mean()  # the light letters of "photo missing"
    assert 0.02 < words < 0.3
    assert (tile[0, 0] == MISSING).all()


def _jpeg(data: bytes) -> NDArray[np.uint8]:
    return np.asarray(Image.open(BytesIO(data)).convert("RGB"))


def _indexed(db: Database, settings: Settings, tmp_path: Path, analyzer) -> Path:  # type: ignore[no-untyped-def]
    photos = tmp_path / "photos"
    photos.mkdir()
    for path in (SELFIE, ROW):
        shutil.copy(path, photos / path.name)
    run_index(db, settings, [photos], analyzer=analyzer)
    return photos


def _faces(db: Database) -> dict[str, list[tuple[int, Box]]]:
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT p.path, f.id, f.x1, f.y1, f.x2, f.y2 FROM face_detections f "
            "JOIN image_paths p ON p.image_id = f.image_id ORDER BY f.id").fetchall()
    faces: dict[str, list[tuple[int, Box]]] = {}
    for path, face, *box in rows:
        faces.setdefault(Path(path).name, []).append((int(face), tuple(box)))  # type: ignore[arg-type]
    return faces


def test_serve_and_site_tiles_follow_the_rule_and_a_gone_photo_says_so(
        cli, db: Database, settings: Settings, tmp_path: Path, sface_analyzer) -> None:  # type: ignore[no-untyped-def]
    photos = _indexed(db, settings, tmp_path, sface_analyzer)
    faces = _faces(db)
    assert [len(faces[p.name]) for p in (SELFIE, ROW)] == [6, 6]
    with db.connect() as conn:
        beside = neighbour_boxes(conn, [f for f, _ in faces[SELFIE.name]])
    assert all(len(beside[f]) == 5 for f, _ in faces[SELFIE.name])

    crops = CropCache(db, tmp_path / "crops", DEFAULT_MAX_IMAGE_PIXELS)
    for name, marked in ((SELFIE.name, True), (ROW.name, False)):
        for face, box in faces[name]:
            data = crops.face(face)
            assert data is not None
            window = tile_window(box, FACE_PAD, beside.get(face, []))
            share = _outlined(_jpeg(data), box, window)
            assert share > 0.9 if marked else share < 0.1, (name, face, share)

    url = str(settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    site = tmp_path / "site"
    done = run_cli(cli, "-d", url, "site", str(site), "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["unreadable_faces"] == []
    for name, marked in ((SELFIE.name, True), (ROW.name, False)):
        for face, box in faces[name]:
            (thumb,) = (site / "thumbs").glob(f"{face}_*.jpg")
            window = tile_window(box, FACE_PAD, beside.get(face, []))
            share = _outlined(_jpeg(thumb.read_bytes()), box, window)
            assert share > 0.9 if marked else share < 0.1, (name, face, share)

    # A contact sheet (`rbv show`) of a person of one face: the same tile.
    for name, marked in ((SELFIE.name, True), (ROW.name, False)):
        face, box = faces[name][0]
        with db.connect() as conn:
            row = conn.execute("SELECT person_id, (SELECT count(*) FROM face_detections g "
                               "WHERE g.person_id = f.person_id) FROM face_detections f "
                               "WHERE f.id = %s", (face,)).fetchone()
        assert row is not None and row[1] == 1, row
        png = tmp_path / f"{face}.png"
        shown = run_cli(cli, "-d", url, "show", str(row[0]), "-o", str(png), "--tile", "128")
        assert shown.exit_code == 0, shown.output
        tile = np.asarray(Image.open(png).convert("RGB"))[HEADER:HEADER + 128, :128]
        share = _outlined(tile, box, tile_window(box, FACE_PAD, beside.get(face, [])))
        assert share > 0.9 if marked else share < 0.1, (name, face, share)

    # The photo is gone: a new cache (nothing kept) and the site say "photo missing".
    (photos / ROW.name).unlink()
    face, _ = faces[ROW.name][0]
    real = crops.face(face)
    gone = CropCache(db, tmp_path / "crops-again", DEFAULT_MAX_IMAGE_PIXELS).face(face)
    assert gone is not None and gone != real
    assert np.abs(_jpeg(gone).astype(int) - missing_tile(CROP)).mean() < 3
    shutil.rmtree(site / "thumbs")
    again = run_cli(cli, "-d", url, "site", str(site), "--json")
    assert sorted(json.loads(again.stdout)["unreadable_faces"]) == sorted(
        f for f, _ in faces[ROW.name])
    unreadable = _jpeg((site / "thumbs" / "unreadable.jpg").read_bytes())
    assert np.abs(unreadable.astype(int) - missing_tile(THUMB)).mean() < 3

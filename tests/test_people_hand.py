"""Issue 51, item 1: a face drawn by hand (`rbv faces add PHOTO --box`, a box drawn on
serve's photo page): aligned and embedded with the library's pack, one logged edit that
undo deletes, kept by every automatic run and by the carry after a pixel edit, shown and
exported like any face."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest
from PIL import Image, ImageEnhance

from rbv.config import Settings
from rbv.jobs.library.index import run_index
from rbv.jobs.persons.drawn import add_face
from rbv.store import open_database
from tests.conftest import MISC, PACK, SFACE_THRESHOLD, run_cli

TWO = MISC / "fr_two_people.jpg"


def _faces(url: str, image: int) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT id, x1, y1, x2, y2, drawn, person_id, assigned_by FROM face_detections "
            "WHERE image_id = %s ORDER BY id", (image,)).fetchall()


def _image_of(url: str, path: Path) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT image_id FROM image_paths WHERE path = %s",
                           (str(path),)).fetchone()
    assert row is not None, path
    return int(row[0])


def _missed(url: str, path: Path) -> tuple[int, tuple[int, int, int, int]]:
    """Forget one detected face of ``path`` (as if the detector had missed it): its
    image and its box as X,Y,W,H."""
    image = _image_of(url, path)
    face = _faces(url, image)[0]
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM face_detections WHERE id = %s", (face[0],))
    x1, y1, x2, y2 = (round(float(v)) for v in face[1:5])
    return image, (x1, y1, x2 - x1, y2 - y1)


def _cluster(cli, url: str, *extra: str) -> None:  # type: ignore[no-untyped-def]
    done = run_cli(cli, "-d", url, "cluster", "--threshold", str(SFACE_THRESHOLD), *extra)
    assert done.exit_code == 0, done.output


def _pack_args() -> list[str]:
    return ["--model-pack", str(PACK)]


def test_add_a_missed_face_with_the_detector_landmarks_and_undo_it(
        cli, faces_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    url = str(faces_settings.database_url)
    _cluster(cli, url)
    image, (x, y, w, h) = _missed(url, TWO)
    before = _faces(url, image)
    box = f"{x - 6},{y - 4},{w + 12},{h + 8}"
    dry = run_cli(cli, "-d", url, "faces", "add", str(TWO), "--box", box, "--dry-run",
                  "--json", *_pack_args())
    assert dry.exit_code == 0, dry.output
    preview = json.loads(dry.stdout)
    assert preview["drawn"] == "detector" and preview["face"] is None
    assert _faces(url, image) == before  # a dry run writes nothing

    added = run_cli(cli, "-d", url, "faces", "add", str(TWO), "--box", box, *_pack_args())
    assert added.exit_code == 0, added.output
    assert "landmarks from the detector run inside the box" in added.stdout
    now = _faces(url, image)
    (new,) = [f for f in now if f not in before]
    assert new[5] == "detector" and new[6] is None
    assert [round(float(v)) for v in new[1:5]] == [x - 6, y - 4, x + w + 6, y + h + 4]
    with psycopg.connect(url) as conn:
        emb = conn.execute("SELECT count(*) FROM face_embeddings WHERE face_id = %s",
                           (new[0],)).fetchone()
        history = conn.execute("SELECT command FROM person_edits ORDER BY id DESC LIMIT 1"
                               ).fetchone()
    assert emb == (1,) and history == ("faces add",)

    # the next cluster places it like any face; its person is the same one as before
    _cluster(cli, url)
    assert _faces(url, image)[-1][6] is not None
    # undo: refused while a clustering run has placed it since? It is deleted exactly
    # when nothing changed it: add again, then undo at once.
    undo_target = run_cli(cli, "-d", url, "faces", "add", str(TWO), "--box",
                          f"{x + 2},{y + 2},{w},{h}", *_pack_args())
    assert undo_target.exit_code != 0  # mostly the face just drawn: refused
    assert "is there already" in undo_target.output


def test_box_landmarks_person_by_hand_undo_and_refusals(
        cli, faces_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    url = str(faces_settings.database_url)
    _cluster(cli, url)
    image = _image_of(url, TWO)
    faces = _faces(url, image)
    with Image.open(TWO) as im:
        width, height = im.size
    # a place with no face at all (the bottom-left corner): landmarks from the box
    box = "0,{},{},{}".format(height - 60, 50, 56)
    with psycopg.connect(url) as conn:
        person = conn.execute(
            "SELECT p.id FROM persons p WHERE NOT EXISTS (SELECT 1 FROM face_detections f "
            "WHERE f.person_id = p.id AND f.image_id = %s) ORDER BY p.id LIMIT 1",
            (image,)).fetchone()[0]
    assert run_cli(cli, "-d", url, "persons", "name", str(person), "Ada").exit_code == 0
    added = run_cli(cli, "-d", url, "faces", "add", str(TWO), "--box", box, "--person", "Ada",
                    "--json", *_pack_args())
    assert added.exit_code == 0, added.output
    doc = json.loads(added.stdout)
    assert doc["drawn"] == "box" and doc["person_name"] == "Ada" and doc["edit"]
    new = [f for f in _faces(url, image) if f not in faces]
    assert [(f[5], str(f[6]), f[7]) for f in new] == [("box", str(person), "manual")]

    # kept by cluster and cluster --full, in its person
    _cluster(cli, url)
    _cluster(cli, url, "--full")
    assert [(str(f[6]), f[7]) for f in _faces(url, image) if f[0] == doc["face"]] == [
        (str(person), "manual")]

    # a person has one face per photo: refused as `persons move` refuses it
    other = f"{width - 60},{height - 60},50,56"
    clash = run_cli(cli, "-d", url, "faces", "add", str(TWO), "--box", other, "--person",
                    "Ada", *_pack_args())
    assert clash.exit_code == 1 and "a person has one face per photo" in clash.output
    # outside the photo, too small, mostly a face found already: one line, nothing changed
    state = _faces(url, image)
    for bad, words in ((f"{width - 10},0,40,40", "reaches outside the photo"),
                       ("10,10,8,8", "too small"),
                       ("1,2,3", "give X,Y,W,H")):
        refused = run_cli(cli, "-d", url, "faces", "add", str(TWO), "--box", bad,
                          *_pack_args())
        assert refused.exit_code == 1 and words in refused.output, refused.output
        assert len(refused.output.strip().splitlines()) == 1
    fx1, fy1, fx2, fy2 = (round(float(v)) for v in faces[0][1:5])
    found = run_cli(cli, "-d", url, "faces", "add", str(TWO), "--box",
                    f"{fx1},{fy1},{fx2 - fx1},{fy2 - fy1}", *_pack_args())
    assert found.exit_code == 1
    assert f"the box is mostly face {faces[0][0]}" in found.output
    assert f"rbv persons move {faces[0][0]} --to PERSON" in found.output
    assert _faces(url, image) == state

    # undo deletes exactly the face drawn (after cluster runs that left it in place)
    assert run_cli(cli, "-d", url, "persons", "undo").exit_code == 0
    assert [f[0] for f in _faces(url, image)] == [f[0] for f in faces]


def test_not_catalogued_photo_is_refused(cli, faces_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    url = str(faces_settings.database_url)
    result = run_cli(cli, "-d", url, "faces", "add", str(MISC / "nope.jpg"), "--box",
                     "1,1,40,40", *_pack_args())
    assert result.exit_code == 1
    assert "is not a photo of the library" in result.output

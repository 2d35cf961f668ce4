"""Issue 51, item 1: a face drawn by hand (`rbv faces add PHOTO --box`, a box drawn on
serve's photo page): aligned and embedded with the library's pack, one logged edit that
undo deletes, kept by every automatic run and by the carry after a pixel edit, shown and
exported like any face."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import psycopg
import pytest
from PIL import Image, ImageEnhance

from rbv.config import Settings
from rbv.jobs.library.index import run_index
from rbv.jobs.persons import lookup
from rbv.jobs.persons.drawn import add_face
from rbv.store import open_database
from tests.conftest import MISC, PACK, SFACE_THRESHOLD, run_cli
from tests.test_immich_push import db_url, server, template  # noqa: F401  (fixtures)

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

    # the next cluster places it like any face
    _cluster(cli, url)
    assert _faces(url, image)[-1][6] is not None
    # drawn again at about the same place: it is mostly the face drawn, refused
    again = run_cli(cli, "-d", url, "faces", "add", str(TWO), "--box",
                    f"{x + 2},{y + 2},{w},{h}", *_pack_args())
    assert again.exit_code == 1 and f"the box is mostly face {new[0]}" in again.output


def test_box_landmarks_person_by_hand_undo_and_refusals(
        cli, faces_settings: Settings, tmp_path: Path,  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = str(faces_settings.database_url)
    _cluster(cli, url)
    image = _image_of(url, TWO)
    faces = _faces(url, image)
    with Image.open(TWO) as im:
        width, height = im.size
    # a place with no face at all (the bottom-left corner): landmarks from the box
    box = f"0,{height - 60},50,56"
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

    # shown where faces are: persons show (marked drawn), the contact sheet
    shown = json.loads(run_cli(cli, "-d", url, "persons", "show", "Ada", "--json").stdout)
    (mine,) = [f for f in shown["faces"] if f["id"] == doc["face"]]
    assert mine["drawn"] == "box" and mine["assigned_by"] == "manual"
    table = run_cli(cli, "-d", url, "persons", "show", "Ada", env={"COLUMNS": "200"})
    assert "manual, drawn" in table.stdout
    sheet = run_cli(cli, "-d", url, "show", "Ada", "-o", str(Path(url.split("/")[-1]
                                                                  ).with_suffix(".png")),
                    "--json")
    assert sheet.exit_code == 0 and json.loads(sheet.stdout)["tiles"] == len(shown["faces"])
    assert json.loads(sheet.stdout)["missing"] == []
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

    # a box over a detection marked not a face: refused, naming the way back
    marked = faces[0][0]
    assert run_cli(cli, "-d", url, "faces", "not-a-face", str(marked)).exit_code == 0
    over = run_cli(cli, "-d", url, "faces", "add", str(TWO), "--box",
                   f"{fx1},{fy1},{fx2 - fx1},{fy2 - fy1}", *_pack_args())
    assert over.exit_code == 1 and f"rbv faces is-a-face {marked}" in over.output, over.output
    assert [f[0] for f in _faces(url, image)] == [f[0] for f in faces]


def test_a_photo_not_catalogued_or_not_scanned_is_refused(
        cli, faces_settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    url = str(faces_settings.database_url)
    result = run_cli(cli, "-d", url, "faces", "add", str(MISC / "nope.jpg"), "--box",
                     "1,1,40,40", *_pack_args())
    assert result.exit_code == 1
    assert "is not a photo of the library" in result.output
    lib = tmp_path / "lib"
    lib.mkdir()
    photo = _own_copy(lib)
    done = run_cli(cli, "-d", url, "index", str(lib), "--no-embed", *_pack_args())
    assert done.exit_code == 0, done.output
    # through a symlink to it, as the user may give it
    link = tmp_path / "link.jpg"
    link.symlink_to(photo)
    result = run_cli(cli, "-d", url, "faces", "add", str(link), "--box", "1,1,40,40",
                     *_pack_args())
    assert result.exit_code == 1
    assert "has not been scanned by scrfd_sface yet" in result.output
    # a library indexed through a symlinked folder, the photo given by its real path
    # (and under a name that is not UTF-8): found by its bytes
    real = tmp_path / "real"
    real.mkdir()
    odd = Path(os.fsdecode(bytes(real).rstrip(b"/") + b"/caf\xe9 two.jpg"))
    shutil.copyfile(photo, odd)
    (tmp_path / "linked").symlink_to(real)
    done = run_cli(cli, "-d", url, "index", str(tmp_path / "linked"), "--no-embed",
                   *_pack_args())
    assert done.exit_code == 0, done.output
    result = run_cli(cli, "-d", url, "faces", "add", str(odd), "--box", "1,1,40,40",
                     *_pack_args())
    assert result.exit_code == 1
    assert "has not been scanned by scrfd_sface yet" in result.output, result.output


def _own_copy(lib: Path) -> Path:
    """A photo of two people of the user's own (not an alias of the template's)."""
    photo = lib / TWO.name
    with Image.open(TWO) as im:
        im.convert("RGB").save(photo, format="JPEG", quality=95)
    return photo


EDITS = {
    "brighten": lambda im: ImageEnhance.Brightness(im).enhance(1.3),
    "crop": lambda im: im.crop((im.width // 10, 0, im.width, im.height)),
}


@pytest.mark.parametrize("how", sorted(EDITS))
def test_a_drawn_face_is_drawn_again_after_a_pixel_edit(
        faces_settings: Settings, sface_analyzer, tmp_path: Path, how: str) -> None:  # type: ignore[no-untyped-def]
    """The carry after a pixel edit draws the face again at its place in the new
    content, embedded there, in its person; with no analyzer to draw with, it is said."""
    url = str(faces_settings.database_url)
    db = open_database(faces_settings)
    lib = tmp_path / "lib"
    lib.mkdir()
    photo = _own_copy(lib)
    run_index(db, faces_settings, [lib], analyzer=sface_analyzer)
    image, (x, y, w, h) = _missed(url, photo)
    person = _named_person(url, 'Ada')
    added = add_face(db, faces_settings, photo=str(photo), box=(x, y, w, h),
                     person=lookup.resolve(db, "Ada"),
                     analyzer=sface_analyzer)
    assert added.drawn == "detector" and added.face_id is not None
    with Image.open(photo) as im:
        width, height = im.size
    # and a face where the detector finds none, whatever the pixels (bottom right: the
    # crop keeps it)
    corner = add_face(db, faces_settings, photo=str(photo),
                      box=(width - 60, height - 60, 50, 56), analyzer=sface_analyzer)
    assert corner.drawn == "box"
    # indexing the same photo again keeps both, as they were
    before_again = _faces(url, image)
    run_index(db, faces_settings, [lib], analyzer=sface_analyzer)
    assert _faces(url, image) == before_again
    with psycopg.connect(url) as conn:
        old_face = conn.execute("SELECT e.embedding::real[] FROM face_embeddings e "
                                "WHERE face_id = %s", (corner.face_id,)).fetchone()[0]
    with Image.open(photo) as im:
        EDITS[how](im.convert("RGB")).save(photo, format="JPEG", quality=92)
    summary = run_index(db, faces_settings, [lib], analyzer=sface_analyzer)
    assert summary.embed is not None and not summary.embed.carry.dropped
    new_image = _image_of(url, photo)
    assert new_image != image
    shift = width // 10 if how == "crop" else 0
    now = _faces(url, new_image)
    # the face drawn where the scan of the new content finds one: the same face, by the
    # correspondence rules, in Ada by hand
    (ada,) = [f for f in now if f[6] is not None]
    assert (str(ada[6]), ada[7]) == (str(person), "manual")
    assert abs(float(ada[1]) - (x - shift)) < 0.25 * w
    # the one the detector never finds: drawn again at its place in the new content
    (again,) = [f for f in now if f[5] == "box"]
    expected = [width - 60 - shift, height - 60, width - 10 - shift, height - 4]
    assert all(abs(float(v) - e) <= 2 for v, e in zip(again[1:5], expected, strict=True))
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM face_detections WHERE id = ANY(%s)",
                            ([added.face_id, corner.face_id],)).fetchone() == (0,)
        new_embedding = conn.execute("SELECT e.embedding::real[] FROM face_embeddings e "
                                     "WHERE face_id = %s", (again[0],)).fetchone()[0]
    assert new_embedding != old_face  # embedded in the new content


def test_a_drawn_face_the_carry_cannot_draw_is_said(
        faces_settings: Settings, sface_analyzer, tmp_path: Path,  # type: ignore[no-untyped-def]
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Carried without the pack's models here (a scan by a remote server, which embeds
    whole photos only), the face is said as gone, by its face id, as carry losses are."""
    import rbv.jobs.library.drawing as drawing

    db = open_database(faces_settings)
    lib = tmp_path / "lib"
    lib.mkdir()
    photo = _own_copy(lib)
    run_index(db, faces_settings, [lib], analyzer=sface_analyzer)
    with Image.open(photo) as im:
        height = im.height
    added = add_face(db, faces_settings, photo=str(photo), box=(0, height - 60, 50, 56),
                     analyzer=sface_analyzer)
    assert added.drawn == "box"
    with Image.open(photo) as im:
        EDITS["brighten"](im.convert("RGB")).save(photo, format="JPEG", quality=92)
    monkeypatch.setattr(drawing, "local_analyzer", lambda analyzer: None)
    summary = run_index(db, faces_settings, [lib], analyzer=sface_analyzer)
    assert summary.embed is not None
    (line,) = summary.embed.carry.dropped
    assert f"face {added.face_id} was not found in it again" in line
    assert "a face drawn by hand" in line


# -- rbv serve -------------------------------------------------------------------------

def test_serve_draw_action_adds_refuses_and_undoes(served, faces_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """POST /api/draw adds the face through the same job (logged, undone by the toast's
    Undo); bad input is a 400 and a refusal a 409, never a 500, and changes nothing."""
    _server, client = served
    dsn = str(faces_settings.database_url)
    image, (x, y, w, h) = _missed(dsn, TWO)
    before = _faces(dsn, image)
    for body, status in (({"image": image, "box": [x, y, w]}, 400),
                         ({"image": image, "box": [x, y, "w", h]}, 400),
                         ({"image": image, "box": [-1, y, w, h]}, 400),
                         ({"image": "1", "box": [x, y, w, h]}, 400),
                         ({"image": image, "box": [x, y, w, h], "person": 7}, 400),
                         ({"image": image, "box": [x, y, 4, 4]}, 409),
                         ({"image": image, "box": [x, y, w, h], "person": "Nobody Atall"}, 409),
                         ({"image": 999_999, "box": [x, y, w, h]}, 409)):
        reply = client.post("draw", body)
        assert reply.status == status, (body, reply.status, reply.body)
        assert json.loads(reply.body)["ok"] is False
    assert _faces(dsn, image) == before
    reply = client.post("draw", {"image": image, "box": [x, y, w, h]})
    assert reply.status == 200, reply.body
    answer = json.loads(reply.body)
    assert "landmarks from the detector" in answer["message"] and answer["edit"]
    (new,) = [f for f in _faces(dsn, image) if f not in before]
    assert new[5] == "detector"
    shown = client.get(f"/photo/{image}").body.decode()
    assert f'data-face="{new[0]}"' in shown and "drawn by hand" in shown
    assert client.post("undo", {"edit": answer["edit"], "count": 1}).status == 200
    assert _faces(dsn, image) == before


@pytest.mark.slow
def test_chromium_drag_a_box_on_a_photo_adds_the_face(
        cli, page, faces_settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """In a real Chromium: on a photo's page a person drags a box around a face the
    detector missed, types a person's name, adds it (the face exists, in that person by
    hand, drawn with the detector's landmarks), and the toast's Undo deletes it."""
    from playwright.sync_api import expect

    from tests.serve_client import serving
    from tests.support.browser import wait_for_visible_images, watch_errors

    url = str(faces_settings.database_url)
    _cluster(cli, url)
    image, (x, y, w, h) = _missed(url, TWO)
    before = _faces(url, image)
    with psycopg.connect(url) as conn:
        person = conn.execute(
            "SELECT p.id FROM persons p WHERE NOT EXISTS (SELECT 1 FROM face_detections f "
            "WHERE f.person_id = p.id AND f.image_id = %s) ORDER BY p.id LIMIT 1",
            (image,)).fetchone()[0]
    assert run_cli(cli, "-d", url, "persons", "name", str(person), "Ada Lovelace"
                   ).exit_code == 0
    shots = tmp_path / "shots"
    shots.mkdir()
    errors = watch_errors(page)
    with serving(faces_settings, tmp_path / "cache") as (review, client):
        page.goto(review.url)
        page.goto(client.base + f"/photo/{image}")
        wait_for_visible_images(page)
        photo = page.locator(".photo img").bounding_box()
        assert photo is not None
        with Image.open(TWO) as im:
            scale = photo["width"] / im.width
        def at(px: float, py: float) -> tuple[float, float]:
            return photo["x"] + px * scale, photo["y"] + py * scale
        page.mouse.move(*at(x - 8, y - 8))
        page.mouse.down()
        for k in range(1, 6):
            page.mouse.move(*at(x - 8 + k * (w + 16) / 10, y - 8 + k * (h + 16) / 10))
        page.screenshot(path=shots / "draw-box-mid.png")
        page.mouse.move(*at(x + w + 8, y + h + 8), steps=5)
        page.mouse.up()
        expect(page.locator("#draw-form")).to_be_visible()
        expect(page.locator(".drawing")).to_be_visible()
        page.fill("#draw-person", "Ada Lovelace")
        page.screenshot(path=shots / "draw-box.png")
        page.click("#draw-add")
        expect(page.locator("#toast")).to_contain_text("Added face")
        (new,) = [f for f in _faces(url, image) if f not in before]
        assert (new[5], str(new[6]), new[7]) == ("detector", str(person), "manual")
        # the box drawn is where the face is (within the pointer's rounding)
        assert abs(float(new[1]) - (x - 8)) <= 3 / scale + 1
        assert abs(float(new[3]) - (x + w + 8)) <= 3 / scale + 1
        expect(page.locator(f'.box.drawn[data-face="{new[0]}"]')).to_contain_text(
            "Ada Lovelace")
        wait_for_visible_images(page)
        page.screenshot(path=shots / "draw-box-done.png")
        page.click("#toast-undo")
        expect(page.locator("#toast")).to_contain_text("Undid")
        assert _faces(url, image) == before
    assert errors == []
    print(f"\nscreenshots: {shots}")


# -- export-xmp and immich-push: like any named face -------------------------------------

@pytest.mark.slow
def test_export_xmp_writes_a_drawn_face_region_exiftool_reads_back(
        cli, settings: Settings, sface_analyzer, tmp_path: Path, exiftool: str) -> None:  # type: ignore[no-untyped-def]
    db = open_database(settings)
    lib = tmp_path / "lib"
    lib.mkdir()
    photo = _own_copy(lib)
    run_index(db, settings, [lib], analyzer=sface_analyzer)
    url = str(settings.database_url)
    image, (x, y, w, h) = _missed(url, photo)
    _named_person(url, 'Ada Drawn')
    added = add_face(db, settings, photo=str(photo), box=(x, y, w, h),
                     person=lookup.resolve(db, "Ada Drawn"),
                     analyzer=sface_analyzer)
    assert added.face_id is not None
    result = run_cli(cli, "-d", url, "export-xmp", "--json")
    assert result.exit_code == 0, result.output
    sidecar = Path(str(photo) + ".xmp")
    out = subprocess.run([exiftool, "-j", "-struct", "-RegionInfo", str(sidecar)],
                         capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)[0]["RegionInfo"]
    (region,) = [r for r in info["RegionList"] if r.get("Name") == "Ada Drawn"]
    width, height = info["AppliedToDimensions"]["W"], info["AppliedToDimensions"]["H"]
    area = region["Area"]
    assert region["Type"] == "Face"
    assert abs(area["X"] * width - (x + w / 2)) <= 1 and abs(area["Y"] * height - (y + h / 2)) <= 1
    assert abs(area["W"] * width - w) <= 1 and abs(area["H"] * height - h) <= 1


@pytest.mark.slow
def test_immich_push_gives_a_drawn_face_its_name_like_a_detected_one(  # noqa: F811
        db_url: str, server, sface_analyzer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The rotated portrait's face (EXIF orientation 6), forgotten as if missed, drawn
    by hand in its named person: immich-push matches it to Immich's face of the asset
    by the box (in the upright frame) and names it, as it does a detected face."""
    from tests.test_immich_push import ROTATED, ROTATED_NAME, named_in_immich, push

    with psycopg.connect(db_url) as conn:
        face, x1, y1, x2, y2, image = conn.execute(
            "SELECT f.id, f.x1, f.y1, f.x2, f.y2, f.image_id FROM face_detections f "
            "JOIN person_names n ON n.person_id = f.person_id WHERE n.name = %s",
            (ROTATED_NAME,)).fetchone()
        conn.execute("DELETE FROM face_detections WHERE id = %s", (face,))
    settings = Settings(database_url=db_url, data_dir=tmp_path, model_pack=str(PACK))
    box = (round(x1), round(y1), round(x2 - x1), round(y2 - y1))
    db = open_database(settings)
    added = add_face(db, settings, image_id=image, box=box,
                     person=lookup.resolve(db, ROTATED_NAME), analyzer=sface_analyzer)
    assert added.drawn == "detector" and added.face_id != face
    got = json.loads(push(db_url, server).stdout)
    assert got["failed"] == 0 and got["conflicts"] == []
    rotated = next(a for a in server.assets.values() if a.file_name == ROTATED)
    assert any(named_in_immich(server).get(f) == ROTATED_NAME for f in rotated.face_ids)


# -- the decision machine's rule, as one fixed sequence ------------------------------------

@pytest.mark.slow
def test_decision_machine_drawn_faces_survive_runs_and_undo_deletes_them(  # noqa: F811
        decisions_env) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """The machine's add_face rule in a fixed sequence: drawn faces (one in a person by
    hand) are undone exactly, survive cluster, cluster --full and indexing more photos,
    the hand-placed one stays in its person, and person sums stay exact."""
    from tests.support.decisions import DecisionMachine

    DecisionMachine.env = decisions_env
    state = DecisionMachine()
    try:
        state.first_cluster()
        image, width, height, _boxes = state.photos_scanned()[0]
        person = state.live_persons()[0]
        with state.db.connect() as conn:
            busy = {str(p) for (p,) in conn.execute(
                "SELECT DISTINCT person_id FROM face_detections WHERE image_id = %s "
                "AND person_id IS NOT NULL", (image,))}
        person = next(p for p in state.live_persons() if p not in busy)
        side = max(16, min(width, height) // 6)
        before = state.state()
        state.draw_face(image, (0, 0, side, side), person)
        state.draw_face(image, (width - side, height - side, side, side), None)
        assert len(state.state()["drawn"]) == 2
        state.sums_exact()
        state.undo(2)  # restores exactly (the machine asserts it)
        assert state.state() == before
        state.draw_face(image, (0, 0, side, side), person)
        (drawn,) = state.state()["drawn"]
        state.draw_face(image, (width - side, height - side, side, side), None)
        state.cluster()
        state.cluster_full()
        state.index_more()
        state.cluster()
        state.decisions_hold()
        state.sums_exact()
        now = state.state()
        assert len(now["drawn"]) == 2
        assert (drawn[0], uuid_of(person), "manual") in now["faces"]
    finally:
        state.teardown()
        del DecisionMachine.env


def uuid_of(person: str):  # type: ignore[no-untyped-def]
    import uuid

    return uuid.UUID(person)


def test_prune_of_the_missing_photo_says_the_drawn_face(
        faces_settings: Settings, sface_analyzer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A photo deleted by the user: prune deletes its faces, and says the one drawn."""
    from rbv.jobs.library.prune import run_prune

    db = open_database(faces_settings)
    lib = tmp_path / "lib"
    lib.mkdir()
    photo = _own_copy(lib)
    with Image.open(MISC / "fr_obama-240p.jpg") as im:  # the folder is not emptied
        im.convert("RGB").save(lib / "other.jpg", format="JPEG", quality=90)
    run_index(db, faces_settings, [lib], analyzer=sface_analyzer)
    with Image.open(photo) as im:
        height = im.height
    added = add_face(db, faces_settings, photo=str(photo), box=(0, height - 60, 50, 56),
                     analyzer=sface_analyzer)
    photo.unlink()
    run_index(db, faces_settings, [lib], analyzer=sface_analyzer)  # marks it missing
    preview = run_prune(db, dry_run=True)
    report = run_prune(db)
    assert preview.lost == report.lost
    assert any(f"face {added.face_id} goes with the missing photo, which was a face "
               "drawn by hand" in line for line in report.lost), report.lost


def test_a_remote_pack_is_refused_in_one_line(faces_settings: Settings) -> None:
    """A pack whose faces a remote server found (it embeds whole photos only), or a run
    on one: refused, saying so."""
    from rbv.errors import Refused
    from rbv.jobs.persons.drawn import pack_analyzer
    from rbv.store.queries.packs import PackRow

    db = open_database(faces_settings)
    remote = PackRow(1, "remote:ViT-B-32__openai@ml.local", "f" * 64, 512)
    with pytest.raises(Refused, match="a remote server's model: rbv cannot align"):
        pack_analyzer(db, faces_settings, remote)
    with db.connect() as conn:
        from rbv.store.queries.pack_lookup import find_pack

        pack = find_pack(conn, None)
    with pytest.raises(Refused, match="runs on a remote server here"):
        pack_analyzer(db, faces_settings, pack, analyzer=object())  # type: ignore[arg-type]


def _named_person(url: str, name: str) -> uuid.UUID:
    """A person with that name and no face yet, of the library's one pack."""
    with psycopg.connect(url) as conn:
        person = conn.execute("INSERT INTO persons (pack_id) SELECT id FROM model_packs "
                              "RETURNING id").fetchone()[0]
        conn.execute("INSERT INTO person_names (person_id, name) VALUES (%s, %s)",
                     (person, name))
    return uuid.UUID(str(person))

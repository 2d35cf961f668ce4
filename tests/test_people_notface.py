"""Issue 51, item 2: "not a face" (a poster, a statue, a pattern). `rbv faces not-a-face`
takes the detection out of its person and drops the decisions about it (each said), in
one edit undone exactly; no clustering gives it a person again, no edit puts it in one
without taking the mark back (`rbv faces is-a-face`), a pixel edit's carry and prune's
copy under another name give the mark to the same detection, and export-xmp,
immich-push, refine and export-swap skip it. `rbv serve` offers it on the person and
photo pages."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PIL import Image, ImageEnhance
from typer.testing import CliRunner

from rbv.config import Settings
from tests.conftest import MISC, PACK, SFACE_THRESHOLD, run_cli
from tests.support.decisions import dump
from tests.test_immich_push import db_url, named_in_immich, push, server, template  # noqa: F401

pytestmark = pytest.mark.slow  # real faces, clustered


def _ok(cli, url: str, *args: str) -> str:  # type: ignore[no-untyped-def]
    done = run_cli(cli, "-d", url, *args)
    assert done.exit_code == 0, (args, done.output)
    return str(done.stdout)


def _rows(url: str, query: str, *params: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(query, params)]


def _state(url: str) -> dict[str, list[tuple[Any, ...]]]:
    with psycopg.connect(url) as conn:
        return dump(conn)


def _person_of(url: str, face: int) -> str | None:
    (row,) = _rows(url, "SELECT person_id FROM face_detections WHERE id = %s", face)
    return None if row[0] is None else str(row[0])


def _clustered(cli, url: str) -> tuple[dict[str, Any], dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Cluster; the two largest persons, each with its face ids."""
    _ok(cli, url, "cluster", "--threshold", str(SFACE_THRESHOLD))
    persons = json.loads(_ok(cli, url, "persons", "list", "--json", "--limit", "0"))
    out = []
    for p in persons[:2]:
        shown = json.loads(_ok(cli, url, "persons", "show", p["id"], "--json"))
        out.append({**p, "faces": sorted(f["id"] for f in shown["faces"])})
    return out[0], out[1]


def test_not_a_face_leaves_its_person_drops_its_decisions_and_undo_puts_all_back(
        cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    big, other = _clustered(cli, url)
    face, same_as, apart = big["faces"][0], big["faces"][1], other["faces"][0]
    _ok(cli, url, "faces", "same", str(face), str(same_as))
    _ok(cli, url, "faces", "different", str(face), str(apart))
    _ok(cli, url, "persons", "not-this-person", other["id"], str(face))
    before = _state(url)

    dry = _ok(cli, url, "faces", "not-a-face", str(face), "--dry-run")
    assert _state(url) == before, "a dry run wrote something"
    assert f"Would mark face {face} not a face. Dry run: nothing was changed." in dry
    assert f"Face {face} would leave person {big['id'][:8]}" in dry
    words = " ".join(dry.split())
    assert f"the earlier decision that face {face} is not {other['id']}" in words
    assert re.search(r"\d+ 'different' links? \(faces ", words) and "1 'same' link (faces " \
        in words

    done = json.loads(_ok(cli, url, "faces", "not-a-face", str(face), "--json"))
    assert done["changed"] == [face] and done["already"] == []
    assert done["left"] == [{"face": face, "person": big["id"], "name": None}]
    assert "'same' link" in done["dropped"] and "'different' link" in done["dropped"]
    after = _state(url)
    assert after["not_faces"] == [(face,)]
    assert _person_of(url, face) is None
    assert all(face not in pair for pair in after["same"] + after["different"])
    assert all(f != face for f, _p in after["rejections"])
    history = _ok(cli, url, "persons", "history")
    assert f"face {face} marked not a face" in history

    again = run_cli(cli, "-d", url, "faces", "not-a-face", str(face))
    assert again.exit_code == 0 and f"Face {face} was marked not a face already." in \
        again.stdout
    unknown = run_cli(cli, "-d", url, "faces", "not-a-face", str(same_as), "987654321")
    assert unknown.exit_code == 1
    assert unknown.output.strip().splitlines() == [
        "Error: no face with id 987654321 in this database; nothing was changed"]
    assert _state(url) == after

    listed = json.loads(_ok(cli, url, "faces", "not-faces", "--json"))["not_faces"]
    assert [f["id"] for f in listed] == [face] and listed[0]["path"]
    assert str(face) in _ok(cli, url, "faces", "not-faces", "--model-pack", "scrfd_sface")

    _ok(cli, url, "persons", "undo")
    assert _state(url) == before, "undo did not put everything back"


def test_no_clustering_and_no_edit_gives_a_not_a_face_a_person(
        cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    big, other = _clustered(cli, url)
    face = big["faces"][0]
    _ok(cli, url, "persons", "name", other["id"], "Ola")  # a name outlives every run
    _ok(cli, url, "persons", "move", str(face), "--to", big["id"])  # placed by hand
    _ok(cli, url, "faces", "not-a-face", str(face))
    assert _person_of(url, face) is None
    for args in (["cluster"], ["cluster", "--full"],
                 ["cluster", "--full", "--threshold", "0.2"],
                 ["cluster", "--full", "--method", "connected", "--threshold", "0.2"],
                 ["cluster", "--full", "--method", "evidence"]):
        _ok(cli, url, *args)
        assert _person_of(url, face) is None, args
        assert _rows(url, "SELECT face_id FROM not_faces") == [(face,)]
    for args in (["persons", "move", str(face), "--to", "Ola"],
                 ["persons", "move", str(face)],
                 ["faces", "same", str(face), str(big["faces"][1])],
                 ["faces", "different", str(face), str(other["faces"][0])],
                 ["persons", "not-this-person", "Ola", str(face)]):
        state = _state(url)
        refused = run_cli(cli, "-d", url, *args)
        assert refused.exit_code == 1, args
        assert f"take the mark back first: `rbv faces is-a-face {face}`" in " ".join(
            refused.output.split())
        assert _state(url) == state, args

    dry = _ok(cli, url, "faces", "is-a-face", str(face), "--dry-run")
    assert "Would take back the mark of face" in dry and _rows(
        url, "SELECT face_id FROM not_faces") == [(face,)]
    out = _ok(cli, url, "faces", "is-a-face", str(face), "--json")
    assert json.loads(out)["changed"] == [face]
    assert _rows(url, "SELECT face_id FROM not_faces") == []
    assert f"Face {face} was not marked." in _ok(cli, url, "faces", "is-a-face", str(face))
    _ok(cli, url, "cluster", "--full", "--threshold", str(SFACE_THRESHOLD))
    assert _person_of(url, face) is not None  # a face again, placed as any face
    # Undoing the mark's taking back now would leave a marked face in that person (the
    # decision fuzzer found it): refused, nothing changed.
    state = _state(url)
    refused = run_cli(cli, "-d", url, "persons", "undo")
    assert refused.exit_code != 0
    assert f"face {face} was changed since by a clustering run" in " ".join(
        refused.output.split()), refused.output
    assert _state(url) == state


# -- the same image data indexed again ----------------------------------------------------

TWO = MISC / "fr_two_people.jpg"  # 1126×661, two people side by side


def _faces_at(url: str, path: Path) -> list[int]:
    return [int(r[0]) for r in _rows(
        url, "SELECT f.id FROM face_detections f JOIN image_paths p ON p.image_id = f.image_id "
        "WHERE p.path = %s ORDER BY f.x1", str(path))]


def _index(cli, url: str, lib: Path) -> str:  # type: ignore[no-untyped-def]
    return _ok(cli, url, "index", str(lib), "--model-pack", str(PACK), "--device", "cpu")


def _marked(url: str) -> set[int]:
    return {int(r[0]) for r in _rows(url, "SELECT face_id FROM not_faces")}


def test_the_mark_stays_with_the_same_detection_when_its_image_data_is_indexed_again(
        cli, settings: Settings, tmp_path: Path) -> None:
    url = str(settings.database_url)
    lib = tmp_path / "lib"
    lib.mkdir()
    photo = lib / "two.jpg"
    shutil.copyfile(TWO, photo)
    _index(cli, url, lib)
    left, right = _faces_at(url, photo)
    _ok(cli, url, "faces", "not-a-face", str(left))

    # the same bytes under another name: the same photo, the same faces
    shutil.copyfile(photo, lib / "copy of two.jpg")
    _index(cli, url, lib)
    assert _faces_at(url, lib / "copy of two.jpg") == [left, right]
    assert _marked(url) == {left}
    (lib / "copy of two.jpg").unlink()
    _index(cli, url, lib)
    _ok(cli, url, "prune")  # the copy's path goes; the photo and its faces stay
    assert _faces_at(url, photo) == [left, right] and _marked(url) == {left}

    # a pixel edit: the carry gives the mark to the same detection in the new content
    with Image.open(photo) as im:
        ImageEnhance.Brightness(im).enhance(1.3).save(photo, quality=92)
    _index(cli, url, lib)
    new_left, new_right = _faces_at(url, photo)
    assert left not in (new_left, new_right)
    assert _marked(url) == {new_left}
    _ok(cli, url, "cluster", "--full", "--threshold", "0.2")
    assert _person_of(url, new_left) is None and _person_of(url, new_right) is not None

    # a copy under another name (JPEG → PNG), the JPEG gone: prune gives it the mark
    png = lib / "converted.png"
    with Image.open(photo) as im:
        im.save(png)
    photo.unlink()
    _index(cli, url, lib)
    copy_left, _copy_right = _faces_at(url, png)
    _ok(cli, url, "cluster", "--threshold", "0.2")
    pruned = _ok(cli, url, "prune")
    assert f"face {new_left} is face {copy_left} of {png}" in pruned, pruned
    assert _marked(url) == {copy_left}
    assert _person_of(url, copy_left) is None


# -- what is written out skips it ----------------------------------------------------------

def _named_library(cli, url: str, lib: Path) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Two photos of two people; both faces of each photo named: 'Left', 'Right'. The
    left face of the first (marked not a face) and of the second (kept)."""
    lib.mkdir()
    for name in ("a.jpg", "b.jpg"):
        shutil.copyfile(TWO, lib / name)
    with Image.open(lib / "b.jpg") as im:  # other image data, the same people
        im.resize((im.width * 2 // 3, im.height * 2 // 3)).save(lib / "b.jpg", quality=92)
    _index(cli, url, lib)
    (a_left, a_right), (b_left, b_right) = _faces_at(url, lib / "a.jpg"), _faces_at(
        url, lib / "b.jpg")
    _ok(cli, url, "persons", "move", str(a_left), str(b_left))
    _ok(cli, url, "persons", "name", _person_of(url, a_left) or "", "Left")
    _ok(cli, url, "persons", "move", str(a_right), str(b_right))
    _ok(cli, url, "persons", "name", _person_of(url, a_right) or "", "Right")
    _ok(cli, url, "faces", "not-a-face", str(a_left))
    return a_left, b_left


def test_export_xmp_writes_no_region_for_a_not_a_face(
        cli, settings: Settings, tmp_path: Path) -> None:
    url = str(settings.database_url)
    lib = tmp_path / "lib"
    _named_library(cli, url, lib)
    _ok(cli, url, "export-xmp")
    first = (lib / "a.jpg.xmp").read_text()
    second = (lib / "b.jpg.xmp").read_text()
    assert "Right" in first and "Left" not in first
    assert "Right" in second and "Left" in second


def test_refine_and_export_swap_skip_a_not_a_face(
        cli, faces_settings: Settings, tmp_path: Path) -> None:
    url = str(faces_settings.database_url)
    relaxed = ("--min-images", "3", "--min-face", "30", "--no-crops")
    _ok(cli, url, "cluster", "--threshold", "0.46")
    _ok(cli, url, "refine", str(tmp_path / "before"), *relaxed)
    manifest = json.loads((tmp_path / "before" / "refine_manifest.json").read_text())
    owned = next(fs for fs in manifest["facesets"] if fs["person_id"])
    face = owned["faces"][0]["id"]
    _ok(cli, url, "faces", "not-a-face", str(face))

    # export-swap of the manifest written before the mark: the face is left out
    manifest["facesets"] = [owned]
    path = tmp_path / "before" / "refine_manifest.json"
    path.write_text(json.dumps(manifest))
    out = json.loads(_ok(cli, url, "export-swap", str(path), str(tmp_path / "swap"),
                         "--model-pack", str(PACK), "--min-face", "30", "--candidates",
                         "--json"))
    written = json.loads((tmp_path / "swap" / owned["folder"] / "manifest.json").read_text())
    assert out["facesets"] and written["faces"]
    assert face not in {f["face_id"] for f in written["faces"] + written["dropped_faces"]}
    assert face not in {c["face_id"] for c in written["candidates"]}

    # refine after the mark: in no faceset
    _ok(cli, url, "refine", str(tmp_path / "after"), *relaxed)
    again = json.loads((tmp_path / "after" / "refine_manifest.json").read_text())
    assert face not in {f["id"] for fs in again["facesets"] for f in fs["faces"]}


# -- rbv serve ------------------------------------------------------------------------------

def test_serve_marks_a_face_from_the_person_and_photo_pages_and_undoes_it(
        served, faces_settings: Settings) -> None:
    _server, client = served
    url = str(faces_settings.database_url)
    (person, face), = _rows(url, "SELECT person_id::text, min(id) FROM face_detections "
                            "WHERE person_id IS NOT NULL GROUP BY person_id "
                            "ORDER BY count(*) DESC LIMIT 1")
    page = client.get(f"/person/{person}").text
    assert f'data-face-act="notface" data-mark="{face}"' in page
    assert 'data-act="notface"' in page
    (image,), = _rows(url, "SELECT image_id FROM face_detections WHERE id = %s", face)
    photo = client.get(f"/photo/{image}").text
    assert f'data-face-act="notface" data-mark="{face}"' in photo

    for bad in ({"faces": []}, {"faces": "12"}, {"faces": [-1]}, {}):
        reply = client.post("notface", bad)
        assert 400 <= reply.status < 500, (bad, reply.status)
    assert client.post("notface", {"faces": [987654321]}).status == 409
    assert client.post("notface", {"faces": [face]}, token="wrong").status in (401, 403)
    assert _marked(url) == set()

    before = _state(url)
    reply = client.post("notface", {"faces": [face]})
    assert reply.status == 200, reply.text
    answer = reply.json()
    assert answer["ok"] and answer["edit"] and "marked not a face" in answer["message"]
    assert _marked(url) == {face} and _person_of(url, face) is None
    assert f'data-face="{face}"' not in client.get(f"/person/{person}").text
    photo = client.get(f"/photo/{image}").text
    assert "not a face" in photo and f'data-face-act="isface" data-mark="{face}"' in photo

    undone = client.post("undo", {"count": 1, "edit": answer["edit"]})
    assert undone.status == 200, undone.text
    assert _state(url) == before

    assert client.post("notface", {"faces": [face]}).status == 200
    back = client.post("isface", {"faces": [face]})
    assert back.status == 200 and back.json()["edit"]
    assert _marked(url) == set()


def test_not_a_face_is_clicked_in_the_browser_and_undone_from_the_toast(  # type: ignore[no-untyped-def]
        cli, page, faces_settings: Settings, tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    from playwright.sync_api import expect

    from tests.serve_client import serving
    from tests.support.browser import watch_errors

    url = str(faces_settings.database_url)
    _ok(cli, url, "cluster", "--threshold", "0.7")
    page.clock.install()  # the toast stays up however slow the machine
    page.clock.pause_at(datetime.now() + timedelta(seconds=1))
    errors = watch_errors(page)
    (person, face), = _rows(url, "SELECT person_id::text, min(id) FROM face_detections "
                            "WHERE person_id IS NOT NULL GROUP BY person_id "
                            "ORDER BY count(*) DESC LIMIT 1")
    before = _state(url)
    with serving(faces_settings, tmp_path / "cache") as (running, client):
        page.goto(running.url)
        page.goto(client.base + f"/person/{person}")
        button = page.locator(f'#faces [data-face-act="notface"][data-mark="{face}"]')
        with page.expect_event("load"):
            button.click()
        expect(page.locator("#toast")).to_contain_text("marked not a face")
        page.screenshot(path=str(tmp_path / "not-a-face.png"))
        assert _marked(url) == {face} and _person_of(url, face) is None
        expect(page.locator(f'#faces [data-face="{face}"]')).to_have_count(0)
        with page.expect_event("load"):
            page.locator("#toast-undo").click()
        expect(page.locator("#toast")).to_contain_text("Undid")
    assert _state(url) == before
    assert errors == []



def test_immich_push_assigns_no_person_to_a_not_a_face(  # type: ignore[no-untyped-def]
        db_url: str, server) -> None:  # noqa: F811 (the fixtures of test_immich_push)
    """The stand-in Immich and its staged, named library of tests/test_immich_push.py:
    the faces of one photo of a named person marked not a face are pushed to no one."""
    with psycopg.connect(db_url) as conn:
        asset, faces = conn.execute(
            "SELECT a.asset_id, array_agg(f.id) FROM immich_assets a "
            "JOIN images i ON i.sha256 = a.sha256 JOIN face_detections f ON f.image_id = i.id "
            "JOIN person_names n ON n.person_id = f.person_id "
            "GROUP BY a.asset_id ORDER BY a.asset_id LIMIT 1").fetchone()
    _ok(CliRunner(), db_url, "faces", "not-a-face", *map(str, faces))
    result = push(db_url, server)
    assert result.exit_code == 0, result.output
    assigned = named_in_immich(server)
    assert assigned, "the other photos' faces were pushed"
    assert not set(server.assets[asset].face_ids) & set(assigned)

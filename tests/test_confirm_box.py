"""Issue 64 part 3: a person's unconfirmed faces confirmed (placed by hand: no automatic
run moves them again) or rejected in one click each, and a face's box moved by hand
(embedded again there, keeping its person and decisions, undone exactly), through the
CLI, the library and ``rbv serve`` (a stale page refused with a 409)."""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import psycopg
import pytest

from rbv.config import Settings
from rbv.library import Library
from rbv.serve.app import ReviewServer
from tests.conftest import run_cli
from tests.serve_client import Client, two_largest_persons
from tests.test_serve_stale import shown

pytestmark = pytest.mark.slow  # a clustered copy of the indexed library per test


def _ok(cli: Any, url: str, *args: str) -> str:
    done = run_cli(cli, "-d", url, *args)
    assert done.exit_code == 0, done.output
    return " ".join(done.stdout.split())


def _faces(url: str, person: str) -> dict[int, str | None]:
    """Face → who placed it, of the person's faces."""
    with psycopg.connect(url) as conn:
        return {int(f): by for f, by in conn.execute(
            "SELECT id, assigned_by FROM face_detections WHERE person_id = %s", (person,))}


def _face(url: str, face: int) -> tuple[Any, ...]:
    """(box, drawn, person, placed by, embedding) of a face."""
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT ARRAY[f.x1, f.y1, f.x2, f.y2], f.drawn, f.person_id, f.assigned_by, "
            "e.embedding::text FROM face_detections f JOIN face_embeddings e "
            "ON e.face_id = f.id WHERE f.id = %s", (face,)).fetchone()
    assert row is not None
    return tuple(row)


def _clustered(cli: Any, settings: Settings) -> tuple[str, str]:
    url = str(settings.database_url)
    _ok(cli, url, "cluster", "--threshold", "0.7")
    person = two_largest_persons(url)[0]
    _ok(cli, url, "persons", "name", person, "Ada")
    return url, person


def test_confirm_lists_least_alike_first_confirms_and_clustering_keeps_them(
        cli: Any, faces_settings: Settings) -> None:
    url, ada = _clustered(cli, faces_settings)
    every = _faces(url, ada)
    assert len(every) >= 4 and all(by != "manual" for by in every.values())
    listing = json.loads(run_cli(cli, "-d", url, "persons", "confirm", "Ada",
                                 "--json").stdout)
    assert listing["left"] == len(every) and listing["confirmed"] == 0
    similarities = [f["similarity"] for f in listing["faces"]]
    assert similarities == sorted(similarities), "not least alike first"
    said = _ok(cli, url, "persons", "confirm", "Ada")
    assert f"{len(every)} unconfirmed faces of Ada (0 faces confirmed)" in said, said

    first, second = listing["faces"][-1]["face"], listing["faces"][-2]["face"]
    said = _ok(cli, url, "persons", "confirm", "Ada", str(first), str(second))
    assert "Confirmed 2 faces of Ada" in said and f"{len(every) - 2} faces of Ada left" \
        in said, said
    now = _faces(url, ada)
    assert now[first] == now[second] == "manual"
    assert sum(by == "manual" for by in now.values()) == 2

    # a face not the person's is refused, naming the command that puts it there
    with psycopg.connect(url) as conn:
        other = conn.execute("SELECT id FROM face_detections WHERE person_id IS DISTINCT "
                             "FROM %s ORDER BY id LIMIT 1", (ada,)).fetchone()[0]
    refused = run_cli(cli, "-d", url, "persons", "confirm", "Ada", str(other))
    assert refused.exit_code != 0
    assert f"face {other} is not in this person" in " ".join(refused.output.split())
    assert "rbv persons move" in refused.output

    # --all --dry-run changes nothing; --all confirms the rest; full clustering keeps them
    _ok(cli, url, "persons", "confirm", "Ada", "--all", "--dry-run")
    assert sum(by == "manual" for by in _faces(url, ada).values()) == 2
    said = _ok(cli, url, "persons", "confirm", "Ada", "--all")
    assert f"Confirmed {len(every) - 2} faces of Ada" in said and "0 faces of Ada left" in said
    _ok(cli, url, "cluster", "--full", "--threshold", "0.9")
    assert set(_faces(url, ada)) == set(every)
    assert "Every face of Ada is confirmed" in _ok(cli, url, "persons", "confirm", "Ada")

    # undo takes the last confirmation back exactly
    _ok(cli, url, "persons", "undo")
    assert sum(by == "manual" for by in _faces(url, ada).values()) == 2


def test_a_box_moved_is_embedded_again_keeps_its_person_and_undo_restores_it(
        cli: Any, faces_settings: Settings) -> None:
    url, ada = _clustered(cli, faces_settings)
    face = min(_faces(url, ada))
    box, drawn, person, by, embedding = _face(url, face)
    assert drawn is None
    x1, y1, x2, y2 = (round(v) for v in box)
    w = x2 - x1
    moved = (max(0, x1 - w // 8), y1, x2 - w // 8, y2)  # a little to the left
    with psycopg.connect(url) as conn:  # an age estimated at the old box
        conn.execute("INSERT INTO face_attributes (face_id, model, model_sha256, age, "
                     "age_spread, gender, gender_confidence) "
                     "VALUES (%s, 'm.onnx', 'ab', 30, 5, 'male', 0.9)", (face,))
    said = _ok(cli, url, "faces", "box", str(face), *map(str, moved))
    with psycopg.connect(url) as conn:  # dropped: `rbv enrich` estimates it again
        assert conn.execute("SELECT count(*) FROM face_attributes WHERE face_id = %s",
                            (face,)).fetchone()[0] == 0
    assert f"Moved the box of face {face}" in said and "it keeps its person" in said, said
    now = _face(url, face)
    assert [round(v) for v in now[0]] == list(moved)
    assert now[1] in ("detector", "box") and now[2:4] == (person, by)
    assert now[4] != embedding, "not embedded again"
    alike = float(np.dot(json.loads(now[4]), json.loads(embedding)))
    assert alike > 0.5, f"the face embedded at the new box is another face ({alike:.2f})"
    # said as moved, not as a face drawn by hand
    shown_faces = json.loads(_ok(cli, url, "persons", "show", ada, "--json", "--limit",
                                 "1000"))["faces"]
    assert [(f["box_moved"], f["drawn"]) for f in shown_faces if f["id"] == face] == [
        (True, now[1])]
    assert not any(f["box_moved"] for f in shown_faces if f["id"] != face)
    assert "box moved" in _ok(cli, url, "persons", "show", ada, "--limit", "1000")

    # every automatic run keeps the box the user set
    _ok(cli, url, "cluster", "--threshold", "0.7")
    _ok(cli, url, "cluster", "--full", "--threshold", "0.7")
    assert [round(v) for v in _face(url, face)[0]] == list(moved)

    # bad boxes are refused, changing nothing
    for bad in ((x1, y1, x1 + 4, y1 + 4), (x1, y1, 100_000, y2), (x2, y1, x1, y2)):
        refused = run_cli(cli, "-d", url, "faces", "box", str(face), *map(str, bad))
        assert refused.exit_code != 0 and "Traceback" not in refused.output, refused.output
    assert [round(v) for v in _face(url, face)[0]] == list(moved)

    # undo (after the clustering runs) restores the old box and embedding exactly
    history = json.loads(_ok(cli, url, "persons", "history", "--json"))
    assert any(e["command"] == "faces box" for e in history), history
    _ok(cli, url, "persons", "undo")
    assert _face(url, face) == (box, None, person, by, embedding)
    assert "box moved" not in _ok(cli, url, "persons", "show", ada, "--limit", "1000")


def test_library_confirms_and_moves_a_box(cli: Any, faces_settings: Settings) -> None:
    url, ada = _clustered(cli, faces_settings)
    lib = Library.open(url)
    person = lib.find("Ada")
    listing = lib.unconfirmed(person, limit=3)
    assert len(listing.faces) == 3 and listing.left == len(_faces(url, ada))
    done = lib.confirm(person, [listing.faces[0].id])
    assert (done.confirmed, done.left) == (1, listing.left - 1) and done.edit_id
    face = listing.faces[1].id
    x1, y1, x2, y2 = (round(v) for v in _face(url, face)[0])
    moved = lib.move_box(face, (x1 + 2, y1 + 2, x2 - 2, y2 - 2))
    assert moved.box == (x1 + 2, y1 + 2, x2 - 2, y2 - 2) and moved.edit_id


def _box_of(page: str, face: int) -> list[int]:
    """The box the photo page shows of ``face`` (its script sends it with a move)."""
    found = re.search(rf'data-shown-face="{face}"[^>]*data-shown-box="([^"]*)"', page)
    assert found is not None
    return [int(v) for v in found.group(1).split()]


def _shown_box(page: str, face: int, box: list[int] | None = None) -> dict[str, Any]:
    """What the photo page's script sends with a move of ``face``'s box."""
    sent = shown(page, [face])
    sent["faces"][0]["box"] = box or _box_of(page, face)
    return sent


def _confirm_buttons(page: str) -> list[int]:
    return [int(f) for f in re.findall(r'data-face-act="confirm" data-face="(\d+)"', page)]


def test_serve_confirm_screen_and_box_over_http_stale_pages_refused(
        cli: Any, served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    _, client = served
    url = str(faces_settings.database_url)
    ada = two_largest_persons(url)[0]
    _ok(cli, url, "persons", "name", ada, "Ada")
    every = _faces(url, ada)

    person_page = client.get(f"/person/{ada}").text
    assert f"{len(every)} faces to confirm" in person_page
    screen = client.get(f"/person/{ada}/confirm")
    assert screen.status == 200, screen.text
    text = " ".join(screen.text.split())
    assert f"{len(every)} faces left to confirm" in text and "Confirm all" in text
    shown_faces = _confirm_buttons(screen.text)
    assert set(shown_faces) == set(every) or len(shown_faces) == 24

    # one click confirms one face; the header counts one fewer
    one = shown_faces[0]
    reply = client.post("confirm", {"person": ada, "faces": [one],
                                    "shown": shown(screen.text, [one])})
    assert reply.status == 200 and reply.json()["edit"], reply.text
    assert _faces(url, ada)[one] == "manual"
    again = " ".join(client.get(f"/person/{ada}/confirm").text.split())
    assert f"{len(every) - 1} faces left to confirm" in again

    # the same screen's answer about a face a command took out meanwhile: a 409
    two = shown_faces[1]
    _ok(cli, url, "persons", "not-this-person", "Ada", str(two))
    stale = client.post("confirm", {"person": ada, "faces": [two],
                                    "shown": shown(screen.text, [two])})
    assert stale.status == 409 and "this page is out of date" in stale.json()["error"]
    # "confirm all shown" from a fresh screen
    fresh = client.get(f"/person/{ada}/confirm").text
    rest = _confirm_buttons(fresh)
    reply = client.post("confirm", {"person": ada, "faces": rest,
                                    "shown": shown(fresh, rest)})
    assert reply.status == 200, reply.text
    assert all(_faces(url, ada)[f] == "manual" for f in rest)

    # the photo page moves a box; a page that showed the old box is refused after
    face = min(_faces(url, ada))
    with psycopg.connect(url) as conn:
        image = conn.execute("SELECT image_id FROM face_detections WHERE id = %s",
                             (face,)).fetchone()[0]
    photo = client.get(f"/photo/{image}").text
    x1, y1, x2, y2 = _box_of(photo, face)
    assert f'id="box-{face}"' in photo
    target = [max(0, x1 - 3), max(0, y1 - 3), x2 - 3, y2 - 3]
    reply = client.post("box", {"face": face, "box": target,
                                "shown": _shown_box(photo, face)})
    assert reply.status == 200 and reply.json()["edit"], reply.text
    assert [round(v) for v in _face(url, face)[0]] == target
    row = re.search(rf'<tr data-shown-face="{face}".*?</tr>', client.get(f"/photo/{image}").text,
                    re.S)
    assert row is not None and "box moved by hand" in row.group(0), row
    assert "drawn by hand" not in row.group(0)
    assert _face(url, face)[2] is not None and str(_face(url, face)[2]) == ada
    stale = client.post("box", {"face": face, "box": [x1, y1, x2, y2],
                                 "shown": _shown_box(photo, face)})
    assert stale.status == 409 and "box" in stale.json()["error"], stale.text
    assert [round(v) for v in _face(url, face)[0]] == target

    # bad input: a 4xx with one line, never a 500
    for body in ({"face": face, "box": [1, 2, 3]}, {"face": face, "box": [-1, 0, 50, 50]},
                 {"face": face, "box": [50, 50, 10, 10]}, {"face": face, "box": "a"},
                 {"face": face, "box": [0, 0, 10**7, 50]}, {"face": "x", "box": target},
                 {"face": face, "box": [0, 0, 99_999, 99_999]},
                 {"face": 10**12, "box": target}):
        reply = client.post("box", body)
        assert 400 <= reply.status < 500, (body, reply.status, reply.text)
        assert "\n" not in reply.json()["error"]
    # the toast's Undo restores the old box
    reply = client.post("undo", {"count": 1})
    assert reply.status == 200, reply.text
    assert [round(v) for v in _face(url, face)[0]] == [x1, y1, x2, y2]

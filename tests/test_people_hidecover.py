"""Issue 51, items 3 and 5: the crowd of strangers hidden in one go (`rbv persons hide
--unnamed --max-faces N`, and the people page's ticks and form), and a person's cover
face (`rbv persons cover P F`, and "use as cover" on its page). Each is one logged edit
that one undo takes back exactly; a cover that leaves its person (a move, a clustering
run) falls back to the automatic face, and a pixel edit's carry gives it to the same
face in the new image data."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest
from PIL import Image, ImageEnhance

from rbv.config import Settings
from rbv.jobs.library.index import run_index
from rbv.serve.app import ReviewServer
from rbv.store import open_database
from rbv.store.queries.review_pages import PeopleFilter, people_page
from rbv.words import counted
from tests.conftest import FACES, MISC, PACK, SFACE_THRESHOLD, run_cli
from tests.serve_client import Client

pytestmark = pytest.mark.slow  # real faces, real clustering


def _ok(cli, url: str, *args: str) -> str:  # type: ignore[no-untyped-def]
    done = run_cli(cli, "-d", url, *args)
    assert done.exit_code == 0, (args, done.output)
    return str(done.stdout)


def _refused(cli, url: str, *args: str) -> str:  # type: ignore[no-untyped-def]
    done = run_cli(cli, "-d", url, *args)
    assert done.exit_code != 0, (args, done.output)
    lines = [line for line in done.output.splitlines() if line.strip()]
    assert len(lines) == 1, done.output  # one clear line
    return lines[0]


def _rows(url: str, query: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(query, args)]


def _visible(url: str) -> dict[str, tuple[str | None, int]]:
    """Visible persons with faces: id → (name, faces)."""
    return {str(p): (n, int(c)) for p, n, c in _rows(
        url, "SELECT p.id, n.name, count(f.id) FROM persons p "
        "LEFT JOIN person_names n ON n.person_id = p.id "
        "JOIN face_detections f ON f.person_id = p.id "
        "WHERE p.merged_into IS NULL AND NOT p.hidden GROUP BY p.id, n.name")}


def _persons_state(url: str) -> list[tuple[object, ...]]:
    return _rows(url, "SELECT id, hidden, cover_face_id, updated_at FROM persons ORDER BY id")


def _tile_cover(url: str, person: str) -> int | None:
    """The face the people page shows the person by."""
    with psycopg.connect(url) as conn:
        for which in (PeopleFilter.all, PeopleFilter.hidden):
            tiles, _ = people_page(conn, which=which, limit=10_000)
            for t in tiles:
                if str(t.id) == person:
                    return t.cover
    raise AssertionError(f"person {person} is not on the people page")


def _best_face(url: str, person: str) -> int:
    return int(_rows(url, "SELECT id FROM face_detections WHERE person_id = %s "
                     "ORDER BY det_score DESC, id LIMIT 1", person)[0][0])


def _faces_of(url: str, person: str) -> list[int]:
    return [int(r[0]) for r in _rows(
        url, "SELECT id FROM face_detections WHERE person_id = %s ORDER BY id", person)]


@pytest.fixture
def clustered(cli, faces_settings: Settings) -> str:  # type: ignore[no-untyped-def]
    url = str(faces_settings.database_url)
    _ok(cli, url, "cluster", "--full", "--method", "connected",
        "--threshold", str(SFACE_THRESHOLD))
    return url


# -- item 3: hiding strangers in bulk ----------------------------------------------------

def test_hide_unnamed_max_faces_is_one_edit_that_one_undo_takes_back(
        cli, clustered: str) -> None:
    url = clustered
    visible = _visible(url)
    small = sorted((n, p) for p, (name, n) in visible.items() if name is None and n <= 2)
    assert len(small) >= 4, visible  # strangers of the group photos
    named_small = small[0][1]  # a stranger the user named stays visible
    _ok(cli, url, "persons", "name", named_small, "Known Stranger")
    born_small = small[1][1]  # and one given a birthday: someone the user knows
    _ok(cli, url, "persons", "born", born_small, "2015-06-01")
    strangers = {p for _, p in small[2:]}
    faces = sum(visible[p][1] for p in strangers)
    before = _persons_state(url)
    edits = _rows(url, "SELECT count(*) FROM person_edits")[0][0]

    preview = json.loads(_ok(cli, url, "persons", "hide", "--unnamed", "--max-faces", "2",
                             "--dry-run", "--json"))
    assert {p["id"] for p in preview["persons"]} == strangers
    assert (preview["count"], preview["faces"], preview["dry_run"]) == (
        len(strangers), faces, True)
    said = _ok(cli, url, "persons", "hide", "--unnamed", "--max-faces", "2", "--dry-run")
    assert said.startswith(f"Would hide {len(strangers)} unnamed persons with at most 2 "
                           f"faces ({faces} faces): ")
    assert "Known Stranger" not in said and "Dry run: nothing was changed." in said
    assert _persons_state(url) == before  # the dry runs wrote nothing
    assert _rows(url, "SELECT count(*) FROM person_edits")[0][0] == edits

    done = _ok(cli, url, "persons", "hide", "--unnamed", "--max-faces", "2")
    assert done.startswith(f"Hid {len(strangers)} unnamed persons"), done
    now = _visible(url)
    assert strangers.isdisjoint(now) and named_small in now and born_small in now
    assert all(name is not None or n > 2 or p == born_small for p, (name, n) in now.items())
    history = json.loads(_ok(cli, url, "persons", "history", "--json"))
    assert [h["command"] for h in history][:3] == ["persons hide", "persons born",
                                                   "persons name"]

    _ok(cli, url, "persons", "undo")  # one undo shows them all again, exactly
    assert _persons_state(url) == before
    assert set(_visible(url)) == set(visible)

    # A full re-cluster keeps every hidden stranger hidden, with its faces.
    _ok(cli, url, "persons", "hide", "--unnamed", "--max-faces", "2")
    held = {p: _faces_of(url, p) for p in strangers}
    _ok(cli, url, "cluster", "--full")
    assert {p: _faces_of(url, p) for p in strangers} == held
    assert all(h for (h,) in _rows(url, "SELECT hidden FROM persons WHERE id = ANY(%s)",
                                   list(strangers)))


def test_hide_refuses_persons_with_the_filter_and_either_half_of_it(
        cli, clustered: str) -> None:
    url = clustered
    someone = next(iter(_visible(url)))
    before = _persons_state(url)
    line = _refused(cli, url, "persons", "hide", someone, "--unnamed", "--max-faces", "2")
    assert "not both" in line
    assert "go together" in _refused(cli, url, "persons", "hide", "--max-faces", "2")
    assert "go together" in _refused(cli, url, "persons", "hide", "--unnamed")
    assert "--unnamed --max-faces N" in _refused(cli, url, "persons", "hide")
    assert _persons_state(url) == before
    none = _ok(cli, url, "persons", "hide", "--unnamed", "--max-faces", "1", "--json")
    assert json.loads(none)["count"] >= 0


# -- item 5: a cover face -----------------------------------------------------------------

def _largest_two(url: str) -> tuple[str, str]:
    ranked = sorted(_visible(url).items(), key=lambda kv: -kv[1][1])
    return ranked[0][0], ranked[1][0]


def test_cover_is_one_of_the_persons_faces_and_undone_exactly(
        cli, clustered: str, tmp_path: Path) -> None:
    url = clustered
    person, other = _largest_two(url)
    best = _best_face(url, person)
    face = next(f for f in _faces_of(url, person) if f != best)
    foreign = _faces_of(url, other)[0]
    assert _tile_cover(url, person) == best  # the automatic face
    before = _persons_state(url)

    line = _refused(cli, url, "persons", "cover", person, str(foreign))
    assert f"face {foreign} is not a face of" in line and other[:8] in line  # where it is
    # issue 63: the remedies, as the commands that do them
    assert f"`rbv persons cover {other[:8]} {foreign}`" in line
    assert f"`rbv persons move {foreign} --to {person[:8]}`" in line
    assert "no face with id" in _refused(cli, url, "persons", "cover", person, "999999999")
    assert "--auto" in _refused(cli, url, "persons", "cover", person)
    assert "not both" in _refused(cli, url, "persons", "cover", person, str(face), "--auto")
    preview = json.loads(_ok(cli, url, "persons", "cover", person, str(face), "--dry-run",
                             "--json"))
    assert preview == {"person": person, "face": face, "was": None, "edit": None,
                       "dry_run": True}
    assert _persons_state(url) == before

    assert "is shown by face" in _ok(cli, url, "persons", "cover", person, str(face))
    assert _tile_cover(url, person) == face  # the people page
    shown = json.loads(_ok(cli, url, "persons", "show", person, "--json"))
    assert shown["cover"] == face and shown["faces"][0]["id"] == face  # and the sheet's
    assert "already" in _ok(cli, url, "persons", "cover", person, str(face))

    # rbv site's index shows the person by its cover
    _ok(cli, url, "site", str(tmp_path / "site"))
    index = (tmp_path / "site" / "index.html").read_text()
    row = next(r for r in index.split("<tr>") if person in r)
    assert f"thumbs/{face}_" in row, row

    _ok(cli, url, "persons", "undo")
    assert _persons_state(url) == before and _tile_cover(url, person) == best

    _ok(cli, url, "persons", "cover", person, str(face))
    assert "automatic face" in _ok(cli, url, "persons", "cover", person, "--auto")
    assert _tile_cover(url, person) == best
    _ok(cli, url, "persons", "undo")
    assert _tile_cover(url, person) == face


def test_a_cover_that_leaves_its_person_falls_back_and_nothing_breaks(
        cli, clustered: str) -> None:
    url = clustered
    person, other = _largest_two(url)
    best = _best_face(url, person)
    face = next(f for f in _faces_of(url, person) if f != best)
    _ok(cli, url, "persons", "cover", person, str(face))

    _ok(cli, url, "persons", "move", str(face), "--to", other)
    assert _tile_cover(url, person) == best  # the automatic face again
    assert _tile_cover(url, other) != face  # never another person's cover by chance
    assert json.loads(_ok(cli, url, "persons", "show", person, "--json"))["cover"] is None
    _ok(cli, url, "persons", "undo")  # the face is back: so is the choice
    assert _tile_cover(url, person) == face

    _ok(cli, url, "persons", "not-this-person", person, str(face))
    assert _tile_cover(url, person) == best
    _ok(cli, url, "persons", "undo")

    _ok(cli, url, "cluster", "--full")  # a clustering run keeps or drops it, never breaks
    cover = _tile_cover(url, person)
    assert cover == (face if face in _faces_of(url, person) else _best_face(url, person))


TWO = MISC / "fr_two_people.jpg"
THIRD = FACES / "Jerry_Seinfeld" / sorted(p.name for p in (FACES / "Jerry_Seinfeld").iterdir())[0]


def _faces_at(url: str, path: Path) -> list[int]:
    return [int(r[0]) for r in _rows(
        url, "SELECT f.id FROM face_detections f JOIN image_paths p ON p.image_id = f.image_id "
        "WHERE p.path = %s ORDER BY f.x1", str(path))]


@pytest.mark.parametrize("edit", ["retouch", "crop out"])
def test_a_pixel_edit_gives_the_cover_to_the_same_face(
        cli, settings: Settings, sface_analyzer, tmp_path: Path, edit: str) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    photo = lib / "two.jpg"
    shutil.copyfile(TWO, photo)
    shutil.copyfile(THIRD, lib / "third.jpg")
    run_index(open_database(settings), settings, [lib], analyzer=sface_analyzer)
    url = str(settings.database_url)
    _left, right = _faces_at(url, photo)
    (third,) = _faces_at(url, lib / "third.jpg")
    _ok(cli, url, "persons", "move", str(right), str(third))
    (person,) = {str(p) for (p,) in _rows(
        url, "SELECT person_id FROM face_detections WHERE id = ANY(%s)", [right, third])}
    _ok(cli, url, "persons", "name", person, "Ada")
    _ok(cli, url, "persons", "cover", person, str(right))
    with Image.open(photo) as im:
        if edit == "retouch":
            ImageEnhance.Brightness(im).enhance(1.3).save(photo, quality=92)
        else:  # only the left person is left
            im.crop((0, 0, 500, im.height)).save(photo, quality=92)

    out = _ok(cli, url, "index", str(lib), "--model-pack", str(PACK), "--device", "cpu")
    if edit == "retouch":
        new_right = _faces_at(url, photo)[1]
        assert new_right != right
        assert _tile_cover(url, person) == new_right  # the same face, in the new content
        assert _rows(url, "SELECT cover_face_id FROM persons WHERE id = %s",
                     person) == [(new_right,)]
    else:
        assert f"face {right}" in out and "the cover face of 'Ada'" in out, out
        assert _tile_cover(url, person) == third  # the automatic face, said not silent


# -- rbv serve: ticks, the form, "use as cover" ------------------------------------------

def _edits(url: str) -> int:
    return int(_rows(url, "SELECT count(*) FROM person_edits")[0][0])


def test_serve_hides_ticked_persons_and_strangers_as_one_edit_each(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    _, client = served
    url = str(faces_settings.database_url)
    before = _persons_state(url)
    visible = _visible(url)
    two = sorted(visible)[:2]
    page = client.get("/").text
    assert 'id="hide-unnamed"' in page and 'data-act="hide-these"' in page
    assert all(f'value="{p}"' in page for p in two)  # a tick per person

    for bad, status in (({"persons": []}, 409), ({"persons": "x"}, 409),
                        ({"persons": ["not-a-uuid"]}, 409)):
        assert client.post("hide_these", bad).status == status
    for bad in ({}, {"max_faces": "abc"}, {"max_faces": 0}, {"max_faces": -3},
                {"max_faces": 1.5}, {"max_faces": True}):
        reply = client.post("hide_unnamed", bad)
        assert reply.status == 400, (bad, reply.text)
    assert client.post("hide_these", {"persons": two}, token="wrong").status == 403
    assert _persons_state(url) == before

    edits = _edits(url)
    hid = client.post("hide_these", {"persons": two})
    assert hid.status == 200, hid.text
    assert _edits(url) == edits + 1 and set(two).isdisjoint(_visible(url))
    assert client.post("undo", {"edit": hid.json()["edit"], "count": 1}).status == 200
    assert _persons_state(url) == before

    strangers = {p for p, (name, n) in visible.items() if name is None and n <= 1}
    preview = client.post("hide_unnamed", {"max_faces": 1, "dry_run": True}).json()
    assert preview["count"] == len(strangers) and preview["edit"] is None
    assert _persons_state(url) == before
    done = client.post("hide_unnamed", {"max_faces": 1})
    assert done.status == 200, done.text
    assert strangers.isdisjoint(_visible(url)) and _edits(url) == edits + 3
    hidden_page = client.get("/?filter=hidden").text
    assert 'data-act="unhide-these"' in hidden_page
    assert client.post("undo", {"edit": done.json()["edit"], "count": 1}).status == 200
    assert _persons_state(url) == before


def test_serve_use_as_cover(served: tuple[ReviewServer, Client],
                            faces_settings: Settings) -> None:
    _, client = served
    url = str(faces_settings.database_url)
    person, other = _largest_two(url)
    best = _best_face(url, person)
    face = next(f for f in _faces_of(url, person) if f != best)
    page = client.get(f"/person/{person}").text
    assert f'data-cover="{face}"' in page  # "use as cover" on each face

    foreign = client.post("cover", {"person": person, "face": _faces_of(url, other)[0]})
    assert foreign.status == 409 and "is not a face of" in foreign.json()["error"]
    assert client.post("cover", {"person": person, "face": "x"}).status == 400
    chosen = client.post("cover", {"person": person, "face": face})
    assert chosen.status == 200, chosen.text
    assert f"/face/{face}.jpg" in client.get("/").text  # the people page's tile
    page = client.get(f"/person/{person}").text
    assert 'class="tag cover"' in page and f'data-cover="{face}"' not in page
    assert client.post("undo", {"edit": chosen.json()["edit"], "count": 1}).status == 200
    assert _tile_cover(url, person) == best


# -- rbv serve in a real Chromium: ticks, "Hide these", the form, Undo -----------------

@pytest.mark.usefixtures("chromium")
def test_a_person_ticks_strangers_and_hides_them_in_the_browser(  # type: ignore[no-untyped-def]
        served: tuple[ReviewServer, Client], faces_settings: Settings, page,
        tmp_path: Path) -> None:
    from datetime import datetime, timedelta

    from playwright.sync_api import expect

    from tests.support.browser import broken_images, wait_for_visible_images, watch_errors

    server, client = served
    url = str(faces_settings.database_url)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    page.clock.install()  # the toast and its Undo stay up on a loaded machine
    page.clock.pause_at(datetime.now() + timedelta(seconds=1))
    errors = watch_errors(page)
    before = _persons_state(url)

    def look(name: str) -> None:
        wait_for_visible_images(page)
        assert broken_images(page, visible=True) == [], name
        page.screenshot(path=shots / name)

    page.goto(server.url)
    tiles = page.locator("#people .tile")
    chosen = [tiles.nth(i).get_attribute("data-tile") for i in (1, 2, 4)]
    for i in (1, 2, 4):
        tiles.nth(i).locator(".tick input").check()
    expect(page.locator("#ticked")).to_have_text("3 ticked")
    look("hide-bulk.png")
    with page.expect_event("load"):  # one edit, and the page shows it
        page.locator('[data-act="hide-these"]').click()
    expect(page.locator("#toast")).to_contain_text("Hid 3 persons")
    assert set(chosen).isdisjoint(_visible(url))
    assert all(page.locator(f'[data-tile="{p}"]').count() == 0 for p in chosen)
    look("hide-bulk-done.png")
    with page.expect_event("load"):  # the toast's Undo shows all three again
        page.locator("#toast-undo").click()
    assert _persons_state(url) == before

    # "Hide every unnamed person with at most N faces": the page says how many, asks,
    # then hides them as one edit.
    strangers = {p for p, (name, n) in _visible(url).items() if name is None and n <= 1}
    asked: list[str] = []

    def answer(dialog) -> None:  # type: ignore[no-untyped-def]
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", answer)
    page.locator("#max-faces").fill("1")
    with page.expect_event("load"):
        page.locator("#hide-unnamed button").click()
    assert asked == [f"Hide {counted(len(strangers), 'unnamed person')} with at most 1 face "
                     f"({counted(len(strangers), 'face')})?"]
    expect(page.locator("#toast")).to_contain_text(f"Hid {len(strangers)} unnamed")
    assert strangers.isdisjoint(_visible(url))
    look("hide-unnamed-done.png")
    page.locator("#max-faces").fill("-2")  # refused by the field itself, or the server
    page.locator("#hide-unnamed button").click()
    assert len(asked) == 1
    with page.expect_event("load"):
        page.locator("#toast-undo").click()
    assert _persons_state(url) == before

    # "use as cover" on a person's page: the people page shows the person by that face
    person = chosen[0]
    page.goto(f"{client.base}/person/{person}")
    face = int(page.locator("#faces .face").nth(1).get_attribute("data-face") or 0)
    with page.expect_event("load"):
        page.locator(f'[data-cover="{face}"]').click()
    expect(page.locator("#toast")).to_contain_text("Cover chosen")
    expect(page.locator(f'#faces .face[data-face="{face}"] .tag.cover')).to_have_count(1)
    assert page.locator("#faces .face.selected").count() == 0  # the click selects nothing
    look("cover-chosen.png")
    page.goto(client.base + "/")
    tile = page.locator(f'[data-tile="{person}"] img')
    assert tile.get_attribute("src") == f"{server.access.base}/face/{face}.jpg"
    assert errors == []


def test_a_run_that_empties_a_person_leaves_its_cover_with_its_faces(
        cli, clustered: str) -> None:
    """A run that puts every face of a person with a cover into another person (the
    clustering's own merge) deletes the emptied person; its cover face stays the cover
    of the person holding it, unless that one has a cover of its own."""
    url = clustered
    ranked = sorted(_visible(url).items(), key=lambda kv: -kv[1][1])
    (keep, _), (gone, _), (own, _), (also_gone, _) = ranked[:4]
    face = _faces_of(url, gone)[-1]
    _ok(cli, url, "persons", "cover", gone, str(face))
    own_face = _faces_of(url, own)[-1]
    _ok(cli, url, "persons", "cover", own, str(own_face))
    _ok(cli, url, "persons", "cover", also_gone, str(_faces_of(url, also_gone)[-1]))
    with psycopg.connect(url) as conn:  # as a clustering run moves faces (no edit)
        conn.execute("UPDATE face_detections SET person_id = %s, assigned_by = 'cluster' "
                     "WHERE person_id = %s", (keep, gone))
        conn.execute("UPDATE face_detections SET person_id = %s, assigned_by = 'cluster' "
                     "WHERE person_id = %s", (own, also_gone))
    _ok(cli, url, "cluster")  # deletes the emptied persons
    assert _rows(url, "SELECT count(*) FROM persons WHERE id = ANY(%s)",
                 [gone, also_gone]) == [(0,)]
    assert _tile_cover(url, keep) == face  # the decision went with the faces
    assert _tile_cover(url, own) == own_face  # a cover of its own stays


# -- the decision machine's rules, in one scripted sequence -----------------------------

@pytest.fixture
def machine(pg_server, sface_analyzer, tmp_path_factory):  # type: ignore[no-untyped-def]
    from tests.support.decisions import DecisionMachine, Environment, make_template

    data_dir = tmp_path_factory.mktemp("decisions")
    DecisionMachine.env = Environment(pg_server.url, make_template(
        pg_server.url, sface_analyzer, data_dir), sface_analyzer, data_dir)
    state = DecisionMachine()
    try:
        yield state
    finally:
        state.teardown()
        del DecisionMachine.env


def test_the_decision_machine_hides_in_bulk_and_keeps_covers(machine) -> None:  # type: ignore[no-untyped-def]
    """hide_bulk and cover, undone, through a full and an incremental run, each step
    checked as the fuzz checks it (covers_shown, check_covers_stay)."""
    state = machine
    state.first_cluster()
    held = state.held_faces()
    person, face = held[len(held) // 2]
    others = [f for p, f in held if p != person]

    def checked() -> None:
        state.covers_shown()
        state.decisions_hold()

    state.cover(_Data([(person, face)]), person, face, "its own face")
    checked()
    assert state.state()["covers"] == [(uuid.UUID(person), face)]
    state.cover(_Data([]), person, others[0], "any face")  # refused: another's face
    assert state.state()["covers"] == [(uuid.UUID(person), face)]
    state.hide_bulk(2)
    checked()
    state.undo(2)  # both edits, exactly (the machine compares the states)
    assert state.state()["covers"] == []
    state.cover(_Data([(person, face)]), person, face, "its own face")
    state.hide_bulk(1)
    state.cluster_run(full=True)  # checks the cover stayed with its faces
    checked()
    state.cover(_Data([]), person, face, "auto")
    checked()
    state.cluster_run(full=False)
    checked()


class _Data:
    """Stands in for hypothesis' ``st.data()``: draws the given values in turn."""

    def __init__(self, values: list[object]) -> None:
        self.values = list(values)

    def draw(self, strategy: object, label: str = "") -> object:
        return self.values.pop(0)


def test_a_bulk_hide_says_how_many_and_where_to_see_them_in_short_lines(
        cli, clustered: str) -> None:  # type: ignore[no-untyped-def]
    """Issue 62 #11: `persons hide --unnamed --max-faces 2` hid 200 persons in one
    340-character line of ids. Its line now holds the count and the faces, and the next
    one where to see them, each within a terminal's 80 columns."""
    url = clustered
    strangers = {p: n for p, (name, n) in _visible(url).items() if name is None and n <= 2}
    assert len(strangers) >= 4
    said = _ok(cli, url, "persons", "hide", "--unnamed", "--max-faces", "2")
    assert said.splitlines() == [
        f"Hid {len(strangers)} unnamed persons with at most 2 faces "
        f"({sum(strangers.values())} faces).",
        "See them: `rbv persons list --hidden`; `rbv persons undo` shows them again."]
    assert all(len(line) <= 80 for line in said.splitlines())
    hidden = json.loads(_ok(cli, url, "persons", "list", "--hidden", "--limit", "0", "--json"))
    assert strangers.keys() <= {p["id"] for p in hidden if p["hidden"]}

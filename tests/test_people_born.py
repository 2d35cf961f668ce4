"""Issue 51 item 4: birthdays and ages. `rbv persons born P YYYY-MM-DD` is a logged edit
that `rbv persons undo` reverts exactly; the age at each photo (from its EXIF date) is in
`rbv persons show` and on serve's person and photo pages; `rbv photos --person P --age
3-5` finds the photos of an age; a birthday stays with its person through every
clustering run, unnamed persons included."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from PIL import Image

from rbv.config import Settings
from rbv.errors import ConfigError
from rbv.jobs.persons.birthdays import age_words, parse_ages, parse_born
from rbv.serve.app import ReviewServer
from rbv.words import counted
from tests.conftest import FACES, PACK, SFACE_THRESHOLD, import_folders, run_cli
from tests.serve_client import Client
from tests.support.decisions import DecisionMachine, Environment


def _ok(cli: Any, url: str, *args: str) -> str:
    done = run_cli(cli, "-d", url, *args)
    assert done.exit_code == 0, (args, done.output)
    return str(done.stdout)


def _refused(cli: Any, url: str, *args: str) -> str:
    """The one line an error is, the exit code 1."""
    done = run_cli(cli, "-d", url, *args)
    assert done.exit_code == 1, (args, done.output)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), done.stderr
    return lines[0]


def _rows(url: str, query: str, *args: object) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return [tuple(r) for r in conn.execute(query, args)]


def _person_row(url: str, person: str) -> tuple[Any, ...]:
    return _rows(url, "SELECT * FROM persons WHERE id = %s", person)[0]


def _date_photos(url: str, person: str, days: list[str | None]) -> list[int]:
    """Give the photos of the person's faces these dates (None: no date), photos with no
    other face first, and every other photo of the person no date; returns the faces."""
    faces = [int(f) for (f,) in _rows(
        url, "SELECT f.id FROM face_detections f WHERE f.person_id = %s ORDER BY (SELECT "
        "count(*) FROM face_detections g WHERE g.image_id = f.image_id), f.id", person)]
    assert len(faces) >= len(days)
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE images SET taken_at = NULL WHERE id IN (SELECT image_id FROM "
                     "face_detections WHERE person_id = %s)", (person,))
        for face, day in zip(faces, days, strict=False):
            conn.execute("UPDATE images SET taken_at = %s WHERE id = (SELECT image_id FROM "
                         "face_detections WHERE id = %s)", (day, face))
    return faces[:len(days)]


def test_ages_are_whole_years_from_two_and_months_before() -> None:
    born = date(2019, 5, 31)
    said = {day: age_words(born, datetime.fromisoformat(day)) for day in (
        "2019-05-31T08:00", "2019-06-30T23:59", "2019-07-01T00:00", "2020-05-30T12:00",
        "2021-05-30T12:00", "2021-05-31T00:00", "2024-05-30T10:00", "2024-05-31T10:00",
        "2019-05-30T23:59")}
    assert said == {
        "2019-05-31T08:00": "0 months", "2019-06-30T23:59": "0 months",  # no 31 June
        "2019-07-01T00:00": "1 month", "2020-05-30T12:00": "11 months",
        "2021-05-30T12:00": "23 months", "2021-05-31T00:00": "2 years",
        "2024-05-30T10:00": "4 years", "2024-05-31T10:00": "5 years",
        "2019-05-30T23:59": "before birth"}
    assert age_words(born, None) == "no date"
    assert age_words(None, datetime(2020, 1, 1)) == ""
    leap = date(2020, 2, 29)  # one is a year old on 1 March where there is no 29 February
    assert [age_words(leap, date(2022, 2, d)) for d in (28,)] == ["23 months"]
    assert age_words(leap, date(2022, 3, 1)) == "2 years"

    assert parse_born(" 2019-05-02 ") == date(2019, 5, 2)
    for text, words in (("2019", "not a whole date"), ("2019-05", "not a whole date"),
                        ("2019-02-30", "not a date"), ("May 2019", "not a date"),
                        ((date.today() + timedelta(1)).isoformat(), "in the future")):
        with pytest.raises(ConfigError, match=words):
            parse_born(text)
    assert [parse_ages(t) for t in ("3", "3-5", "4-", "-2", " 0 - 1 ")] == [
        parse_ages("3-3"), parse_ages("3 - 5"), parse_ages("4 -"), parse_ages("0-2"),
        parse_ages("0-1")]
    assert (parse_ages("4-").first, parse_ages("4-").last) == (4, None)
    for text in ("5-3", "x", "", "-", "3-5-7"):
        with pytest.raises(ConfigError):
            parse_ages(text)


def test_born_is_a_logged_edit_that_undo_reverts_exactly(
        cli: Any, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    _ok(cli, url, "cluster", "--full", "--method", "connected",
        "--threshold", str(SFACE_THRESHOLD))
    person = json.loads(_ok(cli, url, "persons", "list", "--json"))[0]["id"]
    _ok(cli, url, "persons", "name", person, "Ada Lovelace")
    untouched = _person_row(url, person)

    preview = _ok(cli, url, "persons", "born", "Ada", "2019-05-02", "--dry-run")
    assert preview.strip() == ("Would set the birthday of Ada Lovelace to 2019-05-02. "
                               "Dry run: nothing was changed.")
    assert _person_row(url, person) == untouched

    # Bad dates: one line each, nothing changed, nothing logged.
    edits = _rows(url, "SELECT count(*) FROM person_edits")
    future = (date.today() + timedelta(days=2)).isoformat()
    for bad, words in (("2019", "not a whole date: give the day, YYYY-MM-DD"),
                       ("2019-02-30", "is not a date (day is out of range for month)"),
                       ("02/05/2019", "is not a date; give the birthday as YYYY-MM-DD"),
                       (future, "is in the future")):
        assert words in _refused(cli, url, "persons", "born", "Ada", bad)
    assert "or --clear" in _refused(cli, url, "persons", "born", "Ada")
    assert "not both" in _refused(cli, url, "persons", "born", "Ada", "2019-05-02", "--clear")
    assert _person_row(url, person) == untouched
    assert _rows(url, "SELECT count(*) FROM person_edits") == edits

    said = _ok(cli, url, "persons", "born", "Ada", "2019-05-02")
    assert said.strip() == "Ada Lovelace: born 2019-05-02. `rbv persons undo` reverts it."
    assert _rows(url, "SELECT born FROM persons WHERE id = %s", person) == [(date(2019, 5, 2),)]
    born_row = _person_row(url, person)
    again = json.loads(_ok(cli, url, "persons", "born", "Ada", "2019-05-02", "--json"))
    assert again == {"person": person, "born": "2019-05-02", "was": "2019-05-02",
                     "changed": False, "edit": None, "dry_run": False}

    cleared = json.loads(_ok(cli, url, "persons", "born", "Ada", "--clear", "--json"))
    assert cleared["born"] is None and cleared["was"] == "2019-05-02"
    assert isinstance(cleared["edit"], int)
    history = json.loads(_ok(cli, url, "persons", "history", "--json"))
    assert [h["command"] for h in history[:2]] == ["persons born", "persons born"]
    assert "cleared (was 2019-05-02)" in history[0]["summary"]

    _ok(cli, url, "persons", "undo")  # the clearing: the birthday is back, row and all
    assert _person_row(url, person) == born_row
    _ok(cli, url, "persons", "undo")  # the birthday: the row as it was before it
    assert _person_row(url, person) == untouched


def test_persons_show_says_the_age_at_each_photo_from_its_exif_date(
        cli: Any, settings: Settings, tmp_path: Path) -> None:
    """Photos dated by their own EXIF DateTimeOriginal, indexed as users index them."""
    url = str(settings.database_url)
    stamps = ["2019:05:01 09:00:00", "2019:05:02 09:00:00", "2020:11:20 18:30:00",
              "2024:05:02 00:00:00", None]
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, (photo, stamp) in enumerate(zip(sorted((FACES / "Matt_Damon").iterdir()), stamps,
                                           strict=False)):
        target = folder / f"{i}.jpg"
        with Image.open(photo) as im:
            exif = im.getexif()
            if stamp:
                exif.get_ifd(0x8769)[0x9003] = stamp  # DateTimeOriginal
            else:
                exif.get_ifd(0x8769).pop(0x9003, None)
            im.convert("RGB").save(target, exif=exif)
    _ok(cli, url, "index", str(folder), "--model-pack", str(PACK), "--device", "cpu")
    first: dict[str, int] = {}
    for face, path in _rows(url, "SELECT f.id, p.path FROM face_detections f JOIN "
                            "image_paths p ON p.image_id = f.image_id ORDER BY f.det_score DESC"):
        first.setdefault(Path(path).name, int(face))
    assert len(first) == len(stamps), first
    chosen = [first[f"{i}.jpg"] for i in range(len(stamps))]
    _ok(cli, url, "persons", "move", *map(str, chosen))
    person = str(_rows(url, "SELECT person_id FROM face_detections WHERE id = %s",
                       chosen[0])[0][0])

    plain = json.loads(_ok(cli, url, "persons", "show", person, "--json"))
    assert plain["born"] is None and {f["age"] for f in plain["faces"]} == {None}
    _ok(cli, url, "persons", "born", person, "2019-05-02")
    shown = json.loads(_ok(cli, url, "persons", "show", person, "--json"))
    assert shown["born"] == "2019-05-02"
    ages = {f["path"].rsplit("/", 1)[1]: (f["taken_at"], f["age"], f["age_months"])
            for f in shown["faces"]}
    assert ages == {"0.jpg": ("2019-05-01T09:00:00", "before birth", None),
                    "1.jpg": ("2019-05-02T09:00:00", "0 months", 0),
                    "2.jpg": ("2020-11-20T18:30:00", "18 months", 18),
                    "3.jpg": ("2024-05-02T00:00:00", "5 years", 60),
                    "4.jpg": (None, "no date", None)}
    table = run_cli(cli, "-d", url, "persons", "show", person, env={"COLUMNS": "160"})
    assert table.exit_code == 0, table.output
    assert "born 2019-05-02" in table.stdout and " age " in table.stdout
    for words in ("before birth", "0 months", "18 months", "5 years", "no date"):
        assert words in table.stdout


def test_photos_of_a_person_at_an_age(cli: Any, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    import_folders(cli, faces_settings)
    refused = _refused(cli, url, "photos", "-p", "Barack_Obama", "--age", "3-5")
    person = _rows(url, "SELECT person_id FROM person_names WHERE name = 'Barack_Obama'")[0][0]
    assert refused == ("Error: Barack_Obama has no birthday, so no age: give it first: "
                       f"`rbv persons born {str(person)[:8]} YYYY-MM-DD`")
    _ok(cli, url, "persons", "born", "Barack_Obama", "2010-03-15")
    days = ["2013-03-14", "2013-03-15", "2014-08-01", "2016-03-14 23:00", "2016-03-15", None]
    faces = _date_photos(url, str(person), days)
    path = dict(_rows(url, "SELECT f.id, p.path FROM face_detections f JOIN image_paths p "
                      "ON p.image_id = f.image_id WHERE f.id = ANY(%s)", faces))
    undated = _rows(url, "SELECT count(DISTINCT f.image_id) FROM face_detections f JOIN "
                    "images i ON i.id = f.image_id WHERE f.person_id = %s AND i.taken_at "
                    "IS NULL", person)[0][0]
    assert undated >= 1

    def found(*args: str) -> list[str]:
        out = json.loads(_ok(cli, url, "photos", "-p", "Barack_Obama", *args, "--json"))
        assert out["born"] == "2010-03-15" and out["undated"] == undated
        return [(p["paths"][0], p["age"]) for p in out["photos"]]

    assert found("--age", "3-5") == [(path[faces[1]], "3 years"), (path[faces[2]], "4 years"),
                                     (path[faces[3]], "5 years")]
    assert found("--age", "3") == [(path[faces[1]], "3 years")]
    assert found("--age", "5-") == [(path[faces[3]], "5 years"), (path[faces[4]], "6 years")]
    assert found("--age", "-2") == [(path[faces[0]], "2 years")]
    assert found("--age", "3-5", "--from", "2014") == [(path[faces[2]], "4 years"),
                                                       (path[faces[3]], "5 years")]

    text = _ok(cli, url, "photos", "-p", "Barack_Obama", "--age", "4")
    assert text.splitlines() == [
        f"2014-08-01  4 years  {path[faces[2]]}",
        "1 photo with Barack_Obama aged 4.",
        f"{counted(undated, 'photo')} with no date left out (no age to tell)."]
    assert "is not an age range" in _refused(cli, url, "photos", "-p", "Barack_Obama",
                                             "--age", "five")


def test_a_birthday_stays_with_an_unnamed_person_through_clustering(
        cli: Any, faces_settings: Settings) -> None:
    """An unnamed person whose cluster another person takes over (here: its faces split
    off by SQL, so `cluster --full` puts them back together) kept no face and was
    deleted, its birthday with it. A birthday is a decision like a name: the person
    keeps the faces it had, and is never deleted for being left without faces."""
    url = str(faces_settings.database_url)
    cluster = ("cluster", "--full", "--method", "connected", "--threshold", str(SFACE_THRESHOLD))
    _ok(cli, url, *cluster)
    big = json.loads(_ok(cli, url, "persons", "list", "--json"))[0]
    faces = [int(f) for (f,) in _rows(url, "SELECT id FROM face_detections WHERE "
                                      "person_id = %s ORDER BY id", big["id"])]
    assert len(faces) >= 6 and big["name"] is None
    split_off = faces[:len(faces) // 3]
    with psycopg.connect(url) as conn:  # a smaller person of some of its faces
        small = conn.execute("INSERT INTO persons (pack_id, source) SELECT pack_id, "
                             "'cluster' FROM persons WHERE id = %s RETURNING id",
                             (big["id"],)).fetchone()[0]
        conn.execute("UPDATE face_detections SET person_id = %s WHERE id = ANY(%s)",
                     (small, split_off))
    _ok(cli, url, "persons", "born", str(small), "2015-06-01")

    for run in (cluster, ("cluster",), ("cluster", "--full"),
                ("cluster", "--full", "--method", "agglomerative")):
        _ok(cli, url, *run)
        assert _rows(url, "SELECT born FROM persons WHERE id = %s", small) == [
            (date(2015, 6, 1),)], run
        held = {int(f) for (f,) in _rows(url, "SELECT id FROM face_detections WHERE "
                                         "person_id = %s", small)}
        assert len(held & set(split_off)) > len(split_off) / 2, run

    # Left without faces by hand, it stays (listed, with its birthday) through a run.
    _ok(cli, url, "persons", "move", *map(str, sorted(held)), "--to", big["id"])
    _ok(cli, url, "cluster")
    listed = {p["id"]: p for p in json.loads(_ok(cli, url, "persons", "list", "--json",
                                                 "--limit", "0"))}
    assert listed[str(small)]["faces"] == 0
    assert _rows(url, "SELECT born FROM persons WHERE id = %s", small) == [(date(2015, 6, 1),)]


def test_serve_sets_the_birthday_and_shows_ages(
        served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    _, client = served
    url = str(faces_settings.database_url)
    person = str(_rows(url, "SELECT person_id FROM face_detections WHERE person_id IS NOT "
                       "NULL GROUP BY person_id ORDER BY count(*) DESC, person_id "
                       "LIMIT 1")[0][0])
    faces = _date_photos(url, person, ["2020-11-20", None])
    page = client.get(f"/person/{person}").text
    assert 'data-act="born"' in page and "Set birthday" in page

    for bad, words in (("2019", "not a whole date"), ("2019-13-01", "not a date"),
                       ((date.today() + timedelta(1)).isoformat(), "in the future")):
        refused = client.post("born", {"person": person, "born": bad})
        assert refused.status == 409 and words in refused.json()["error"], refused.text
    assert client.post("born", {"person": person}).status == 409
    assert _rows(url, "SELECT born FROM persons WHERE id = %s", person) == [(None,)]

    done = client.post("born", {"person": person, "born": "2019-05-02"})
    assert done.status == 200 and done.json()["message"] == "Born 2019-05-02", done.text
    assert _rows(url, "SELECT born FROM persons WHERE id = %s", person) == [(date(2019, 5, 2),)]
    page = client.get(f"/person/{person}?limit=1000").text
    assert "born 2019-05-02" in page and "Clear birthday" in page
    assert '<span class="age">18 months</span>' in page
    assert '<span class="age">no date</span>' in page
    image = _rows(url, "SELECT image_id FROM face_detections WHERE id = %s", faces[0])[0][0]
    photo = client.get(f"/photo/{image}").text
    assert "taken 2020-11-20 00:00" in photo and '<span class="age">18 months</span>' in photo

    undone = client.post("undo", {"edit": done.json()["edit"], "count": 1})
    assert undone.status == 200, undone.text
    assert _rows(url, "SELECT born FROM persons WHERE id = %s", person) == [(None,)]
    assert "age" not in client.get(f"/photo/{image}").text.split("<h2>Faces</h2>")[1] \
        .replace("image", "")
    client.post("born", {"person": person, "born": "2019-05-02"})
    cleared = client.post("born", {"person": person, "born": ""})
    assert cleared.status == 200 and cleared.json()["message"] == "Birthday cleared"
    assert _rows(url, "SELECT born FROM persons WHERE id = %s", person) == [(None,)]


@pytest.mark.slow  # a real headless Chromium
def test_the_birthday_is_set_and_cleared_in_the_browser(  # type: ignore[no-untyped-def]
        cli, page, faces_settings: Settings, tmp_path: Path) -> None:
    """The person page's birthday field (YYYY-MM-DD, folded under "Merge in, hide,
    birthday…") and buttons, clicked in Chromium: the birthday lands
    in the database, each face tile shows its age, the toast's Undo takes it back."""
    from playwright.sync_api import expect

    from tests.serve_client import serving
    from tests.support.browser import watch_errors

    url = str(faces_settings.database_url)
    _ok(cli, url, "cluster", "--threshold", "0.7")
    person = str(_rows(url, "SELECT person_id FROM face_detections WHERE person_id IS NOT "
                       "NULL GROUP BY person_id ORDER BY count(*) DESC, person_id "
                       "LIMIT 1")[0][0])
    _date_photos(url, person, ["2020-11-20"])
    page.clock.install()  # the toast and its Undo stay up however slow the machine is
    page.clock.pause_at(datetime.now() + timedelta(seconds=1))
    errors = watch_errors(page)
    with serving(faces_settings, tmp_path / "cache") as (server, client):
        page.goto(server.url)
        page.goto(f"{client.base}/person/{person}?limit=1000")
        page.locator("details.more summary").click()  # the birthday is folded away
        page.locator("#born").fill("2019-05-02")
        with page.expect_event("load"):
            page.locator('[data-act="born"]').click()
        expect(page.locator("#toast")).to_contain_text("Born 2019-05-02")
        assert _rows(url, "SELECT born FROM persons WHERE id = %s", person) == [
            (date(2019, 5, 2),)]
        expect(page.locator(".face .age", has_text="18 months")).to_have_count(1)
        expect(page.locator(".face .age", has_text="no date")).not_to_have_count(0)
        page.screenshot(path=tmp_path / "person-born.png")
        with page.expect_event("load"):
            page.locator("#toast-undo").click()
        assert _rows(url, "SELECT born FROM persons WHERE id = %s", person) == [(None,)]
        expect(page.locator(".face .age")).to_have_count(0)
        page.locator("#born").fill("2018-01-01")
        with page.expect_event("load"):
            page.locator('[data-act="born"]').click()
        with page.expect_event("load"):
            page.locator('[data-act="unborn"]').click()
        expect(page.locator("#toast")).to_contain_text("Birthday cleared")
        assert _rows(url, "SELECT born FROM persons WHERE id = %s", person) == [(None,)]
    assert errors == []


def test_the_decision_machine_keeps_birthdays_through_automatic_runs(
        request: pytest.FixtureRequest) -> None:
    """The machine's `born` rule as a fixed sequence: birthdays on unnamed persons, one
    refused (in the future), undone exactly, then every kind of automatic run (a full
    run, more photos past the growth trigger, the growth re-cluster) with the machine's
    checks after each: the birthdays stay, on persons that keep most of their faces."""
    env: Environment = request.getfixturevalue("decisions_env")
    DecisionMachine.env = env
    state = DecisionMachine()
    try:
        state.first_cluster()
        persons = state.live_persons()
        state.born(persons[0], date(2015, 6, 1))
        state.born(persons[1], date.today() + timedelta(days=1))  # refused, nothing changed
        assert state.state()["born"] == [(uuid.UUID(persons[0]), date(2015, 6, 1))]
        state.born(persons[2], date(1980, 2, 29))
        state.undo(1)  # exactly as before
        state.born(persons[0], None)
        state.undo(2)
        assert state.state()["born"] == []
        for person, day in zip(persons[:4], (date(2015, 6, 1), date(2012, 1, 31),
                                             date(1990, 12, 1), date(2001, 7, 4)),
                               strict=True):
            state.born(person, day)
        state.cluster_full()
        state.index_more()
        state.cluster()  # past the growth trigger: every face re-clustered
        state.decisions_hold()
        assert len(state.state()["born"]) == 4
    finally:
        state.teardown()
        del DecisionMachine.env

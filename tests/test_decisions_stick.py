"""Issue 28: a name stays on the faces it was given to. One hand move and a full
re-cluster must not carry a cluster (and a name) to the wrong person; a half SQL reset is
reported, never silently kept. Real faces, real PostgreSQL, through the CLI runner."""

from __future__ import annotations

import json
import uuid

import psycopg
import pytest

from rbv.config import Settings
from tests.conftest import run_cli


def _ok(cli, *args: str):  # type: ignore[no-untyped-def]
    done = run_cli(cli, *args)
    assert done.exit_code == 0, done.output
    return done


def _faces(settings: Settings) -> dict[int, str | None]:
    with psycopg.connect(str(settings.database_url)) as conn:
        return {int(f): (str(p) if p else None) for f, p in conn.execute(
            "SELECT id, person_id FROM face_detections")}


def _members(faces: dict[int, str | None], person: str) -> set[int]:
    return {f for f, p in faces.items() if p == person}


def _two_named(cli, s: Settings) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    url = str(s.database_url)
    _ok(cli, "-d", url, "cluster", "--full")
    persons = json.loads(_ok(cli, "-d", url, "persons", "list", "--json").stdout)
    a, b = persons[0]["id"], persons[1]["id"]
    _ok(cli, "-d", url, "persons", "name", a, "Ben")
    _ok(cli, "-d", url, "persons", "name", b, "Mindy")
    return a, b


@pytest.mark.parametrize("to_new_person", [False, True])
def test_one_moved_face_does_not_carry_its_cluster_or_a_name(
        cli, faces_settings: Settings, to_new_person: bool) -> None:
    """Reproduction 1: move one of Ben's faces to Mindy (or to a new person), then
    `cluster --full`: Mindy used to take all of Ben's faces, and Ben was left empty."""
    s = faces_settings
    url = str(s.database_url)
    ben, mindy = _two_named(cli, s)
    before = _faces(s)
    moved = min(_members(before, ben))
    target = [] if to_new_person else ["--to", mindy]
    _ok(cli, "-d", url, "persons", "move", str(moved), *target)
    placed = _faces(s)[moved]
    assert placed is not None and placed != ben

    report = json.loads(_ok(cli, "-d", url, "cluster", "--full", "--json").stdout)

    after = _faces(s)
    assert after[moved] == placed  # the hand-placed face stays, and only it
    assert _members(after, ben) == _members(before, ben) - {moved}
    expected = {moved} | (set() if to_new_person else _members(before, mindy))
    assert _members(after, placed) == expected
    assert report["reassigned"] == 0 and report["named"] == []
    again = json.loads(_ok(cli, "-d", url, "cluster", "--full", "--json").stdout)
    assert _faces(s) == after and again["reassigned"] == 0


def test_a_full_run_counts_every_face_and_names_what_it_did_to_named_persons(
        cli, faces_settings: Settings) -> None:
    """Reproduction 2's count ("Assigned 629 of 648 faces" while none was left out) and
    requirement 2: a run says what it did to each named person."""
    s = faces_settings
    url = str(s.database_url)
    ben, _mindy = _two_named(cli, s)
    faces = _faces(s)
    moved = sorted(_members(faces, ben))[:2]
    with psycopg.connect(url) as conn:  # as another program (or SQL) would
        conn.execute("UPDATE face_detections SET person_id = NULL WHERE id = ANY(%s)",
                     (moved,))
    _ok(cli, "-d", url, "persons", "move", str(sorted(_members(faces, ben))[2]))
    report = json.loads(_ok(cli, "-d", url, "cluster", "--full", "--json").stdout)
    assert report["faces"] == len(faces) and report["kept_by_hand"] == 1
    assert None not in _faces(s).values()  # every face was assigned, as said
    assert [(c["name"], c["before"], c["after"], c["gained"]) for c in report["named"]] == [
        ("Ben", len(_members(faces, ben)) - 3, len(_members(faces, ben)) - 1, 2)]
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE face_detections SET person_id = NULL WHERE id = %s", (moved[0],))
    done = _ok(cli, "-d", url, "cluster", "--full")
    assert f"Assigned {len(faces):,} faces, 1 of them kept where they were placed by hand" \
        in " ".join(done.stdout.split())
    assert f"Ben: {len(_members(faces, ben)) - 2} → {len(_members(faces, ben)) - 1} faces " \
        "(1 joined)" in done.stdout


def test_a_half_reset_is_reported_with_the_command_that_finishes_it(
        cli, faces_settings: Settings) -> None:
    """Reproduction 4: the README reset's first line alone left the named persons empty,
    named, for good, and nothing said so."""
    s = faces_settings
    url = str(s.database_url)
    ben, mindy = _two_named(cli, s)
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE face_detections SET person_id = NULL")
    done = _ok(cli, "-d", url, "cluster")
    assert "2 named persons hold no faces: " in done.stdout
    assert "'Ben'" in done.stdout and "'Mindy'" in done.stdout
    command = done.stdout.split("to delete:")[1].strip()
    assert command.startswith("rbv psql -c ")
    report = json.loads(_ok(cli, "-d", url, "cluster", "--json").stdout)
    assert {e["person"] for e in report["empty_named"]} == {ben, mindy}
    sql = command.split("-c ", 1)[1].strip('"')
    with psycopg.connect(url) as conn:
        conn.execute(sql)
        left = conn.execute("SELECT count(*) FROM persons WHERE id = ANY(%s)",
                            ([uuid.UUID(ben), uuid.UUID(mindy)],)).fetchone()
    assert left == (0,)
    assert json.loads(_ok(cli, "-d", url, "cluster", "--json").stdout)["empty_named"] == []


def test_a_run_that_splits_a_named_person_says_so(cli, faces_settings: Settings) -> None:
    """Requirement 2: "Ben: 27 → 25 faces (2 to person 3f2a9c12)", in the output and in
    --json, whenever a run moves a named person's faces."""
    s = faces_settings
    url = str(s.database_url)
    ben, _mindy = _two_named(cli, s)
    before = _members(_faces(s), ben)
    done = _ok(cli, "-d", url, "cluster", "--full", "--method", "connected", "--threshold",
               "0.75")
    after = _faces(s)
    kept = _members(after, ben)
    assert kept < before  # a much stricter setting splits Ben
    line = next(x for x in done.stdout.splitlines() if x.startswith("Ben: "))
    assert line.startswith(f"Ben: {len(before)} → {len(kept)} faces (")
    lost = sum(1 for f in before if after[f] != ben)
    assert sum(int(part.split(" to ")[0]) for part in
               line.split("(", 1)[1].rstrip(")").split(", ")) == lost

"""The persons edit log: `rbv persons history` and `rbv persons undo` on real faces."""

from __future__ import annotations

import json

from rbv.config import Settings
from rbv.store import open_database
from tests.conftest import SFACE_THRESHOLD, run_cli

EDITED_TABLES = {
    "persons": "id",
    "person_names": "person_id",
    "face_detections": "id",
    "person_rejections": "face_id, person_id",
    "must_links": "face_a, face_b",
    "cannot_links": "face_a, face_b",
}


def _dump(settings: Settings) -> dict[str, list[str]]:
    """Every row of every table persons edits touch, as PostgreSQL prints it."""
    with open_database(settings).connect() as conn:
        return {t: [r[0] for r in conn.execute(f"SELECT t::text FROM {t} t ORDER BY {key}")]
                for t, key in EDITED_TABLES.items()}


def _ok(cli, *args: str):  # type: ignore[no-untyped-def]
    done = run_cli(cli, *args)
    assert done.exit_code == 0, done.output
    return done


def _faces_in_other_photos(settings: Settings, person: str, count: int,
                           avoid: set[int] = frozenset()) -> list[int]:  # type: ignore[assignment]
    """``count`` faces of the person, each of a different photo (and of none in ``avoid``)."""
    with open_database(settings).connect() as conn:
        rows = conn.execute("SELECT DISTINCT ON (image_id) id FROM face_detections "
                            "WHERE person_id = %s AND NOT image_id = ANY(%s::bigint[]) "
                            "ORDER BY image_id, id", (person, list(avoid))).fetchall()
    assert len(rows) >= count
    return [int(r[0]) for r in rows[:count]]


def test_every_edit_is_logged_and_undo_restores_the_rows_byte_for_byte(
        cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    _ok(cli, "-d", url, "cluster", "--method", "connected", "--threshold", str(SFACE_THRESHOLD))
    persons = json.loads(_ok(cli, "-d", url, "persons", "list", "--json", "--limit", "0").stdout)
    assert len(persons) >= 6
    p = [r["id"] for r in persons]
    before = _dump(faces_settings)

    same = [_faces_in_other_photos(faces_settings, p[3], 1)[0],
            _faces_in_other_photos(faces_settings, p[4], 1)[0]]
    different = _faces_in_other_photos(faces_settings, p[5], 2)
    edits = [
        ("persons", "name", p[0], "Ada"),
        ("persons", "rename", "Ada", "Ada Lovelace"),
        ("persons", "merge", p[0], p[1]),
        ("persons", "split", p[0], "--threshold", "0.9"),
        ("persons", "move", str(_faces_in_other_photos(faces_settings, p[2], 1)[0])),
        ("persons", "not-this-person", p[2],
         str(_faces_in_other_photos(faces_settings, p[2], 1)[0])),
        ("persons", "hide", p[3]),
        ("persons", "unhide", p[3]),
        ("faces", "same", *map(str, same)),
        ("faces", "different", *map(str, different)),
    ]
    for edit in edits:
        _ok(cli, "-d", url, *edit)
    assert _dump(faces_settings) != before

    logged = json.loads(_ok(cli, "-d", url, "persons", "history", "--json").stdout)
    assert [e["command"] for e in logged] == [f"{a} {b}".replace("rename", "name")
                                              for a, b, *_ in reversed(edits)]
    assert all(e["rows"] > 0 and e["undone_by"] is None for e in logged)

    dry = _ok(cli, "-d", url, "persons", "undo", str(len(edits)), "--dry-run")
    assert "Dry run: nothing was changed." in dry.stdout
    assert _dump(faces_settings) != before
    undone = _ok(cli, "-d", url, "persons", "undo", str(len(edits))).stdout
    assert undone.count("Undid #") == len(edits)
    assert "rows of faces, persons, names and decisions as they were." in " ".join(
        undone.split())
    assert _dump(faces_settings) == before
    table = run_cli(cli, "-d", url, "persons", "history", env={"COLUMNS": "300"}).stdout
    assert table.count("undone by #") == len(edits) and "undo of #" in table

    # The undo is in the history; the edits it reverted say so; nothing is left to undo.
    logged = json.loads(_ok(cli, "-d", url, "persons", "history", "--json").stdout)
    assert logged[0]["command"] == "persons undo"
    assert sorted(logged[0]["undoes"]) == sorted(e["id"] for e in logged[1:])
    assert all(e["undone_by"] == logged[0]["id"] for e in logged[1:])
    again = run_cli(cli, "-d", url, "persons", "undo")
    assert again.exit_code == 1
    assert again.output.startswith("Error: nothing to undo")


def test_undo_is_refused_when_a_later_cluster_run_changed_the_same_rows(
        cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    _ok(cli, "-d", url, "cluster", "--method", "connected", "--threshold", str(SFACE_THRESHOLD))
    person = json.loads(_ok(cli, "-d", url, "persons", "list", "--json").stdout)[0]["id"]
    face = _faces_in_other_photos(faces_settings, person, 1)[0]
    _ok(cli, "-d", url, "persons", "not-this-person", person, str(face))
    edit = json.loads(_ok(cli, "-d", url, "persons", "history", "--json").stdout)[0]["id"]
    _ok(cli, "-d", url, "cluster", "--method", "connected", "--threshold", str(SFACE_THRESHOLD))
    placed = _dump(faces_settings)

    refused = run_cli(cli, "-d", url, "persons", "undo")
    assert refused.exit_code == 1
    assert refused.output.startswith(f"Error: edit #{edit} (")
    assert f"face {face} was changed since by a clustering run" in " ".join(
        refused.output.split())
    assert _dump(faces_settings) == placed


def test_undo_is_refused_when_a_cluster_run_deleted_the_person_a_face_left(
        cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    _ok(cli, "-d", url, "cluster", "--method", "connected", "--threshold", str(SFACE_THRESHOLD))
    with open_database(faces_settings).connect() as conn:
        face, person = conn.execute(
            "SELECT min(id), person_id::text FROM face_detections WHERE person_id IS NOT NULL "
            "GROUP BY person_id HAVING count(*) = 1 ORDER BY 1 LIMIT 1").fetchone()
    _ok(cli, "-d", url, "persons", "move", str(face))  # its person is left empty ...
    _ok(cli, "-d", url, "cluster", "--method", "connected", "--threshold", str(SFACE_THRESHOLD))
    refused = run_cli(cli, "-d", url, "persons", "undo")  # ... and was deleted
    assert refused.exit_code == 1
    assert f"person {person[:8]}, which it changed, was deleted since" in " ".join(
        refused.output.split())


def test_undo_brings_back_what_a_deleted_person_took_with_it(faces_settings: Settings) -> None:
    """A logged edit that deletes a person (as `audit --fix` does) also deletes its name
    and rejections and unsets faces and merges pointing to it, by cascade, in whatever
    order PostgreSQL runs them: undo restores them all."""
    from rbv.jobs.persons.edit_log import logged_edit, undo

    db = open_database(faces_settings)
    with db.transaction() as conn:
        pack, face = conn.execute("SELECT pack_id, id FROM face_detections ORDER BY id LIMIT 1"
                                  ).fetchone()
        person = conn.execute("INSERT INTO persons (pack_id) VALUES (%s) RETURNING id",
                              (pack,)).fetchone()[0]
        conn.execute("INSERT INTO persons (pack_id, merged_into) VALUES (%s, %s)",
                     (pack, person))
        conn.execute("INSERT INTO person_names VALUES (%s, 'Zed')", (person,))
        conn.execute("INSERT INTO person_rejections (face_id, person_id) VALUES (%s, %s)",
                     (face, person))
        conn.execute("UPDATE face_detections SET person_id = %s, assigned_by = 'manual' "
                     "WHERE id = %s", (person, face + 1))
    before = _dump(faces_settings)
    with logged_edit(db, pack, "test delete", {}) as (conn, edit):
        conn.execute("DELETE FROM persons WHERE id = %s", (person,))
        edit.summary = f"deleted {person}"
    assert _dump(faces_settings) != before
    undo(db, 1)
    assert _dump(faces_settings) == before


def test_a_refused_undo_never_blames_an_edit_that_is_undone_already(
        cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    cluster = ("-d", url, "cluster", "--method", "connected", "--threshold",
               str(SFACE_THRESHOLD))
    _ok(cli, *cluster)
    persons = json.loads(_ok(cli, "-d", url, "persons", "list", "--json").stdout)
    person = persons[0]["id"]
    face = _faces_in_other_photos(faces_settings, person, 1)[0]
    _ok(cli, "-d", url, "persons", "not-this-person", person, str(face))
    first = json.loads(_ok(cli, "-d", url, "persons", "history", "--json").stdout)[0]["id"]
    _ok(cli, "-d", url, "persons", "move", str(face))  # to a new person
    second = json.loads(_ok(cli, "-d", url, "persons", "history", "--json").stdout)[0]["id"]
    _ok(cli, "-d", url, "persons", "undo")  # the move is undone: the face is as #first left it
    _ok(cli, *cluster)  # ... and clustering places it

    refused = run_cli(cli, "-d", url, "persons", "undo")
    assert refused.exit_code == 1
    assert refused.output.startswith(f"Error: edit #{first} (")
    assert f"edit #{second}" not in refused.output
    assert f"face {face} was changed since by a clustering run" in " ".join(
        refused.output.split())

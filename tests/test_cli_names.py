"""Persons as users name and read them at the terminal: names and short ids, never
36-character uuids; a unique part of a name is enough, and an ambiguous one lists the
candidates (issue 24 #2)."""

from __future__ import annotations

import json
import re

from rbv.config import Settings
from rbv.words import counted
from tests.conftest import run_cli

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-")
COLUMNS_80 = {"COLUMNS": "80"}


def _clustered(cli, settings: Settings) -> tuple[str, list[dict]]:  # type: ignore[no-untyped-def]
    url = str(settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.46").exit_code == 0
    listed = run_cli(cli, "-d", url, "persons", "list", "--json", "--limit", "0")
    return url, json.loads(listed.stdout)


def _ok(cli, *args: str) -> str:  # type: ignore[no-untyped-def]
    result = run_cli(cli, *args, env=COLUMNS_80)
    assert result.exit_code == 0, result.output
    return str(result.stdout)


def test_a_part_of_a_name_finds_the_person_and_an_ambiguous_one_lists_candidates(
        cli, faces_settings: Settings) -> None:
    url, persons = _clustered(cli, faces_settings)
    obama, junior, third = persons[0], persons[1], persons[2]
    _ok(cli, "-d", url, "persons", "name", obama["id"], "Barack Obama")
    _ok(cli, "-d", url, "persons", "name", junior["id"][:6], "Barack Junior")

    found = _ok(cli, "-d", url, "photos", "-p", "Obama")
    assert found.splitlines()[-1] == f"{obama['images']} photos with Barack Obama."
    unnamed = _ok(cli, "-d", url, "photos", "-p", third["id"][:8])
    assert unnamed.splitlines()[-1] == (f"{counted(third['images'], 'photo')} with "
                                        f"person {third['id'][:8]}.")
    shown = json.loads(_ok(cli, "-d", url, "persons", "show", "obama", "--json"))
    assert shown["person"] == obama["id"]

    ambiguous = run_cli(cli, "-d", url, "persons", "show", "Barack")
    assert ambiguous.exit_code == 1
    assert ambiguous.stderr.strip() == (
        f"Error: 'Barack' matches several persons: Barack Junior ({junior['id'][:8]}), "
        f"Barack Obama ({obama['id'][:8]}); give more of the name or of the id")
    prefix = run_cli(cli, "-d", url, "persons", "show", "")
    assert prefix.exit_code == 1
    assert prefix.stderr.strip() == "Error: no person matches ''; see `rbv persons list`"
    unnamed = _ok(cli, "-d", url, "persons", "show", third["id"][:8])
    assert unnamed.strip().splitlines()[0].strip() == f"person {third['id'][:8]}"
    unnamed = _ok(cli, "-d", url, "persons", "show", third["id"][:4])
    assert unnamed.strip().splitlines()[0].strip() == f"person {third['id'][:8]}"

    # Three characters of an id are too few to be taken as one: the error says how many
    # are, and which persons start so (issue 52 #5).
    start = third["id"][:3]
    starting = sorted(p["id"][:8] for p in persons if p["id"].startswith(start))
    short = run_cli(cli, "-d", url, "persons", "show", start)
    assert short.exit_code == 1
    assert short.stderr.strip() == (
        f"Error: no person matches {start!r}: give at least 4 characters of an id "
        f"({', '.join(starting)} start{'s' if len(starting) == 1 else ''} so); see "
        "`rbv persons list`")


def test_edits_say_who_by_name_or_short_id(cli, faces_settings: Settings) -> None:
    url, persons = _clustered(cli, faces_settings)
    big, other = persons[0], persons[1]
    _ok(cli, "-d", url, "persons", "name", big["id"], "Angelina Jolie")
    faces = json.loads(_ok(cli, "-d", url, "persons", "show", "Jolie", "--json"))["faces"]

    said = _ok(cli, "-d", url, "persons", "not-this-person", "jolie", str(faces[0]["id"]))
    assert said.strip() == ("1 face removed from Angelina Jolie; it will not be "
                            "assigned to it again.")
    said = _ok(cli, "-d", url, "persons", "move", str(faces[0]["id"]), "--to", other["id"][:5],
               "--dry-run")
    assert said.strip() == (f"Would move 1 face to person {other['id'][:8]}. Dry run: "
                            "nothing was changed.")
    said = _ok(cli, "-d", url, "persons", "move", str(faces[1]["id"]))
    assert re.fullmatch(r"Moved 1 face to new person [0-9a-f]{8}\.\n", said), said
    said = _ok(cli, "-d", url, "persons", "merge", "Angelina", other["id"][:8], "--dry-run")
    assert said.startswith(f"Would merge person {other['id'][:8]} into Angelina Jolie: ")
    said = _ok(cli, "-d", url, "persons", "name", other["id"], "Katy Perry")
    assert said.strip() == f"Person {other['id'][:8]} is now named 'Katy Perry'."
    said = _ok(cli, "-d", url, "persons", "hide", "Katy", "jolie")
    assert said.strip() == "Hid 2 persons: Katy Perry, Angelina Jolie."
    said = _ok(cli, "-d", url, "persons", "unhide", "Katy")
    assert said.strip() == "Unhid 1 person: Katy Perry."

    history = _ok(cli, "-d", url, "persons", "history")
    assert not UUID.search(history), history
    assert "unhid Katy Perry" in history and "is not Angelina" in history
    assert "named " + other["id"][:8] + " 'Katy" in history
    assert history.strip().splitlines()[-1].strip() == ("Edit numbers skip dry runs and edits that "
                                                "changed nothing.")
    undone = _ok(cli, "-d", url, "persons", "undo")
    assert undone.splitlines()[0] == "Undid #{} persons unhide: unhid Katy Perry".format(
        json.loads(_ok(cli, "-d", url, "persons", "history", "--json"))[1]["id"])


def test_persons_list_keeps_names_whole_and_no_empty_hidden_column(
        cli, faces_settings: Settings) -> None:
    url, persons = _clustered(cli, faces_settings)
    _ok(cli, "-d", url, "persons", "name", persons[0]["id"], "Angelina Jolie")
    listed = _ok(cli, "-d", url, "persons", "list")
    lines = listed.splitlines()
    assert lines[2].split() == ["id", "name", "faces", "photos"]
    assert lines[4].split() == [persons[0]["id"][:8], "Angelina", "Jolie",
                                str(persons[0]["faces"]), str(persons[0]["images"])]
    assert not UUID.search(listed)
    _ok(cli, "-d", url, "persons", "hide", "Jolie")
    hidden = _ok(cli, "-d", url, "persons", "list", "--hidden").splitlines()
    assert hidden[2].split() == ["id", "name", "faces", "photos", "hidden"]
    assert hidden[4].split()[-1] == "yes"

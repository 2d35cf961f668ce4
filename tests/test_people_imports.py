"""Issue 51, items 6 and 7: imports are edits (one logged edit each, listed by `rbv
persons history`, undone whole by `rbv persons undo`); `import-xmp` names the unnamed
person holding most of a name's faces; every refusal of an import names the command
that does what the user meant (and that command works); a merge keeps the named side,
in either order, refuses two names or two birthdays unless told, and carries the
birthday and cover face. Real photos, real PostgreSQL, through the CLI runner."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import uuid
from pathlib import Path

from PIL import Image

from rbv.config import Settings
from rbv.jobs.exchange.import_xmp import import_xmp
from rbv.jobs.exchange.import_xmp_report import ImportXmpOptions, ImportXmpReport
from rbv.store import open_database
from rbv.words import counted
from tests.conftest import FACES, MISC, import_folders, run_cli
from tests.support.sidecars import mwg_sidecar
from tests.test_import_decisions import _areas
from tests.test_manual_decisions import _cluster, _dump, _faces_of, _ok, _person_of, _rows


def _history(cli, url: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    return json.loads(_ok(cli, "-d", url, "persons", "history", "--json").stdout)  # type: ignore[no-any-return]


def _named(settings: Settings, person: str) -> str | None:
    rows = _rows(settings, "SELECT name FROM person_names WHERE person_id = %s", person)
    return str(rows[0][0]) if rows else None


def _index(settings: Settings, analyzer, lib: Path) -> None:  # type: ignore[no-untyped-def]
    from rbv.jobs.library.index import run_index
    from rbv.store import open_database

    run_index(open_database(settings), settings, [lib], analyzer=analyzer)


# -- item 6: imports are edits ---------------------------------------------------------

def test_import_folders_is_one_edit_in_the_history_and_undo_takes_it_back_whole(
        cli, faces_settings: Settings) -> None:
    """import-folders placed ~100 faces by hand and made named persons, but `persons
    history` did not list it and `persons undo` could not take it back."""
    s = faces_settings
    url = str(s.database_url)
    _cluster(cli, url, "--full")
    before = _dump(s)
    preview = import_folders(cli, s, "--dry-run")
    assert _dump(s) == before and _history(cli, url) == []  # a dry run: nothing logged
    done = import_folders(cli, s, "--no-index")
    assert [(i["name"], i["assigned"]) for i in done["identities"]] == \
        [(i["name"], i["assigned"]) for i in preview["identities"]]
    placed = sum(i["assigned"] for i in done["identities"])
    assert placed > 20 and _dump(s) != before
    (entry,) = _history(cli, url)
    assert entry["command"] == "import-folders" and entry["id"] == done["edit_id"]
    persons = [i for i in done["identities"] if i["kept"]]
    assert entry["summary"].startswith(
        f"{counted(len(persons), 'person')} from folders "
        f"({sum(i['created'] for i in persons)} new), ")
    assert f"{placed:,} faces placed by hand" in entry["summary"]
    undone = _ok(cli, "-d", url, "persons", "undo")
    assert (f"Undid #{entry['id']} import-folders: {entry['summary']}"  # wrapped at 80
            in " ".join(undone.stdout.split()))
    assert _dump(s) == before  # persons made, names, placements, emptied persons: all back


def _lib(tmp_path: Path, photos: list[Path]) -> Path:
    lib = tmp_path / "lib"
    lib.mkdir()
    for i, photo in enumerate(photos):
        shutil.copy(photo, lib / f"{i:02d}_{photo.name}")
    return lib


def _sidecar(photo: Path, names: list[tuple[str, tuple[str, ...]]]) -> None:
    """An MWG sidecar PHOTO.EXT.xmp naming faces by their normalised areas."""
    w, h = Image.open(photo).size
    photo.with_name(photo.name + ".xmp").write_bytes(mwg_sidecar((str(w), str(h)), names))


def test_import_xmp_names_the_unnamed_person_that_holds_most_of_the_names_faces(
        cli, settings: Settings, sface_analyzer, tmp_path: Path) -> None:
    """Sidecars naming 4 faces of an unnamed person made a new 4-face person of that
    name and left the rest unnamed; the import was not in the history either."""
    s = settings
    url = str(s.database_url)
    lib = _lib(tmp_path, sorted((FACES / "Ben_Affleck").iterdir())[:12])
    _index(s, sface_analyzer, lib)
    _cluster(cli, url, "--full")
    faces = {photo: _areas(s, photo) for photo in sorted(lib.iterdir())}
    holder_rows = _rows(s, "SELECT person_id, count(*) FROM face_detections WHERE person_id "
                        "IS NOT NULL GROUP BY 1 ORDER BY 2 DESC LIMIT 1")
    holder, size = str(holder_rows[0][0]), int(holder_rows[0][1])
    assert size >= 6, "the photos make one person of most of their faces"
    named = [(photo, face, area) for photo, found in faces.items() for face, area in found
             if _person_of(s, face) == holder][:4]
    for photo, _face, area in named:
        _sidecar(photo, [("Ben Affleck", area)])
    before = _dump(s)

    said = _ok(cli, "-d", url, "import-xmp", str(lib), "--dry-run").stdout
    assert (f"Person {holder[:8]} would be named 'Ben Affleck': it holds 4 of the 4 faces "
            f"the sidecars name so, and all its {size} faces are 'Ben Affleck' now.") in said
    assert "0 new persons" in said and _dump(s) == before

    done = run_cli(cli, "-d", url, "import-xmp", str(lib), "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["persons_created"] == [] and report["conflicts"] == []
    assert report["persons_named"] == [{"name": "Ben Affleck", "person": holder,
                                        "faces": str(size), "named_faces": "4", "of": "4"}]
    assert _named(s, holder) == "Ben Affleck" and len(_faces_of(s, holder)) == size
    (entry,) = _history(cli, url)
    assert entry["command"] == "import-xmp" and entry["id"] == report["edit_id"]
    assert f"named {holder[:8]} 'Ben Affleck'" in entry["summary"]
    _ok(cli, "-d", url, "persons", "undo")
    assert _dump(s) == before


def test_import_xmp_makes_a_new_person_when_a_decision_contradicts_the_holder(
        cli, settings: Settings, sface_analyzer, tmp_path: Path) -> None:
    """A face of the name rejected from the person holding the rest: that person is not
    named; a new person is made, and the note says why and what joins them."""
    s = settings
    url = str(s.database_url)
    lib = _lib(tmp_path, sorted((FACES / "Ben_Affleck").iterdir())[:8])
    _index(s, sface_analyzer, lib)
    _cluster(cli, url, "--full")
    faces = [(photo, face, area) for photo in sorted(lib.iterdir())
             for face, area in _areas(s, photo)]
    holder = _person_of(s, faces[0][1])
    assert holder is not None
    mine = [f for f in faces if _person_of(s, f[1]) == holder][:3]
    assert len(mine) == 3
    _ok(cli, "-d", url, "persons", "not-this-person", holder, str(mine[2][1]))
    for photo, _face, area in mine:
        _sidecar(photo, [("Ben", area)])
    (note,) = _job_dry_run(s, lib).notes  # the job's note: words, and the merge as data
    assert note.person == uuid.UUID(holder) and not COMMAND_TEXT.search(note.reason)
    assert [(r.action, r.args) for r in note.remedies] == [
        ("merge", {"persons": [uuid.UUID(holder), "Ben"]})]
    out = _ok(cli, "-d", url, "import-xmp", str(lib)).stdout
    assert (f"'Ben': a new person, not person {holder[:8]}, which holds 2 of its 3 faces: "
            f"face {mine[2][1]}: was rejected from that person; `rbv persons merge "
            f"{holder[:8]} Ben` joins them if they are one person.") in out, out
    assert _named(s, holder) is None


def test_import_xmp_says_a_face_marked_not_a_face_and_how_to_name_it(
        cli, settings: Settings, sface_analyzer, tmp_path: Path) -> None:
    """A sidecar naming a detection the user marked not a face: the mark stands, and the
    conflict names `faces is-a-face` (found by the decision fuzz: the face was skipped
    without a word)."""
    s = settings
    url = str(s.database_url)
    lib = _lib(tmp_path, sorted((FACES / "Ben_Affleck").iterdir())[:4])
    _index(s, sface_analyzer, lib)
    _cluster(cli, url, "--full")
    photo = sorted(lib.iterdir())[0]
    ((face, area),) = _areas(s, photo)[:1]
    _ok(cli, "-d", url, "faces", "not-a-face", str(face))
    _sidecar(photo, [("Ben", area)])
    done = run_cli(cli, "-d", url, "import-xmp", str(lib), "--json")
    assert done.exit_code == 0, done.output
    (conflict,) = json.loads(done.stdout)["conflicts"]
    assert int(conflict["face"]) == face and "marked not a face" in conflict["reason"]
    assert f"`rbv faces is-a-face {face}`" in conflict["command"]
    assert _person_of(s, face) is None
    assert _rows(s, "SELECT count(*) FROM not_faces WHERE face_id = %s", face)[0][0] == 1


COMMAND_TEXT = re.compile(r"`rbv\b|\brbv [a-z]|(?<![\w-])--[a-z]")
"""A command or an option: what the import job's words never hold (issue 63)."""


def _job_dry_run(settings: Settings, lib: Path) -> ImportXmpReport:
    """import-xmp as a job, rolled back: its report as data."""
    return import_xmp(open_database(settings), settings.model_pack,
                      ImportXmpOptions((lib,), dry_run=True), sole_fallback=True)


def _commands(out: str) -> list[str]:
    """The `rbv …` commands the output gives, in order."""
    return re.findall(r"`(rbv [^`]+)`", out)


def test_import_refusals_name_the_command_that_does_what_the_user_meant(
        cli, settings: Settings, sface_analyzer, tmp_path: Path) -> None:
    """A face placed by hand in an unnamed person was refused "'Lindsay Ellingson' not
    applied: the face is in person 5c2ee105-… in rbv (by hand)", without the command
    that names that person; each refusal now gives one, and it works."""
    s = settings
    url = str(s.database_url)
    obama = sorted((FACES / "Barack_Obama").iterdir())
    lib = _lib(tmp_path, [MISC / "fr_two_people.jpg", *obama[:3]])
    _index(s, sface_analyzer, lib)
    two, o1, o2, o3 = sorted(lib.iterdir())
    (a, area_a), (b, area_b) = _areas(s, two)
    ((c, area_c),), ((d, area_d),), ((e, area_e),) = (_areas(s, p) for p in (o1, o2, o3))
    _ok(cli, "-d", url, "persons", "move", str(a))  # a: by hand in 'Zed'
    _ok(cli, "-d", url, "persons", "name", _person_of(s, a) or "", "Zed")
    for face in (b, d, e):  # each by hand in an unnamed person of its own
        _ok(cli, "-d", url, "persons", "move", str(face))
    pb, pd, pe = (_person_of(s, f) or "" for f in (b, d, e))
    _sidecar(two, [("Ann", area_a), ("Dan", area_b)])
    _sidecar(o1, [("Dan", area_c)])  # Dan: b (by hand in pb) and c (no person)
    _sidecar(o2, [("Lindsay Ellingson", area_d)])  # held 1 and 1: no holder
    _sidecar(o3, [("Lindsay Ellingson", area_e)])

    preview = _job_dry_run(s, lib)  # the job's conflicts: why in words, remedies as data
    assert not [c.reason for c in preview.conflicts if COMMAND_TEXT.search(c.reason)]
    assert {c.face: [(r.action, r.args) for r in c.remedies] for c in preview.conflicts} \
        == {a: [("move", {"faces": [a], "to": "Ann"})],
            b: [("merge", {"persons": ["Dan", uuid.UUID(pb)]})],
            d: [("name", {"person": uuid.UUID(pd), "name": "Lindsay Ellingson"})],
            e: [("name", {"person": uuid.UUID(pe), "name": "Lindsay Ellingson"})]}
    assert "command" not in preview.as_dict()["conflicts"][0]  # worded by a front end

    out = _ok(cli, "-d", url, "import-xmp", str(lib)).stdout
    lines = out.splitlines()
    assert (f"{two}: 'Ann' not applied to face {a}: the face is in 'Zed' (placed by hand); "
            f"`rbv persons move {a} --to Ann` moves the face.") in lines, out
    assert (f"{two}: 'Dan' not applied to face {b}: the face is in person {pb[:8]} (placed "
            f"by hand); `rbv persons merge Dan {pb[:8]}` joins that person to 'Dan'.") in lines
    assert (f"{o2}: 'Lindsay Ellingson' not applied to face {d}: the face is in person "
            f"{pd[:8]} (placed by hand); `rbv persons name {pd[:8]} 'Lindsay Ellingson'` "
            "names that person.") in lines, out
    assert (f"`rbv persons name {pe[:8]} 'Lindsay Ellingson'` names that person.") in out
    dan = _person_of(s, c)
    assert dan is not None and _named(s, dan) == "Dan"
    # no empty 'Lindsay Ellingson' left behind: the command names the person
    assert _rows(s, "SELECT count(*) FROM person_names WHERE name = 'Lindsay Ellingson'"
                 ) == [(0,)]
    for command in _commands(out)[:3]:  # Ann, Dan, Lindsay (d's)
        _ok(cli, "-d", url, *shlex.split(command)[1:])
    assert _named(s, _person_of(s, a) or "") == "Ann"
    assert _person_of(s, b) == dan  # the named person kept, pb joined it (item 7)
    assert _named(s, _person_of(s, d) or "") == "Lindsay Ellingson"
    assert _person_of(s, d) == pd


def test_import_folders_refusal_commands_work(cli, faces_settings: Settings) -> None:
    """A face left out by an earlier decision: the line's command puts it there."""
    s = faces_settings
    url = str(s.database_url)
    first = import_folders(cli, s)
    obama = next(i["person_id"] for i in first["identities"] if i["name"] == "Barack_Obama")
    moved = _faces_of(s, obama)[0]
    _ok(cli, "-d", url, "persons", "move", str(moved))  # by hand, out of Obama
    again = run_cli(cli, "-d", url, "import-folders", str(FACES / "Barack_Obama"),
                    "--no-index")
    assert again.exit_code == 0, again.output
    line = next(x for x in again.stdout.splitlines() if f"face {moved} not given" in x)
    (command,) = _commands(line)
    assert command == f"rbv persons move {moved} --to Barack_Obama"
    _ok(cli, "-d", url, *shlex.split(command)[1:])
    assert _person_of(s, moved) == obama


# -- item 7: a merge keeps the named side ----------------------------------------------

def _two_persons(cli, s: Settings, *names: str) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    """The two largest persons after a full clustering, named ``names`` in turn."""
    url = str(s.database_url)
    _cluster(cli, url, "--full")
    persons = json.loads(_ok(cli, "-d", url, "persons", "list", "--json", "--limit",
                             "0").stdout)
    for person, name in zip(persons, names, strict=False):
        _ok(cli, "-d", url, "persons", "name", person["id"], name)
    return persons[0]["id"], persons[1]["id"]


def test_a_merge_into_an_unnamed_person_keeps_the_named_one(cli, faces_settings: Settings
                                                            ) -> None:
    """merge UNNAMED NAMED kept the unnamed person's id: links to the named one (the
    history, Immich) pointed to a merged person."""
    s = faces_settings
    url = str(s.database_url)
    unnamed, named = _two_persons(cli, s)
    _ok(cli, "-d", url, "persons", "name", named, "Ada")
    faces = sorted(_faces_of(s, unnamed) + _faces_of(s, named))
    out = _ok(cli, "-d", url, "persons", "merge", unnamed, named).stdout
    assert f"Ada is kept, not person {unnamed[:8]}: it has the name" in out, out
    assert sorted(_faces_of(s, named)) == faces and _named(s, named) == "Ada"
    assert _rows(s, "SELECT merged_into::text FROM persons WHERE id = %s", unnamed) == \
        [(named,)]


def test_two_named_persons_merge_only_when_told_which_name_stays(
        cli, faces_settings: Settings) -> None:
    s = faces_settings
    url = str(s.database_url)
    p, q = _two_persons(cli, s, "Ada", "Bob")
    before = _dump(s)
    refused = run_cli(cli, "-d", url, "persons", "merge", p, q)
    assert refused.exit_code != 0 and _dump(s) == before
    said = " ".join(refused.output.split())
    assert (f"these persons have different names ({p[:8]} is 'Ada' and {q[:8]} is 'Bob'); "
            f"say which name stays: `rbv persons merge {p[:8]} {q[:8]} --keep-name Ada` or "
            f"`rbv persons merge {p[:8]} {q[:8]} --keep-name Bob`") in said, said
    wrong = run_cli(cli, "-d", url, "persons", "merge", p, q, "--keep-name", "Cy")
    assert wrong.exit_code != 0 and ("keep one of their names: `rbv persons merge "
                                     f"{p[:8]} {q[:8]} --keep-name Ada`") in wrong.output
    _ok(cli, "-d", url, "persons", "merge", p, q, "--keep-name", "bob")
    assert _named(s, q) == "Bob"
    assert _rows(s, "SELECT merged_into::text FROM persons WHERE id = %s", p) == [(q,)]
    _ok(cli, "-d", url, "persons", "undo")
    assert _dump(s) == before


def test_a_merge_carries_the_birthday_and_cover_and_refuses_two_birthdays(
        cli, faces_settings: Settings) -> None:
    s = faces_settings
    url = str(s.database_url)
    p, q = _two_persons(cli, s)
    cover = _faces_of(s, q)[0]
    _ok(cli, "-d", url, "persons", "name", p, "Ada")
    _rows(s, "UPDATE persons SET born = '1990-05-17', cover_face_id = %s WHERE id = %s",
          cover, q)
    before = _dump(s)
    _ok(cli, "-d", url, "persons", "merge", q, p)  # into the unnamed: Ada (p) is kept
    assert _rows(s, "SELECT born::text, cover_face_id FROM persons WHERE id = %s", p) == \
        [("1990-05-17", cover)]
    _ok(cli, "-d", url, "persons", "undo")
    assert _dump(s) == before
    _rows(s, "UPDATE persons SET born = '1991-01-02' WHERE id = %s", p)
    refused = run_cli(cli, "-d", url, "persons", "merge", p, q)
    said = " ".join(refused.output.split())
    assert refused.exit_code != 0 and "different birthdays" in said
    assert f"`rbv persons merge {p[:8]} {q[:8]} --keep-born 1990-05-17`" in said
    _ok(cli, "-d", url, "persons", "merge", p, q, "--keep-born", "1990-05-17")
    assert _rows(s, "SELECT born::text FROM persons WHERE id = %s", p) == [("1990-05-17",)]


def test_the_web_merge_keeps_the_named_side_and_refuses_two_names(
        served, faces_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    """The person page's "merge in" of a named person into an unnamed one kept the
    unnamed id; two named persons are a 409 with the commands, nothing changed."""
    from tests.test_serve import _persons

    _, client = served
    (a, _, _), (b, _, _), (c, _, _) = _persons(faces_settings)[:3]
    assert client.post("name", {"person": c, "name": "Carol"}).status == 200
    merged = client.post("merge", {"person": b, "source": "carol"}).json()
    assert merged["ok"] and merged["go"] == f"/person/{c}"
    assert _rows(faces_settings, "SELECT merged_into::text FROM persons WHERE id = %s",
                 b) == [(c,)]
    assert client.post("name", {"person": a, "name": "Ada"}).status == 200
    before = _dump(faces_settings)
    refused = client.post("merge", {"person": a, "source": c})
    assert refused.status == 409, refused.text
    answer = refused.json()
    assert answer["kind"] == "names_differ" and "--" not in answer["error"]
    assert "rbv " not in answer["error"]
    # issue 63: the remedies are buttons, each the merge that keeps one name
    assert answer["remedies"] == [
        {"label": f"Keep the name {n!r}", "action": "merge",
         "body": {"person": a, "source": c, "keep_name": n}} for n in ("Ada", "Carol")]
    assert _dump(faces_settings) == before
    keep = answer["remedies"][1]
    done = client.post(keep["action"], keep["body"]).json()
    assert done["ok"] and done["go"] == f"/person/{c}", done
    assert _named(faces_settings, c) == "Carol"
    assert _rows(faces_settings, "SELECT merged_into::text FROM persons WHERE id = %s",
                 a) == [(c,)]


def test_review_answers_that_would_join_two_names_are_refused(
        cli, faces_settings: Settings) -> None:
    """A grid or a page of pairs answered "same" for two differently named persons: the
    whole answer is refused (the page shows a 409 with the message), nothing changed;
    a named person ticked in an unnamed one's grid is the one kept."""
    import pytest

    from rbv.errors import Refused
    from rbv.jobs.persons import merges
    from rbv.store import open_database

    s = faces_settings
    p, q = _two_persons(cli, s, "Ada", "Bob")
    db = open_database(s)
    before = _dump(s)
    a, b = uuid.UUID(p), uuid.UUID(q)
    for answer in (lambda: merges.answer_grid(db, a, [b], []),
                   lambda: merges.answer_pairs(db, [(a, [b])], [])):
        with pytest.raises(Refused, match="different names") as refused:
            answer()
        assert refused.value.kind == "names_differ"
        assert [r.args["keep_name"] for r in refused.value.remedies] == ["Ada", "Bob"]
    assert _dump(s) == before
    _rows(s, "DELETE FROM person_names WHERE person_id = %s", p)  # p unnamed
    done = merges.answer_grid(db, a, [b], [])
    assert str(done.person) == q and _named(s, q) == "Bob"

"""Previews are the run (issue 28): a `--dry-run`, and the forecast an edit prints of the
next `rbv cluster --full`, report exactly what the real run then does. Each test runs the
preview (--json), checks it changed nothing, runs the real command(s), and compares the
reported numbers and persons, and the database, with the preview. Real photos, real
PostgreSQL, through the CLI runner."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from rbv.config import Settings
from tests.conftest import (
    FACES,
    FOLDER_IDENTITIES,
    FOLDER_MIXED,
    MISC,
    PACK,
    SFACE_THRESHOLD,
    cluster_photos,
    import_folders,
    run_cli,
)

pytestmark = pytest.mark.slow  # ~6 s: previews of real photos in every size

State = tuple[dict[int, str | None], dict[int, str | None], set[str], dict[str, str], int]


def _ok(cli, *args: str) -> Any:  # type: ignore[no-untyped-def]
    done = run_cli(cli, *args)
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout) if "--json" in args else done


def _state(settings: Settings) -> State:
    """Face → person, face → how it was assigned, the persons, their names, links."""
    with psycopg.connect(str(settings.database_url)) as conn:
        faces = conn.execute("SELECT id, person_id::text, assigned_by FROM face_detections"
                             ).fetchall()
        persons = {r[0] for r in conn.execute(
            "SELECT id::text FROM persons WHERE merged_into IS NULL")}
        names = dict(conn.execute("SELECT person_id::text, name FROM person_names").fetchall())
        links = conn.execute("SELECT (SELECT count(*) FROM must_links) + "
                             "(SELECT count(*) FROM cannot_links)").fetchone()
    assert links is not None
    return ({int(f): p for f, p, _ in faces}, {int(f): a for f, _, a in faces}, persons,
            names, int(links[0]))


def _changes(before: State, after: State) -> list[dict[str, Any]]:
    """What happened between two states, person by person, as a forecast says it (a
    person the run created has no id there: its id is drawn by the run)."""
    old, new = before[0], after[0]
    moved = sorted(f for f in new if new[f] != old[f])
    touched = {p for p in before[2] - after[2]}
    touched |= {p for f in moved for p in (old[f], new[f]) if p is not None}
    out = []
    for p in touched:
        joined = [f for f in moved if new[f] == p]
        left = [f for f in moved if old[f] == p]
        created = p not in before[2]
        out.append({"person": None if created else p, "name": after[3].get(p, before[3].get(p)),
                    "before": sum(1 for q in old.values() if q == p),
                    "after": sum(1 for q in new.values() if q == p),
                    "joined": joined, "left": left, "removed": p not in after[2]})
    return sorted(out, key=_order)


def _order(change: dict[str, Any]) -> tuple[str, list[int]]:
    return str(change["person"]), change["joined"]


def _biggest(settings: Settings, skip: int = 0) -> list[tuple[int, int]]:
    """(face, photo) of the person with the (skip+1)-th most faces."""
    with psycopg.connect(str(settings.database_url)) as conn:
        person = conn.execute("SELECT person_id FROM face_detections WHERE person_id IS NOT "
                              "NULL GROUP BY person_id ORDER BY count(*) DESC, person_id "
                              "OFFSET %s LIMIT 1", (skip,)).fetchone()
        assert person is not None
        return [(int(f), int(i)) for f, i in conn.execute(
            "SELECT id, image_id FROM face_detections WHERE person_id = %s ORDER BY id",
            (person[0],))]


def _link_then_cluster(cli, settings: Settings, kind: str, faces: list[int]) -> None:  # type: ignore[no-untyped-def]
    """`rbv faces KIND FACES --dry-run`, the link, then `rbv cluster --full`: the dry
    run changes nothing, the link does what the dry run said, and the full run does
    what the dry run forecast."""
    url = str(settings.database_url)
    ids = [str(f) for f in faces]
    start = _state(settings)
    said = _ok(cli, "-d", url, "faces", kind, *ids, "--dry-run").stdout
    preview = _ok(cli, "-d", url, "faces", kind, *ids, "--dry-run", "--json")
    assert _state(settings) == start  # the dry run wrote nothing

    done = _ok(cli, "-d", url, "faces", kind, *ids, "--json")
    assert done["edit"] is not None and preview["edit"] is None
    mine = ("edit", "dry_run", "forecast")
    assert {k: v for k, v in done.items() if k not in mine} == \
        {k: v for k, v in preview.items() if k not in mine}
    linked = _state(settings)
    assert linked[:4] == start[:4] and linked[4] > start[4]  # a link moves no face

    ran = _ok(cli, "-d", url, "cluster", "--full", "--json")
    happened = _changes(linked, _state(settings))
    assert happened, "the link changes persons at the next full run"
    for change in happened:  # the dry run said so, first for the linked faces' persons
        if change["person"] in {start[0][f] for f in faces}:  # (the link's part, then
            lines = [line for line in said.splitlines()  # the rest from there)
                     if change["person"][:8] in line and " → " in line]
            assert lines[0].split(": ")[1].startswith(f"{change['before']} → "), (change, said)
            assert f" → {change['after']} faces" in lines[-1], (change, said)
    forecast = preview["forecast"]
    assert sorted(forecast["changes"], key=_order) == happened
    assert (forecast["moved"], forecast["created"], forecast["removed"]) == \
        (ran["reassigned"], ran["new_persons"], ran["removed_persons"])
    assert done["forecast"] is None  # the link alone is SQL: no clustering unless asked


# Persons made by the default full run, or by another method (which the next bare full
# run then rearranges more widely: persons emptied and removed, new ones).
MADE_BY = [[], ["--method", "connected", "--threshold", str(SFACE_THRESHOLD)]]


@pytest.mark.parametrize("made_by", MADE_BY, ids=["evidence", "connected"])
def test_faces_same_forecasts_what_the_next_full_cluster_does(
        cli, faces_settings: Settings, made_by: list[str]) -> None:
    """`faces same --dry-run` said "`rbv cluster --full` makes persons A, B one person";
    the full run then moved one face from A to B, and nothing else."""
    url = str(faces_settings.database_url)
    _ok(cli, "-d", url, "cluster", "--full", *made_by)
    c, d = _biggest(faces_settings, 1)[0][0], _biggest(faces_settings, 2)[0][0]
    _link_then_cluster(cli, faces_settings, "same", [c, d])


@pytest.mark.parametrize("made_by", MADE_BY, ids=["evidence", "connected"])
def test_faces_different_forecasts_what_the_next_full_cluster_does(
        cli, faces_settings: Settings, made_by: list[str]) -> None:
    """`faces different --dry-run` said "`rbv cluster --full` splits person A"; what the
    split then moved, and where, was not said."""
    url = str(faces_settings.database_url)
    _ok(cli, "-d", url, "cluster", "--full", *made_by)
    (a, photo_a), (b, photo_b) = _biggest(faces_settings)[:2]
    assert photo_a != photo_b
    _link_then_cluster(cli, faces_settings, "different", [a, b])
    unasked = _ok(cli, "-d", url, "faces", "different", str(a), str(b), "--dry-run",
                  "--no-forecast", "--json")
    assert unasked["forecast"] is None and unasked["added"] == 0


def test_a_link_asked_for_a_forecast_makes_its_dry_runs(cli, faces_settings: Settings
                                                        ) -> None:
    """`--forecast` on the real link runs the same forecast as the dry run (the same
    code, on the edit's transaction, rolled back), and the link is kept."""
    url = str(faces_settings.database_url)
    _ok(cli, "-d", url, "cluster", "--full")
    c, d = str(_biggest(faces_settings, 1)[0][0]), str(_biggest(faces_settings, 2)[0][0])
    preview = _ok(cli, "-d", url, "faces", "same", c, d, "--dry-run", "--json")
    start = _state(faces_settings)
    done = _ok(cli, "-d", url, "faces", "same", c, d, "--forecast", "--json")
    assert done["forecast"] == preview["forecast"] and done["forecast"]["moved"] > 0
    after = _state(faces_settings)
    assert after[:4] == start[:4] and after[4] == start[4] + 1  # the link, and only it


def test_import_folders_dry_run_reports_what_the_import_then_does(
        cli, faces_settings: Settings) -> None:
    """`import-folders --dry-run` reported `changed 0` and no new person for every
    folder; the import then changed 3-27 faces per folder and created the persons."""
    url = str(faces_settings.database_url)
    folders = [str(FACES / name) for name in FOLDER_IDENTITIES]
    mixed = [str(MISC / photo) for photo in FOLDER_MIXED]
    # Photos not indexed yet: the real run indexes them first, a dry run cannot, and
    # says how many it leaves out.
    unindexed = {p for name in FOLDER_IDENTITIES for p in (FACES / name).iterdir()} - set(
        cluster_photos())
    early = import_folders(cli, faces_settings, "--dry-run")
    _ok(cli, "-d", url, "index", *folders, *mixed, "--model-pack", str(PACK))
    _ok(cli, "-d", url, "cluster")  # automatic persons, for the import to move faces from
    start = _state(faces_settings)

    preview = import_folders(cli, faces_settings, "--dry-run")
    assert _state(faces_settings) == start  # the dry run wrote nothing

    done = import_folders(cli, faces_settings)
    after = _state(faces_settings)
    created = after[2] - start[2]
    person_of = {i["name"]: i["person_id"] for i in done["identities"]}
    for folder in done["identities"]:
        if folder["created"]:
            assert folder["person_id"] in created
            folder["person_id"] = None  # a dry run's new person is rolled back, id and all
    assert preview["edit_id"] is None and done["edit_id"] is not None  # a dry run logs none
    assert {k: v for k, v in done.items() if k not in ("dry_run", "edit_id")} == \
        {k: v for k, v in preview.items() if k not in ("dry_run", "edit_id")}
    assert sum(i["assigned"] for i in preview["identities"]) > 0
    assert {i["name"] for i in preview["identities"] if i["created"]} == \
        {after[3][p] for p in created}
    assert preview["removed_persons"] == len(start[2] - after[2])

    # Per folder, the faces the dry run said would change are the faces that changed.
    changed = [f for f in after[0] if (after[0][f], after[1][f]) != (start[0][f], start[1][f])]
    for folder in preview["identities"]:
        into = person_of[folder["name"]]
        assert folder["assigned"] == sum(1 for f in changed if after[0][f] == into), folder
    assert preview["to_index"] == 0  # every photo was indexed: the dry run is the run
    assert early["to_index"] == len(unindexed)


def test_a_link_says_its_own_changes_first_and_apart_and_a_bystander_s_size(
        cli, faces_settings: Settings) -> None:
    """`faces same A B --dry-run` listed the link's one move among the many the next full
    run makes anyway, and did not say that B was an 18-px bystander (issue 52 #1): the
    link's changes come first, apart; the others are those the run without the link
    makes (checked by running it); the faces' sizes are said, a small one pointed out."""
    url = str(faces_settings.database_url)
    _ok(cli, "-d", url, "cluster", "--full", *MADE_BY[1])  # the bare full run redoes much
    (big, photo), = _biggest(faces_settings)[:1]
    with psycopg.connect(url) as conn:
        sizes = dict(conn.execute("SELECT id, round(face_short)::int FROM face_detections"
                                  ).fetchall())
        small = conn.execute(
            "SELECT id FROM face_detections WHERE image_id <> %s AND person_id IS DISTINCT "
            "FROM (SELECT person_id FROM face_detections WHERE id = %s) "
            "ORDER BY face_short, id LIMIT 1", (photo, big)).fetchone()[0]
    big = max((f for f, _ in _biggest(faces_settings)), key=lambda f: (sizes[f], -f))
    assert sizes[small] < sizes[big] / 2  # a face in the background of a close-up
    start = _state(faces_settings)
    said = run_cli(cli, "-d", url, "faces", "same", str(big), str(small), "--dry-run",
                   env={"COLUMNS": "80"}).stdout.splitlines()
    preview = _ok(cli, "-d", url, "faces", "same", str(big), str(small), "--dry-run",
                  "--json")
    assert _state(faces_settings) == start
    assert preview["caution"] and all(len(line) <= 80 for line in said), said
    assert f"Look first: face {small} is small ({sizes[small]} px short edge; face {big}: " \
        f"{sizes[big]} px): a bystander's face, perhaps? Check it is the person you mean." \
        in " ".join(said), said
    forecast = preview["forecast"]
    assert forecast["command"] == "rbv cluster --full"  # the CLI's words for the run
    mine = forecast["by_edit"]
    assert mine, said  # the link moves something at the next full run
    at = said.index(" Because of the link:")
    assert said[at - 1].startswith("The next `rbv cluster --full` would move ")
    anyway = said.index(next(line for line in said if line.startswith(" With or without "
                                                                        "the link (")))
    assert len(mine) == anyway - at - 1
    assert all(c["person"][:8] in said[at + 1 + i] for i, c in enumerate(mine)), said

    # What the run changes with or without the link is what it does without it.
    ran = _ok(cli, "-d", url, "cluster", "--full", "--json")
    assert ran["reassigned"] > 0
    after = _state(faces_settings)

    def ends(changes: list[dict[str, Any]]) -> dict[int, str | None]:
        left = {f: "none" for c in changes for f in c["left"]}
        return left | {f: c["person"] or "new" for c in changes for f in c["joined"]}

    def really(face: int) -> str | None:
        p = after[0][face]
        return "none" if p is None else "new" if p not in start[2] else p

    linked = {f for c in mine for f in c["joined"] + c["left"]}
    predicted = ends(forecast["changes"])
    assert linked and all(really(f) == predicted[f] for f in set(predicted) - linked)
    assert all(really(f) != predicted[f] for f in linked)

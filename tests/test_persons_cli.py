"""`rbv persons …` through the CLI runner on real clustered faces."""

from __future__ import annotations

import json

from rbv.config import Settings
from rbv.store import open_database
from tests.conftest import SFACE_THRESHOLD, run_cli


def _setup(cli, settings: Settings) -> tuple[str, list[dict]]:  # type: ignore[no-untyped-def]
    url = str(settings.database_url)
    done = run_cli(cli, "-d", url, "cluster", "--threshold", str(SFACE_THRESHOLD))
    assert done.exit_code == 0, done.output
    listed = run_cli(cli, "-d", url, "persons", "list", "--json", "--limit", "0")
    assert listed.exit_code == 0, listed.output
    return url, json.loads(listed.stdout)


def test_list_name_show_hide_and_unhide(cli, faces_settings: Settings) -> None:
    url, persons = _setup(cli, faces_settings)
    assert persons == sorted(persons, key=lambda p: -p["faces"])
    top = persons[0]
    named = run_cli(cli, "-d", url, "persons", "name", top["id"][:8], "Ada Lovelace")
    assert named.exit_code == 0, named.output
    renamed = run_cli(cli, "-d", url, "persons", "rename", "ada lovelace", "Ada")
    assert renamed.exit_code == 0, renamed.output
    shown = run_cli(cli, "-d", url, "persons", "show", "Ada", "--json")
    assert shown.exit_code == 0, shown.output
    faces = json.loads(shown.stdout)["faces"]
    assert len(faces) == top["faces"] and all(f["path"] for f in faces)

    assert run_cli(cli, "-d", url, "persons", "hide", "Ada").exit_code == 0
    visible = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json", "--limit", "0"
                                 ).stdout)
    assert top["id"] not in {p["id"] for p in visible}
    everyone = json.loads(run_cli(cli, "-d", url, "persons", "list", "--hidden", "--json",
                                  "--limit", "0").stdout)
    assert {p["id"]: p["name"] for p in everyone}[top["id"]] == "Ada"
    assert run_cli(cli, "-d", url, "persons", "unhide", "Ada").exit_code == 0


def test_unknown_person_is_one_clear_error_line(cli, faces_settings: Settings) -> None:
    url, _ = _setup(cli, faces_settings)
    result = run_cli(cli, "-d", url, "persons", "name", "Nobody Atall", "X")
    assert result.exit_code == 1
    assert result.output.strip() == ("Error: no person matches 'Nobody Atall'; "
                                     "see `rbv persons list`")


def test_move_and_split_are_manual_and_kept_by_full_recluster(cli,
                                                               faces_settings: Settings) -> None:
    url, persons = _setup(cli, faces_settings)
    big = persons[0]
    split = run_cli(cli, "-d", url, "persons", "split", big["id"], "--threshold", "0.9",
                    "--json")
    assert split.exit_code == 0, split.output
    result = json.loads(split.stdout)
    assert result["new_persons"] and sum(result["sizes"]) == big["faces"]
    moved_face = json.loads(run_cli(cli, "-d", url, "persons", "show", big["id"], "--json"
                                    ).stdout)["faces"][0]["id"]
    moved = run_cli(cli, "-d", url, "persons", "move", str(moved_face))
    assert moved.exit_code == 0, moved.output

    def snapshot() -> dict[int, str]:
        with open_database(faces_settings).connect() as conn:
            return {f: str(p) for f, p in conn.execute(
                "SELECT id, person_id FROM face_detections WHERE assigned_by = 'manual'")}

    before = snapshot()
    assert moved_face in before and len(before) == big["faces"]
    full = run_cli(cli, "-d", url, "cluster", "--full", "--threshold", str(SFACE_THRESHOLD))
    assert full.exit_code == 0, full.output
    assert snapshot() == before


def test_a_name_in_use_is_refused_with_the_merge_that_joins_them(
        cli, faces_settings: Settings) -> None:
    url, persons = _setup(cli, faces_settings)
    first, second = persons[0]["id"], persons[1]["id"]
    assert run_cli(cli, "-d", url, "persons", "name", first, "Madonna").exit_code == 0
    again = run_cli(cli, "-d", url, "persons", "name", second, "madonna")
    assert again.exit_code == 1
    assert again.stderr.strip() == (
        f"Error: person {first} is already named 'Madonna'; merge them if they are one "
        f"person, or give both the name: `rbv persons merge {first[:8]} {second[:8]}` or "
        f"`rbv persons name {second[:8]} madonna --force`")
    merged = run_cli(cli, "-d", url, "persons", "merge", first, second)
    assert merged.exit_code == 0, merged.output
    shown = run_cli(cli, "-d", url, "persons", "show", "Madonna", "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["person"] == first

    forced = run_cli(cli, "-d", url, "persons", "name", persons[2]["id"], "Madonna", "--force")
    assert forced.exit_code == 0, forced.output


def _assignments(settings: Settings) -> dict[int, tuple[str | None, str | None]]:
    with open_database(settings).connect() as conn:
        return {f: (p and str(p), a) for f, p, a in conn.execute(
            "SELECT id, person_id, assigned_by FROM face_detections")}


def test_dry_runs_of_split_move_and_merge_change_nothing(cli,
                                                         faces_settings: Settings) -> None:
    url, persons = _setup(cli, faces_settings)
    big, other = persons[0], persons[1]
    before = _assignments(faces_settings)
    split = run_cli(cli, "-d", url, "persons", "split", big["id"], "--threshold", "0.9",
                    "--dry-run", "--json")
    assert split.exit_code == 0, split.output
    result = json.loads(split.stdout)
    assert len(result["sizes"]) > 1 and sum(result["sizes"]) == big["faces"]
    assert result["new_persons"] == [] and result["dry_run"] is True
    said = run_cli(cli, "-d", url, "persons", "split", big["id"], "--threshold", "0.9",
                   "--dry-run")
    assert said.exit_code == 0 and said.stdout.rstrip().endswith(
        "Dry run: nothing was changed."), said.output
    face = json.loads(run_cli(cli, "-d", url, "persons", "show", big["id"], "--json"
                              ).stdout)["faces"][0]["id"]
    moved = run_cli(cli, "-d", url, "persons", "move", str(face), "--to", other["id"],
                    "--dry-run")
    assert moved.exit_code == 0, moved.output
    assert moved.stdout.strip() == (f"Would move 1 face to person {other['id'][:8]}. Dry "
                                    "run: nothing was changed.")
    merged = run_cli(cli, "-d", url, "persons", "merge", big["id"], other["id"], "--dry-run")
    assert merged.exit_code == 0, merged.output
    assert f"{other['faces']:,} faces would move" in merged.stdout
    assert _assignments(faces_settings) == before
    listed = run_cli(cli, "-d", url, "persons", "list", "--json", "--limit", "0")
    assert json.loads(listed.stdout) == persons


def test_two_faces_of_one_photo_never_go_into_one_person(cli,
                                                          faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    with open_database(faces_settings).connect() as conn:
        a, b = conn.execute("SELECT (array_agg(id ORDER BY id))[1:2] FROM face_detections "
                            "GROUP BY image_id HAVING count(*) > 1 ORDER BY min(id) LIMIT 1"
                            ).fetchone()[0]
    first = run_cli(cli, "-d", url, "persons", "move", str(a))
    assert first.exit_code == 0, first.output
    person_a = first.stdout.strip().split()[-1].rstrip(".")
    second = run_cli(cli, "-d", url, "persons", "move", str(b))
    person_b = second.stdout.strip().split()[-1].rstrip(".")
    before = _assignments(faces_settings)
    refusal = (f"Error: faces {a}, {b} would be in one person but are of one photo (a person "
               "has one face per photo); first move the wrong face of each photo elsewhere: "
               f"`rbv persons move {a}` or `rbv persons move {b}`")
    for args in (["move", str(b), "--to", person_a], ["merge", person_a, person_b],
                 ["move", str(a), str(b)]):
        result = run_cli(cli, "-d", url, "persons", *args)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.strip() == refusal, args
    assert _assignments(faces_settings) == before


def test_naming_a_person_its_own_name_changes_nothing_and_logs_no_edit(
        cli, faces_settings: Settings) -> None:
    """Issue 31 #8: renaming a person to the name it has was logged as an edit."""
    url, persons = _setup(cli, faces_settings)
    assert run_cli(cli, "-d", url, "persons", "name", persons[0]["id"], "Ada").exit_code == 0
    again = run_cli(cli, "-d", url, "persons", "name", "Ada", " Ada ")
    assert again.exit_code == 0, again.output
    assert "already; nothing changed" in again.stdout
    history = json.loads(run_cli(cli, "-d", url, "persons", "history", "--json").stdout)
    assert [e["command"] for e in history] == ["persons name"]


def test_an_edit_meeting_another_names_the_pack_and_when_the_other_began(
        cli, faces_settings: Settings) -> None:
    """Issue 31 #8: the refusal said "pack #1" and the time the other side's connection
    was opened (for `rbv serve`'s kept connections, long before its edit began)."""
    import re
    from datetime import datetime

    from rbv.store.server.connection import PooledDatabase
    from rbv.store.server.locks import person_lock, server_now

    url, persons = _setup(cli, faces_settings)
    pooled = PooledDatabase(open_database(faces_settings))
    with pooled.connect() as conn:
        opened = server_now(conn).replace(microsecond=0)
        pack_id, pack = conn.execute("SELECT id, name FROM model_packs").fetchone()
    # until the server's clock is past the second that connection was opened in
    while True:
        with pooled.connect() as conn:
            if server_now(conn).replace(microsecond=0) > opened:
                break
    with pooled.connect() as conn:
        before = server_now(conn).replace(microsecond=0)
    with person_lock(pooled, pack_id, pack):  # on the kept connection, opened earlier
        refused = run_cli(cli, "-d", url, "persons", "name", persons[0]["id"], "Bea")
    pooled.close()
    assert refused.exit_code != 0
    said = re.search(rf"running on pack {re.escape(pack)} since (\d\d:\d\d:\d\d)",
                     refused.stderr)
    assert said, refused.stderr
    began = datetime.strptime(said[1], "%H:%M:%S").time()
    assert began >= before.time(), (said[1], before, opened)


def test_a_name_that_is_not_one_line_of_text_is_refused_on_one_line(
        cli, faces_settings: Settings) -> None:
    """Issue 54 #9: `rbv persons name Madonna $'Mad\\xffonna'` was "unexpected
    InvalidTextRepresentation … (a bug in rbv)", and a name with a newline was taken.
    Bytes that are not UTF-8, a lone surrogate and control characters (newline, tab,
    DEL, C1, NUL, a line separator) are refused with one `Error:` line, changing
    nothing; the same rule the review page applies."""
    import subprocess
    import sys

    url, persons = _setup(cli, faces_settings)
    assert run_cli(cli, "-d", url, "persons", "name", persons[0]["id"], "Madonna"
                   ).exit_code == 0
    env = {"PATH": "/usr/bin:/bin", "HOME": str(faces_settings.data_dir),
           "RBV_DATA_DIR": str(faces_settings.data_dir), "DATABASE_URL": url}
    for args in ([b"persons", b"name", b"Madonna", b"Mad\xffonna"],
                 [b"persons", b"show", b"Mad\xffonna"]):
        done = subprocess.run([sys.executable.encode(), b"-m", b"rbv", *args],
                              capture_output=True, env=env, timeout=300, check=False)
        assert done.returncode == 1, done.stderr
        assert done.stderr.count(b"\n") == 1 and b"bug" not in done.stderr, done.stderr
        assert b"not UTF-8 (\\xff)" in done.stderr, done.stderr
    for name in ("Ada\nLovelace", "Ada\tL", "Ada\x7f", "Ada\x85", "Ada\x00", "Ada\ud800",
                 "Ada\u2028L", "\x1b[2JAda"):
        done = run_cli(cli, "-d", url, "persons", "name", "Madonna", name)
        assert done.exit_code == 1, (name, done.output)
        lines = done.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: a name holds "), lines
        assert "bug" not in done.output
    history = json.loads(run_cli(cli, "-d", url, "persons", "history", "--json").stdout)
    assert [e["command"] for e in history] == ["persons name"]
    with open_database(faces_settings).connect() as conn:
        assert conn.execute("SELECT name FROM person_names").fetchall() == [("Madonna",)]

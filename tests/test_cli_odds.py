"""Odds and ends of daily use at the terminal (issue 24 #6)."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from rbv.config import Settings
from tests.conftest import run_cli

pytestmark = pytest.mark.slow  # ~8 s: rbv subprocesses (pipes, signals, locales)


def _into_a_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """`rbv ARGS | head` where head has already exited: the reader end is closed before
    rbv writes a byte (it takes far longer to start than this takes to close it)."""
    reader, writer = os.pipe()
    os.close(reader)
    env = {**os.environ, "DATABASE_URL": "", "RBV_DATABASE_URL": ""}
    try:
        return subprocess.run([sys.executable, "-m", "rbv", *args], stdout=writer,
                              stderr=subprocess.PIPE, text=True, env=env, timeout=120,
                              check=False)
    finally:
        os.close(writer)


def test_a_pipe_closed_early_ends_quietly(settings: Settings) -> None:
    url = str(settings.database_url)
    for args in (["-d", url, "stats", "--json"], ["-d", url, "stats"],
                 ["import-folders", "--help"]):
        done = _into_a_closed_pipe(*args)
        assert (done.returncode, done.stderr) == (1, ""), args  # was "Error: Broken pipe"


def test_psql_url_and_the_readme_agree_on_the_embedded_server(cli, settings: Settings,
                                                              tmp_path: Path) -> None:
    refused = run_cli(cli, "psql", "--url", env={"RBV_DATA_DIR": str(tmp_path / "data")})
    assert refused.exit_code == 1
    assert refused.stderr.startswith("Error: --url needs a server that outlives this "
                                     "command")  # tests/test_store.py has the whole line
    given = run_cli(cli, "-d", str(settings.database_url), "psql", "--url")
    assert given.exit_code == 0, given.output
    assert given.stdout.strip().startswith("postgresql://")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `psql` |"))
    assert ("`--url` prints the connection URL of a server you run (`--database`/"
            "`DATABASE_URL`: the embedded one stops when rbv exits; `rbv db start` keeps it "
            "up and prints its URL)") in row


def test_psql_passes_its_own_options_on(settings: Settings) -> None:
    """Issue 31 #8: `rbv psql -At -c SQL` (psql's unaligned, tuples-only output, for
    scripts) was refused as an unknown option."""
    env = {**os.environ, "DATABASE_URL": str(settings.database_url)}
    done = subprocess.run([sys.executable, "-m", "rbv", "psql", "-At", "-c",
                           "SELECT 40 + 2, 'x'"], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "42|x\n", "")
    done = subprocess.run([sys.executable, "-m", "rbv", "psql", "--csv", "-c",
                           "SELECT 1 AS n"], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert (done.returncode, done.stdout) == (0, "n\n1\n"), done.stderr


def test_the_readmes_psql_count_of_persons_is_what_persons_list_counts(
        cli, faces_settings: Settings) -> None:
    """Issue 52 #9: the README's `rbv psql -c "SELECT count(*) FROM persons"` counted
    merged-away persons (318 where `persons list` showed 311). Its command, run as
    written after a merge and a hide, counts what `persons list` lists."""
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster").exit_code == 0
    ids = [p["id"] for p in json.loads(run_cli(cli, "-d", url, "persons", "list",
                                               "--json").stdout)]
    for edit in (["merge", ids[0], ids[1], ids[2]], ["hide", ids[3]]):
        assert run_cli(cli, "-d", url, "persons", *edit).exit_code == 0, edit
    listed = json.loads(run_cli(cli, "-d", url, "persons", "list", "--limit", "0",
                                "--json").stdout)
    assert len(listed) == len(ids) - 3
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `psql` |"))
    command = shlex.split(re.findall(r"`(rbv psql [^`]*)`", row)[-1])
    assert command[:3] == ["rbv", "psql", "-c"] and "FROM persons" in command[3]
    done = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True,
                          env={**os.environ, "DATABASE_URL": url}, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:3] == ["count", "-------", str(len(listed))], done.stdout


def test_show_without_out_names_the_file_by_the_person_and_says_where_it_is(
        cli, faces_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster").exit_code == 0
    person = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)[0]
    assert run_cli(cli, "-d", url, "persons", "name", person["id"], "Ada Lovelace"
                   ).exit_code == 0
    monkeypatch.chdir(tmp_path)
    shown = run_cli(cli, "-d", url, "show", "ada", env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    sheet = json.loads(run_cli(cli, "-d", url, "show", "ada", "--json").stdout)
    assert " ".join(shown.stdout.split()) == (
        f"Wrote {tmp_path / 'Ada_Lovelace.png'} ({sheet['tiles']} faces, "
        f"{sheet['columns']}×{sheet['rows']} tiles, {sheet['width']}×{sheet['height']} px).")
    assert (tmp_path / "Ada_Lovelace.png").stat().st_size > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Ada_Lovelace.png"]


def test_persons_merge_move_hide_take_json_and_dry_run_like_faces_edits(
        cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster").exit_code == 0
    persons = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)
    ada, other, third = persons[0], persons[1], persons[2]
    assert run_cli(cli, "-d", url, "persons", "name", ada["id"], "Ada Lovelace").exit_code == 0

    def edit(*args: str) -> dict:  # type: ignore[type-arg]
        done = run_cli(cli, "-d", url, "persons", *args, "--json")
        assert done.exit_code == 0, done.output
        return json.loads(done.stdout)

    would = edit("merge", "ada", other["id"], "--dry-run")
    assert would == {"person": ada["id"], "name": "Ada Lovelace", "faces": other["faces"],
                     "merged": [other["id"]], "overrides": "", "dry_run": True}
    assert edit("merge", "ada", other["id"]) == {**would, "dry_run": False}
    face = json.loads(run_cli(cli, "-d", url, "persons", "show", third["id"], "--json"
                              ).stdout)["faces"][0]["id"]
    assert edit("move", str(face), "--to", "ada") == {
        "person": ada["id"], "name": "Ada Lovelace", "faces": 1, "new_person": False,
        "overrides": "", "dry_run": False}

    hidden = run_cli(cli, "-d", url, "persons", "hide", "ada", "--dry-run")
    assert hidden.stdout == ("Would hide 1 person: Ada Lovelace. Dry run: nothing was "
                             "changed.\n")
    listed = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)
    assert ada["id"] in {p["id"] for p in listed}
    assert edit("hide", "ada") == {"persons": [ada["id"]], "hidden": True, "count": 1,
                                   "dry_run": False}
    listed = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)
    assert ada["id"] not in {p["id"] for p in listed}


def test_eras_say_when_only_some_faces_have_a_year(cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster").exit_code == 0
    person = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)[0]
    face = json.loads(run_cli(cli, "-d", url, "persons", "show", person["id"], "--json"
                              ).stdout)["faces"][0]["id"]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("UPDATE images SET taken_at = NULL")
        conn.execute("UPDATE images SET taken_at = '2019-06-01' WHERE id = "
                     "(SELECT image_id FROM face_detections WHERE id = %s)", (face,))
    doc = json.loads(run_cli(cli, "-d", url, "eras", person["id"], "--json").stdout)
    assert doc["faces_with_year"] == 1 and doc["faces"] > 1
    shown = run_cli(cli, "-d", url, "eras", person["id"], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    assert shown.stdout.splitlines()[1:] == [
        f"  era {i}: {e['faces']:>4} faces, "
        + ("2019" if e["face_ids"] == [face] else "only 1 with a year: 2019"
           if face in e["face_ids"] else "no year") + (", thin" if e["thin"] else "")
        for i, e in enumerate(doc["eras"], 1)]


def test_persons_list_and_history_leave_the_clustering_stack_unimported(
        settings: Settings) -> None:
    """Issue 24 #8: numpy and scipy cost seconds of every `rbv persons …` start; only the
    commands that compute with them import them."""
    for args in (["persons", "list"], ["persons", "history"]):
        code = ("import sys\nfrom typer.testing import CliRunner\nfrom rbv.cli.app import app\n"
                f"done = CliRunner().invoke(app, {['-d', str(settings.database_url), *args]!r})\n"
                "assert done.exit_code == 0, done.output\n"
                "print(sorted(m for m in ('numpy', 'scipy', 'sklearn') if m in sys.modules))")
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=120, check=False)
        assert (done.returncode, done.stdout) == (0, "[]\n"), (args, done.stderr)


HEAVY = ("numpy", "scipy", "sklearn", "numba", "faiss", "cv2", "onnxruntime")


def test_persons_edits_leave_the_clustering_stack_unimported(
        cli, faces_settings: Settings) -> None:
    """Issue 24 #8: a persons or faces edit is SQL (the edit log and its triggers live in
    the database): none of them imports numpy, scipy, sklearn, numba, faiss, cv2 or
    onnxruntime. All edits run in one interpreter; it prints the first command that
    brought one in."""
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster").exit_code == 0
    listed = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)
    a, b, c = (p["id"] for p in listed[:3])
    faces = [f["id"] for f in json.loads(run_cli(cli, "-d", url, "persons", "show", a,
                                                 "--json").stdout)["faces"]]
    other = json.loads(run_cli(cli, "-d", url, "persons", "show", c, "--json"
                               ).stdout)["faces"][0]["id"]
    edits = [["persons", "name", a, "Ada"], ["persons", "rename", "Ada", "Ada L"],
             ["persons", "merge", a, b], ["persons", "move", str(faces[0]), "--to", c],
             ["persons", "not-this-person", c, str(faces[0])],
             ["persons", "hide", c], ["persons", "unhide", c],
             ["faces", "same", str(faces[1]), str(faces[2])],
             ["faces", "different", str(faces[1]), str(other)]]
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom rbv.cli.app import app\n"
            f"for args in {edits!r}:\n"
            f"    done = CliRunner().invoke(app, ['-d', {url!r}, *args])\n"
            "    assert done.exit_code == 0, (args, done.output)\n"
            f"    heavy = sorted(m for m in {HEAVY!r} if m in sys.modules)\n"
            "    if heavy:\n"
            "        print(args, heavy)\n"
            "        break\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
    assert (done.returncode, done.stdout) == (0, ""), done.stderr

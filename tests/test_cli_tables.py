"""Tables a user can read at 80 and 150 columns (issue 24 #3): one line per row where the
numbers are, long sentences in a legend, no reason column dropped, no empty table."""

from __future__ import annotations

import json
import textwrap
from datetime import datetime
from itertools import takewhile
from pathlib import Path

import pytest

from rbv.config import Settings
from tests.conftest import FACES, PACK, run_cli

pytestmark = pytest.mark.slow  # ~11 s: every table command on an indexed library


def _labelled(root: Path) -> Path:
    for name in ("Barack_Obama", "Matt_Damon"):
        (root / name).mkdir(parents=True)
        for photo in sorted((FACES / name).iterdir())[:3]:
            (root / name / photo.name).symlink_to(photo)
    return root


def test_eval_keeps_each_methods_scores_on_one_line_and_its_setting_in_a_legend(
        cli, settings: Settings, tmp_path: Path) -> None:
    folder = _labelled(tmp_path / "labelled")
    args = ["-d", str(settings.database_url), "eval", str(folder), "--model-pack", str(PACK)]
    report = json.loads(run_cli(cli, *args, "--json").stdout)
    for columns in (80, 150):
        result = run_cli(cli, *args, env={"COLUMNS": str(columns)})
        assert result.exit_code == 0, result.output
        lines = [line.rstrip() for line in result.stdout.splitlines()]
        assert max(len(line) for line in lines) <= columns
        header = lines.index("  method            clusters   pairwise P / R / F      "
                             "BCubed P / R / F")
        rows = [line.split() for line in lines[header + 2:header + 2 + len(report["scores"])]]
        assert rows == [
            [s["method"], str(s["clusters"]),
             *" / ".join(f"{s['pairwise'][k]:.3f}" for k in ("precision", "recall", "f1")).split(),
             *" / ".join(f"{s['bcubed'][k]:.3f}" for k in ("precision", "recall", "f1")).split()]
            for s in report["scores"]]
        legend = lines[lines.index("Settings:") + 1:]
        expected = [line for s in report["scores"] for line in textwrap.wrap(
            f"{s['method']}: {report['settings'][s['method']]}", width=columns - 1,
            initial_indent="  ", subsequent_indent="      ")]
        assert legend[:len(expected)] == expected


def test_export_swap_at_80_columns_keeps_the_reason_a_set_wrote_nothing(
        cli, faces_settings: Settings, tmp_path: Path) -> None:
    url = str(faces_settings.database_url)
    refined = run_cli(cli, "-d", url, "refine", str(tmp_path / "refined"), "--min-images", "3",
                      "--min-face", "30", "--no-crops")
    assert refined.exit_code == 0, refined.output
    args = ["-d", url, "export-swap", str(tmp_path / "refined" / "refine_manifest.json"),
            str(tmp_path / "swap"), "--model-pack", str(PACK), "--min-face", "5000"]
    result = run_cli(cli, *args, env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    summary = json.loads(run_cli(cli, *args, "--json").stdout)["facesets"]
    assert summary and all(s["written"] == 0 for s in summary)
    lines = [line.rstrip() for line in result.stdout.splitlines()]
    assert lines[0] == f"export-swap → {tmp_path / 'swap'}"  # whole, however long
    assert max(len(line) for line in lines[1:]) <= 80
    assert lines[2].split() == ["faceset", "name", "in", "written", "left", "out", "candidates"]
    rows = [line.split() for line in lines[4:4 + len(summary)]]
    assert rows == [[s["faceset"], *(s["name"] or "-").split(), str(s["faces_in"]), "0",
                     str(s["too_small"]), "too", "small", "0"] for s in summary]
    assert all(s["too_small"] == s["faces_in"] for s in summary)
    # issue 52 #8: no PNG, no bundle (they were 22-byte empty zips), and said so
    assert not list((tmp_path / "swap").rglob("*.fsz"))
    listing = json.loads((tmp_path / "swap" / "manifest.json").read_text())["facesets"]
    assert [(e["top"], e["all"]) for e in listing] == [(None, None)] * len(summary)
    said = " ".join(" ".join(lines[4 + len(summary):]).split())
    assert said == (f"No .fsz bundle for {', '.join(s['faceset'] for s in summary)}: "
                    'no face written (see "left out").')


def test_persons_review_at_80_columns_keeps_file_names_whole(
        cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster").exit_code == 0
    host = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)[0]["id"]
    report = json.loads(run_cli(cli, "-d", url, "persons", "review", host, "--json").stdout)
    shown = run_cli(cli, "-d", url, "persons", "review", host, env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    lines = [line.rstrip() for line in shown.stdout.splitlines()]
    assert max(len(line) for line in lines) <= 80
    header = lines.index("  face   similarity   z     photo")
    under = FACES.parent
    assert [line.split() for line in lines[header + 2:header + 2 + len(report["faces"])]] == [
        [str(f["id"]), f"{f['similarity']:.2f}", f"{f['z']:.1f}",
         str(Path(f["path"]).relative_to(under))] for f in report["faces"]]
    assert not report["doubtful"]
    assert f"photo: under {under}/" in lines


def test_stats_on_an_empty_database_says_so_and_runs_show_seconds(
        cli, settings: Settings) -> None:
    url = str(settings.database_url)
    empty = run_cli(cli, "-d", url, "stats", env={"COLUMNS": "200"})
    assert empty.exit_code == 0, empty.output
    assert empty.stdout.splitlines()[1:] == [
        "No photos indexed yet: `rbv index FOLDER` finds the faces in a folder's photos."]
    assert run_cli(cli, "-d", url, "prune").exit_code == 0
    runs = json.loads(run_cli(cli, "-d", url, "stats", "--json").stdout)["last_runs"]
    assert runs, "prune is a recorded run"
    shown = run_cli(cli, "-d", url, "stats", env={"COLUMNS": "80"})
    lines = shown.stdout.splitlines()
    row = lines[lines.index(next(line for line in lines if "Last runs" in line)) + 4].split()
    started = datetime.fromisoformat(runs[0]["started_at"])
    finished = datetime.fromisoformat(runs[0]["finished_at"])
    assert row == [runs[0]["command"], runs[0]["status"], f"{started:%Y-%m-%d}",
                   f"{started:%H:%M:%S}", f"{finished:%H:%M:%S}"]


def test_persons_review_with_long_paths_keeps_ids_numbers_and_headers_whole(
        cli, settings: Settings, tmp_path: Path) -> None:
    """Issue 31 #8: with photo paths wider than the terminal, `persons review` at 80
    columns showed the photo column alone (ids, similarity and z empty), with shorter
    ones it cut face ids ("30" / "4"), and at 100 columns its headers ("fac / e")."""
    url = str(settings.database_url)
    photos = sorted((FACES / "Barack_Obama").iterdir())[:4]
    for i, photo in enumerate(photos):
        folder = tmp_path / "lib" / (f"{i}_holiday_with_the_whole_family_at_the_seaside_" * 2)
        folder.mkdir(parents=True)
        (folder / photo.name).symlink_to(photo)
    index = run_cli(cli, "-d", url, "index", str(tmp_path / "lib"), "--model-pack", str(PACK))
    assert index.exit_code == 0, index.output
    assert run_cli(cli, "-d", url, "cluster").exit_code == 0
    host = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)[0]["id"]
    report = json.loads(run_cli(cli, "-d", url, "persons", "review", host, "--json").stdout)
    assert len(report["faces"]) >= 2
    for columns in (80, 100, 150):
        shown = run_cli(cli, "-d", url, "persons", "review", host,
                        env={"COLUMNS": str(columns)})
        assert shown.exit_code == 0, shown.output
        lines = [line.rstrip() for line in shown.stdout.splitlines()]
        # The photos' common folder is named whole on a line of its own, however long
        # pytest's temporary folder makes it (pytest -n 2 adds popen-gwN/); the rest fits.
        under = f"photo: under {tmp_path / 'lib'}/"
        assert under in lines, lines
        assert max(len(line) for line in lines if line != under) <= columns, lines
        header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["face"])
        assert lines[header].split() in (["face", "similarity", "z", "photo"],
                                         ["face", "similarity", "z", "doubtful", "photo"]
                                         ), lines[header]
        rows = [line.split() for line in lines[header + 2:] if line[:8].strip()]
        assert [r[:3] for r in rows[:len(report["faces"])]] == [
            [str(f["id"]), f"{f['similarity']:.2f}",
             "-" if f["z"] is None or f["z"] == float("inf") else f"{f['z']:.1f}"]
            for f in report["faces"]], (columns, lines)


def test_persons_history_at_80_columns_reads_what_across(
        cli, faces_settings: Settings) -> None:
    """Issue 52 #7: at 80 columns `persons history` left "what" 13 characters (a merge
    took 17 lines). "what" keeps 36 characters at least: each edit reads across a few
    lines, the same words as on a wide terminal; "rows", then "when", are left out."""
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster").exit_code == 0
    ids = [p["id"] for p in json.loads(run_cli(cli, "-d", url, "persons", "list",
                                               "--json").stdout)]
    face = json.loads(run_cli(cli, "-d", url, "persons", "show", ids[2], "--json").stdout)
    for edit in (["persons", "name", ids[0], "Ada Lovelace, Countess of Lovelace"],
                 ["persons", "merge", ids[0], ids[1]],
                 ["persons", "not-this-person", ids[2], str(face["faces"][0]["id"])],
                 ["persons", "hide", ids[3]], ["persons", "undo"]):
        assert run_cli(cli, "-d", url, *edit).exit_code == 0, edit
    logged = json.loads(run_cli(cli, "-d", url, "persons", "history", "--json").stdout)

    def whats(columns: int) -> tuple[list[str], dict[str, str]]:
        shown = run_cli(cli, "-d", url, "persons", "history", env={"COLUMNS": str(columns)})
        assert shown.exit_code == 0, shown.output
        lines = [line.rstrip() for line in shown.stdout.splitlines()]
        assert max(len(line) for line in lines) <= columns
        header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["edit"])
        at = lines[header].index("what")
        rows: dict[str, list[str]] = {}
        for line in takewhile(str.strip, lines[header + 2:]):  # the caption apart
            if line.split()[0].startswith("#"):
                rows[line.split()[0]] = []
            if rows and line[at:].strip():
                rows[list(rows)[-1]].append(line[at:].strip())
        return lines[header].split(), {edit: " ".join(parts) for edit, parts in rows.items()}

    _, wide = whats(400)
    assert list(wide) == [f"#{e['id']}" for e in logged]
    headers, narrow = whats(80)
    assert narrow == wide  # every word, none cut
    assert headers == ["edit", "command", "state", "what"]
    merge = next(f"#{e['id']}" for e in logged if e["command"] == "persons merge")
    assert len(wide[merge]) > 36
    lines = run_cli(cli, "-d", url, "persons", "history", env={"COLUMNS": "80"}
                    ).stdout.splitlines()
    first = next(i for i, line in enumerate(lines) if line.split()[:1] == [merge])
    below = takewhile(lambda line: line.strip() and not line.split()[0].startswith("#"),
                      lines[first + 1:])
    assert 1 + len(list(below)) <= 3, lines

"""What a user reads in daily use at the terminal (issue 24): a first run offline, hints
instead of silent zeros, odds and ends."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from rbv.config import Settings
from rbv.words import counted
from tests.conftest import FACES, run_cli

pytestmark = pytest.mark.slow  # ~11 s: the daily commands end to end on real photos

COLUMNS_80 = {"COLUMNS": "80"}


def test_a_missing_model_pack_offline_is_one_line_that_says_where_to_put_it(
        cli, settings: Settings, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(next((FACES / "Barack_Obama").iterdir()).read_bytes())
    home = tmp_path / "home"
    result = run_cli(cli, "-d", str(settings.database_url), "index", str(photos),
                     env={"HOME": str(home), "RBV_MODEL_PACK": "rbv_no_such_pack"})
    assert result.exit_code == 1
    assert result.stdout == ""
    models = home / ".insightface" / "models"
    # no internet here; where there is, the model zoo answers that it has no such pack
    assert re.fullmatch(
        re.escape(f"Error: model pack 'rbv_no_such_pack' is not in {models} and could not "
                  "be downloaded (") + r"(github\.com cannot be (found|reached): offline\?|"
        r"the model zoo has no such pack)" + re.escape(
            "); unzip https://github.com/deepinsight/insightface/releases/download/"
            f"model-zoo/rbv_no_such_pack.zip into {models / 'rbv_no_such_pack'}/; or pass "
            "--model-pack PATH (or set RBV_MODEL_PACK) to a folder holding the .onnx "
            "files\n"), result.stderr), result.stderr


def test_zero_facesets_say_which_gate_dropped_what_and_the_flags_that_keep_more(
        cli, faces_settings: Settings, tmp_path: Path) -> None:
    url = str(faces_settings.database_url)
    counts = json.loads(run_cli(cli, "-d", url, "refine", str(tmp_path / "out"), "--dry-run",
                                "--json").stdout)["counts"]
    result = run_cli(cli, "-d", url, "refine", str(tmp_path / "out"), env=COLUMNS_80)
    assert result.exit_code == 0, result.output
    # One sentence, wrapped at 80 columns, with nothing wider (issue 62 #14)
    # (a line that is one path alone may be longer: a path is not broken, and this
    # test's own folder can be long, as under scripts/tools/loaded_suite.py)
    assert max(len(line) for line in result.stdout.splitlines()
               if str(tmp_path) not in line) <= 80
    assert " ".join(result.stdout.split()).endswith(
        f"No faceset: {counted(counts['too_small'], 'cluster')} had faces of fewer than 15 "
        f"different photos (--min-images lowers that); {counts['failed_quality']} of "
        f"{counts['faces']:,} faces failed the quality gate (--min-face 90, --min-blur 40, "
        f"--min-det 0.6 lower it). Wrote 0 facesets to {tmp_path / 'out'}.")
    assert counts["too_small"] > 0 and counts["failed_quality"] > 0


def test_folders_not_indexed_yet_get_a_hint_instead_of_zeros(
        cli, faces_settings: Settings, tmp_path: Path) -> None:
    url = str(faces_settings.database_url)
    folder = tmp_path / "unsorted"
    (folder / "Ada_Lovelace").mkdir(parents=True)
    photo = next((FACES / "Joe_Biden").iterdir())
    (folder / "Ada_Lovelace" / photo.name).write_bytes(photo.read_bytes())
    found = run_cli(cli, "-d", url, "discover", str(folder), str(tmp_path / "swap"),
                    "--dry-run", env=COLUMNS_80)
    assert found.exit_code == 0, found.output
    assert (f"No photo of {folder} is indexed: drop --dry-run, or run `rbv index FOLDER` "
            "first.") in found.stdout.splitlines()
    imported = run_cli(cli, "-d", url, "import-folders", str(folder), "--dry-run",
                       env=COLUMNS_80)
    assert imported.exit_code == 0, imported.output
    assert ("1 folder has no indexed photo (Ada_Lovelace): drop --dry-run "
            "(import-folders indexes it), or run `rbv index` first."
            ) in imported.stdout.splitlines()


def test_help_pages_wrap_paragraphs_indent_examples_and_leave_completion_to_the_root(
        cli) -> None:  # type: ignore[no-untyped-def]
    hide = run_cli(cli, "persons", "hide", "--help", env=COLUMNS_80)
    assert hide.exit_code == 0, hide.output
    lines = [line.rstrip() for line in hide.stdout.splitlines()]
    assert lines[2:15] == [
        "  Hide persons from `persons list` (their faces stay assigned; `--hidden` lists",
        "  them, `unhide` shows them again). Every `rbv cluster` run, whatever its",
        "  method, leaves a hidden person's faces where they are: none joins a visible",
        "  person. One command is one edit: one `rbv persons undo` shows them all again.",
        "  --unnamed --max-faces N hides the crowd of strangers: every visible unnamed",
        "  person with at most N faces and no birthday (--dry-run says how many, and",
        "  who).", "", "  Examples:", "",
        '      rbv persons hide 77c1 "Stranger"', "",
        "      rbv persons hide --unnamed --max-faces 2 --dry-run"]
    assert "Persons: names, unique parts of names, uuids" in hide.stdout
    # a wider terminal, a wider help (run as a program: Typer's test runner writes help
    # 80 columns wide whatever the terminal)
    folders = subprocess.run([sys.executable, "-m", "rbv", "import-folders", "--help"],
                             capture_output=True, text=True, timeout=120, check=True,
                             env={**os.environ, "COLUMNS": "100"})
    assert [line.strip() for line in folders.stdout.splitlines()][4:7] == [
        "Each sub-folder of ROOTS is one person, named after the folder. Its faces give the "
        "person's",
        "centroid in two passes (cosine similarity 0.45, then 0.55), so bystanders in the "
        "folder's photos",
        "drop out; one face per photo is kept. Faces are placed by hand (manual), so `rbv "
        "cluster` never"]
    for command in (["index"], ["persons", "list"], ["eval"]):
        shown = run_cli(cli, *command, "--help", env=COLUMNS_80)
        assert shown.exit_code == 0, shown.output
        assert "completion" not in shown.stdout, command
    assert "--install-completion" in run_cli(cli, "--help", env=COLUMNS_80).stdout

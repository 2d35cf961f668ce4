"""Issue 62 #12-13: words a person understands, at an 80-column terminal. The clustering
model's internals only with --verbose; the threshold echoed as given; every line of
index, cluster, suggest, review's split advice, not-faces and undo's refusal within 80
columns; counts in the singular for one."""

from __future__ import annotations

import json

from rbv.config import Settings
from tests.conftest import FACES, PACK, run_cli

WIDE = {"COLUMNS": "80"}


def _fits(output: str) -> None:
    assert output.strip(), "nothing printed"
    assert max(len(line.rstrip()) for line in output.splitlines()) <= 80, output


def _ok(cli, *args: str) -> str:  # type: ignore[no-untyped-def]
    done = run_cli(cli, *args, env=WIDE)
    assert done.exit_code == 0, done.output
    _fits(done.output)
    return done.output


def test_cluster_speaks_plainly_and_echoes_the_threshold_given(
        cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    first = " ".join(_ok(cli, "-d", url, "cluster").split())
    assert "impostor" not in first and "sigma" not in first and "tau" not in first
    assert "at most 10 pairs of different people" in first
    verbose = " ".join(_ok(cli, "-d", url, "cluster", "--full", "--verbose").split())
    assert "impostor model mu 0.100, sigma 0.087, tau 0.020" in verbose
    given = " ".join(_ok(cli, "-d", url, "cluster", "--threshold", "0.755").split())
    assert "at similarity 0.755 (--threshold)" in given
    assert "match threshold" not in given
    assert "a new face joins a known person at similarity 0.805 or more (the threshold + " \
           "0.05)" in given


def test_suggest_review_split_not_faces_and_undo_fit_80_columns(
        cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    _ok(cli, "-d", url, "cluster")
    suggested = _ok(cli, "-d", url, "persons", "suggest", "--min-score", "0", "--limit", "5")
    commands = [line.split(None, 1)[1] for line in suggested.splitlines()
                if "rbv persons merge" in line]
    assert commands and all(len(c.split()[3]) == 8 for c in commands), suggested
    reviewed = _ok(cli, "-d", url, "persons", "review")
    assert "rbv persons split " in reviewed  # this library holds one person of two halves
    persons = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)
    _ok(cli, "-d", url, "persons", "split", persons[0]["id"], "--dry-run")
    with_one = next(p for p in persons if p["faces"] >= 2)
    faces = json.loads(run_cli(cli, "-d", url, "persons", "show", with_one["id"], "--json"
                               ).stdout)["faces"]
    face = faces[0]["id"] if isinstance(faces[0], dict) else faces[0]
    _ok(cli, "-d", url, "persons", "not-this-person", with_one["id"], str(face))
    history = _ok(cli, "-d", url, "persons", "history")
    assert f"face {face} is not" in " ".join(history.split())  # not "face 528 are"
    _ok(cli, "-d", url, "cluster", "--full")
    refused = run_cli(cli, "-d", url, "persons", "undo", env=WIDE)
    assert refused.exit_code == 1 and refused.output.startswith("Error: edit #")
    _fits(refused.output)
    _ok(cli, "-d", url, "faces", "not-a-face", str(face))
    listed = _ok(cli, "-d", url, "faces", "not-faces")
    assert "1 face marked not a face" in listed and str(face) in listed
    undone = " ".join(_ok(cli, "-d", url, "persons", "undo").split())
    assert "Restored " in undone and "row(s)" not in undone


def test_index_summary_fits_80_columns_and_counts_one_image(cli, settings: Settings) -> None:
    url = str(settings.database_url)
    photo = sorted((FACES / "Barack_Obama").iterdir())[0]
    said = _ok(cli, "-d", url, "index", "--model-pack", str(PACK), str(photo))
    assert "Scanned 1 image: 1 face," in " ".join(said.split())

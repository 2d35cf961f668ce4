"""Issue 62 #12-13: words a person understands, at an 80-column terminal. The clustering
model's internals only with --verbose; the threshold echoed as given; every line of
index, cluster, suggest, review's split advice, not-faces and undo's refusal within 80
columns; counts in the singular for one."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import rbv
from rbv.config import Settings
from rbv.serve.app import ReviewServer
from tests.conftest import FACES, PACK, run_cli
from tests.serve_client import Client

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


def test_one_face_and_one_person_are_said_in_the_singular(
        cli, served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:
    """Issue 62 #13: "Moved 1 face(s)", "Hid 1 person(s)": one reads singular, in the CLI,
    in `rbv serve`'s answers and in the summaries `persons history` shows."""
    _, client = served
    url = str(faces_settings.database_url)
    persons = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)
    big, other = persons[0], persons[1]
    faces = json.loads(run_cli(cli, "-d", url, "persons", "show", big["id"], "--json"
                               ).stdout)["faces"]
    first, second = (f["id"] if isinstance(f, dict) else f for f in faces[:2])
    moved = " ".join(_ok(cli, "-d", url, "persons", "move", str(first), "--to",
                         other["id"]).split())
    assert moved == f"Moved 1 face to person {other['id'][:8]}.", moved
    taken = " ".join(_ok(cli, "-d", url, "persons", "not-this-person", big["id"],
                         str(second)).split())
    assert taken.startswith(f"1 face removed from person {big['id'][:8]}; it will not be "
                            "assigned to it again."), taken
    hid = " ".join(_ok(cli, "-d", url, "persons", "hide", other["id"], "--dry-run").split())
    assert hid.startswith("Would hide 1 person: "), hid

    answer = client.post("move", {"faces": [first], "to": big["id"]})
    assert answer.status == 200 and answer.json()["message"] == "Moved 1 face", answer.text
    answer = client.post("hide_these", {"persons": [other["id"]]})
    assert answer.json()["message"] == "Hid 1 person (the filter 'hidden' lists it)", \
        answer.text
    answer = client.post("hide_unnamed", {"max_faces": 1, "dry_run": True})
    assert " with at most 1 face (" in answer.json()["message"], answer.text
    _ok(cli, "-d", url, "persons", "hide", "--unnamed", "--max-faces", "1")
    summaries = [e["summary"] for e in json.loads(
        run_cli(cli, "-d", url, "persons", "history", "--json").stdout)]
    assert any(" unnamed person" in s and " with at most 1 face (" in s
               for s in summaries), summaries


# "face(s)", "person(s)", "match(es)": a count's noun in brackets. Code such as
# `pair_of(s)` or `float(s)` is no string literal, and SQL's `%(s)s` has no letter
# before its bracket.
HEDGED_PLURAL = re.compile(r"[A-Za-z]\((?:s|es)\)")
SOURCE = Path(rbv.__file__).parent


def _literals(code: str) -> list[tuple[int, str]]:
    """The string literals of Python ``code`` (f-strings' text parts too), by line."""
    return [(node.lineno, node.value) for node in ast.walk(ast.parse(code))
            if isinstance(node, ast.Constant) and isinstance(node.value, str)]


def test_no_string_in_rbv_hedges_a_plural_with_brackets() -> None:
    """Issue 62 #13: a count is said with `rbv.words.counted` ("1 face", "2 faces"), never
    as "2 face(s)": no string literal of rbv's code, and no page template, holds one."""
    found = [f"{path.relative_to(SOURCE)}:{line}: {text!r}"
             for path in sorted(SOURCE.rglob("*.py"))
             for line, text in _literals(path.read_text(encoding="utf-8"))
             if HEDGED_PLURAL.search(text)]
    found += [f"{path.relative_to(SOURCE)}:{n}: {line.strip()}"
              for path in sorted(SOURCE.rglob("*.html"))
              for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
              if HEDGED_PLURAL.search(line)]
    assert not found, "\n".join(found)
    # the check sees what it must, and not the code it must leave alone
    assert HEDGED_PLURAL.search(_literals('f"{n} face(s) moved"')[0][1])
    assert not any(HEDGED_PLURAL.search(t) for _, t in _literals(
        'pair_of(s); float(s); "WHERE id = ANY(%(s)s)"; "Skip (s)"'))

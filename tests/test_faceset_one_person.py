"""A faceset is one person: on the young photos of ``data/family`` (children of many
families, soft faces) `rbv refine` with its defaults made one faceset of 23 faces of 13
children (issue 31); refine and export-swap now never hold faces that `rbv cluster`'s
evidence rule keeps apart."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from rbv.config import Settings
from rbv.jobs.library.index import run_index
from rbv.store import open_database
from rbv.store.server.migrations import apply_pending
from tests.conftest import PACK, SHARED, _db_numbers, run_cli
from tests.pgserver import PasswordServer

pytestmark = pytest.mark.slow  # ~11 s: refine and export-swap on real photos

YOUNG = sorted((SHARED / "data" / "family" / "faces").glob("*/young__*"))


@pytest.fixture(scope="module")
def young_template(pg_server: PasswordServer, sface_analyzer,  # type: ignore[no-untyped-def]
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database with data/family's young photos indexed (172 photos)."""
    name = f"rbv_young_template_{os.getpid()}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    s = Settings(database_url=pg_server.url(name), data_dir=tmp_path_factory.mktemp("young"))
    db = open_database(s, require_schema=False)
    apply_pending(db)
    run_index(db, s, YOUNG, analyzer=sface_analyzer)
    yield name


@pytest.fixture
def young(pg_server: PasswordServer, young_template: str) -> str:
    """URL of a fresh copy of the young photos' database."""
    name = f"rbv_test_{os.getpid()}_{next(_db_numbers)}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{young_template}"')
    return str(pg_server.url(name))


def _json(cli, *args: str) -> dict:  # type: ignore[no-untyped-def]
    done = run_cli(cli, *args, "--json")
    assert done.exit_code == 0, done.output
    return dict(json.loads(done.stdout))


def _who(url: str) -> dict[int, tuple[str, str | None]]:
    """Face id → (the child's folder, its person after `rbv cluster`)."""
    with psycopg.connect(url) as conn:
        return {int(f): (Path(path).parent.name, person) for f, path, person in conn.execute(
            "SELECT f.id, min(p.path), f.person_id::text FROM face_detections f "
            "JOIN image_paths p ON p.image_id = f.image_id GROUP BY f.id")}


def test_refine_makes_no_faceset_of_several_children(cli, young: str,
                                                     tmp_path: Path) -> None:
    report = _json(cli, "-d", young, "refine", str(tmp_path / "defaults"), "--dry-run")
    who = _who(young)
    for fs in report["facesets"]:  # the defaults: ≥ 15 photos, faces ≥ 90 px
        children = Counter(who[f][0] for f in fs["face_ids"])
        assert len(children) == 1, (fs["folder"], children)

    # Smaller sets are allowed: each still lies inside one of the persons `rbv cluster`
    # makes of the same faces.
    relaxed = _json(cli, "-d", young, "refine", str(tmp_path / "relaxed"),
                    "--min-images", "3", "--dry-run")
    assert relaxed["facesets"]
    assert _json(cli, "-d", young, "cluster")["faces"] == len(who)
    persons = {f: p for f, (_, p) in _who(young).items()}
    for fs in relaxed["facesets"]:
        assert len({persons[f] for f in fs["face_ids"]}) == 1, fs["folder"]


def test_export_swap_keeps_one_person_of_a_manifest_that_lists_two(
        cli, young: str, tmp_path: Path) -> None:
    """A manifest from before this rule (or edited) that lists two persons' faces as
    one faceset: export-swap writes the faces of the one holding most of them."""
    refined = tmp_path / "refined"
    report = _json(cli, "-d", young, "refine", str(refined), "--min-images", "3",
                   "--no-crops")
    who = _who(young)
    big, *others = sorted(report["facesets"], key=lambda f: -len(f["face_ids"]))
    small = next(fs for fs in others if who[fs["face_ids"][0]][0] != who[big["face_ids"][0]][0]
                 and len(fs["face_ids"]) < len(big["face_ids"]))
    manifest_path = refined / "refine_manifest.json"
    manifest = json.loads(manifest_path.read_text())
    sets = {fs["folder"]: fs for fs in manifest["facesets"]}
    sets[big["folder"]]["faces"] += sets[small["folder"]]["faces"]
    manifest["facesets"] = [sets[big["folder"]]]
    manifest_path.write_text(json.dumps(manifest))

    out = _json(cli, "-d", young, "export-swap", str(manifest_path), str(tmp_path / "swap"),
                "--model-pack", str(PACK), "--min-face", "30")
    (summary,) = out["facesets"]
    assert summary["other_person"] == len(small["face_ids"])
    written = json.loads((tmp_path / "swap" / big["folder"] / "manifest.json").read_text())
    assert written["faces"]
    assert {f["face_id"] for f in written["faces"]} <= set(big["face_ids"])

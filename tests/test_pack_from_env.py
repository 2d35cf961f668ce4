"""The pack a review command works on when none is named: ``$RBV_MODEL_PACK``, as
their ``--help`` says (the last two sessions' notes: ``persons suggest``, ``persons
review --top`` and ``site`` read ``--model-pack`` only, and in a library of two packs
refused to choose although the environment named one)."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from rbv.config import Settings
from tests.conftest import PACK, SHARED, cluster_photos, run_cli

pytestmark = pytest.mark.slow  # a second pack indexed on real photos

FP512 = SHARED / "models" / "scrfd_fp512"


def test_the_review_commands_take_the_environments_pack_in_a_library_of_two(  # type: ignore[no-untyped-def]
        cli, faces_settings: Settings, tmp_path: Path) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.46").exit_code == 0
    second = run_cli(cli, "-d", url, "index", "--model-pack", str(FP512),
                     *map(str, cluster_photos()[:3]))
    assert second.exit_code == 0, second.output
    bare = run_cli(cli, "-d", url, "persons", "suggest", "--json")
    assert bare.exit_code == 1 and "several packs" in bare.output  # no pack named: refused
    env = {"RBV_MODEL_PACK": str(PACK)}
    for args in (["persons", "suggest", "--json", "--min-score", "0"],
                 ["persons", "review", "--json", "--top", "3"]):
        done = run_cli(cli, "-d", url, *args, env=env)
        assert done.exit_code == 0, done.output
        assert json.loads(done.stdout)["pack"] == PACK.name
    site = run_cli(cli, "-d", url, "site", str(tmp_path / "site"), "--json", env=env)
    assert site.exit_code == 0, site.output
    # --model-pack still wins over the environment, strictly
    other = run_cli(cli, "-d", url, "persons", "review", "--json", "--top", "3",
                    "--model-pack", FP512.name, env=env)
    assert other.exit_code == 0 and json.loads(other.stdout)["pack"] == FP512.name


def test_lists_and_marks_keep_to_the_environments_pack(  # type: ignore[no-untyped-def]
        cli, faces_settings: Settings) -> None:
    # persons list, persons hide --unnamed and faces not-a-face / is-a-face / not-faces
    # read --model-pack only, and in a library of two packs worked on both although the
    # environment named one (their --help: "Default: $RBV_MODEL_PACK").
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.46").exit_code == 0
    assert run_cli(cli, "-d", url, "index", "--model-pack", str(FP512),
                   *map(str, cluster_photos()[:3])).exit_code == 0
    assert run_cli(cli, "-d", url, "cluster", "--model-pack", FP512.name).exit_code == 0
    env = {"RBV_MODEL_PACK": str(PACK)}

    def listed(*extra: str, on: dict[str, str] | None = None) -> set[str]:
        done = run_cli(cli, "-d", url, "persons", "list", "--json", *extra, env=on)
        assert done.exit_code == 0, done.output
        return {p["pack"] for p in json.loads(done.stdout)}

    assert listed() == {PACK.name, FP512.name}  # no pack named anywhere: every pack's
    assert listed(on=env) == {PACK.name}
    assert listed("--model-pack", FP512.name, on=env) == {FP512.name}  # the option wins

    with psycopg.connect(url) as conn:
        other = conn.execute("SELECT f.id FROM face_detections f JOIN model_packs m "
                             "ON m.id = f.pack_id WHERE m.name = %s LIMIT 1",
                             (FP512.name,)).fetchone()[0]  # type: ignore[index]
    refused = run_cli(cli, "-d", url, "faces", "not-a-face", str(other), env=env)
    assert refused.exit_code == 1 and f"not of model pack {PACK.name!r}" in refused.output
    assert run_cli(cli, "-d", url, "faces", "not-a-face", str(other)).exit_code == 0
    marks = run_cli(cli, "-d", url, "faces", "not-faces", "--json", env=env)
    assert marks.exit_code == 0 and json.loads(marks.stdout)["not_faces"] == []  # the other's
    every = json.loads(run_cli(cli, "-d", url, "faces", "not-faces", "--json").stdout)
    assert len(every["not_faces"]) == 1
    hide = run_cli(cli, "-d", url, "persons", "hide", "--unnamed", "--max-faces", "1000",
                   "--dry-run", "--json", env=env)
    assert hide.exit_code == 0, hide.output
    hidden = {str(p["id"]) for p in json.loads(hide.stdout)["persons"]}
    packs = {p["id"]: p["pack"] for p in json.loads(
        run_cli(cli, "-d", url, "persons", "list", "--json").stdout)}
    assert hidden and {packs[p] for p in hidden} == {PACK.name}

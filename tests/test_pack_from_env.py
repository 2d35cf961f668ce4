"""The pack a review command works on when none is named: ``$RBV_MODEL_PACK``, as
their ``--help`` says (the last two sessions' notes: ``persons suggest``, ``persons
review --top`` and ``site`` read ``--model-pack`` only, and in a library of two packs
refused to choose although the environment named one)."""

from __future__ import annotations

import json
from pathlib import Path

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

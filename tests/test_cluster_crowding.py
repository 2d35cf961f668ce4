"""Crowding (cohort normalisation of evidence linkage): where strangers look alike,
merges must show more; one person's many photos never count as a crowd; and on the
family library (children, relatives, age gaps) the default keeps different people
apart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import psycopg
import pytest

from rbv.cluster.crowding import CAP, crowding
from rbv.cluster.evidence import ImpostorModel, evidence_linkage
from rbv.cluster.knn import build_knn_graph
from rbv.config import Settings
from tests.conftest import PACK, SHARED, run_cli

pytestmark = pytest.mark.slow  # ~15 s: crowded libraries indexed and clustered

MODEL = ImpostorModel(mu=0.1, sigma=0.087, tau=0.02)
FAMILY = SHARED / "data" / "family"


def _strangers(rng: np.random.Generator, n: int, centre_weight: float, dim: int = 128
               ) -> np.ndarray:
    """``n`` different people (one face each) sharing a common direction: the larger
    ``centre_weight``, the more alike they are (a crowd)."""
    centre = rng.normal(size=dim)
    x = centre_weight * centre / np.linalg.norm(centre) + rng.normal(size=(n, dim)) / np.sqrt(dim)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_faces_among_look_alike_strangers_are_crowded_and_others_are_not() -> None:
    rng = np.random.default_rng(0)
    alike, apart = _strangers(rng, 60, 0.8), _strangers(rng, 400, 0.0)
    x = np.vstack([alike, apart])
    graph = build_knn_graph(x, 30)
    crowd, level = crowding(graph, np.arange(len(x)), MODEL)
    assert level >= MODEL.mu
    assert np.median(crowd[:60]) > 0.05  # the look-alikes: more asked of their merges
    assert np.median(crowd[60:]) == 0.0 and crowd.max() <= CAP * MODEL.sigma + 1e-9


def test_one_person_s_many_photos_are_not_a_crowd_once_they_are_one_cluster() -> None:
    rng = np.random.default_rng(1)
    centre = rng.normal(size=128)
    person = centre / np.linalg.norm(centre) + 0.6 * rng.normal(size=(80, 128)) / np.sqrt(128)
    x = np.vstack([person / np.linalg.norm(person, axis=1, keepdims=True),
                   _strangers(rng, 400, 0.0)]).astype(np.float32)
    graph = build_knn_graph(x, 30)
    alone = crowding(graph, np.arange(len(x)), MODEL)[0]
    together = crowding(graph, np.r_[np.zeros(80, np.int64), np.arange(1, 401)], MODEL)[0]
    assert alone[:80].min() > 0  # each photo alone: its own person looks like a crowd
    assert together[:80].max() == 0.0  # its own cluster left out: no crowd at all


def test_a_crowd_of_look_alike_strangers_stays_apart_where_the_old_rule_joined_them() -> None:
    rng = np.random.default_rng(2)
    # 80 strangers whose similarity averages 0.38 (as children's faces in data/family)
    x = np.vstack([_strangers(rng, 80, 0.8), _strangers(rng, 600, 0.0)])
    graph = build_knn_graph(x, 30)
    before = evidence_linkage(x, graph, MODEL, 10.0, crowded=False)
    after = evidence_linkage(x, graph, MODEL, 10.0)
    assert np.bincount(before[:80]).max() >= 40  # one "person" gathered most of them
    assert np.bincount(after[:80]).max() <= 2


def test_the_family_library_default_is_precise_and_beats_every_other_rule(
    cli, tmp_path: Path
) -> None:
    """`rbv eval` on data/family (156 people: children and adults, parents and children,
    brothers and sisters): the default keeps different people apart (pairwise precision
    >= 0.85) and scores above every threshold method and the Immich-style rule."""
    env = {"RBV_DATA_DIR": str(Settings(data_dir=tmp_path / "data").data_dir)}
    assert run_cli(cli, "migrate", env=env).exit_code == 0
    result = run_cli(cli, "eval", str(FAMILY), "--model-pack", str(PACK), "--json", env=env)
    assert result.exit_code == 0, result.output
    scores = {s["method"]: s for s in json.loads(result.stdout)["scores"]}
    default = scores.pop("evidence")
    assert default["pairwise"]["precision"] >= 0.85, default
    assert all(default["pairwise"]["f1"] > s["pairwise"]["f1"] for s in scores.values()), scores


def test_persons_made_before_crowding_are_reported_with_what_to_run(
    cli, faces_settings: Settings
) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster").exit_code == 0
    with psycopg.connect(url) as conn:  # as an rbv before crowding recorded its run
        conn.execute("UPDATE model_packs SET settings = jsonb_set(settings, "
                     "'{last_clustering}', (settings->'last_clustering') - 'crowding')")
    again = run_cli(cli, "-d", url, "cluster")
    assert again.exit_code == 0, again.output
    said = " ".join(again.output.split())  # notes wrap at the terminal's width
    assert "made with another setting (evidence, budget 10, before crowding)" in said
    full = run_cli(cli, "-d", url, "cluster", "--full")
    assert "another setting" not in full.output + run_cli(cli, "-d", url, "cluster").output

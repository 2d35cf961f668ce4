"""`rbv persons suggest` and `rbv persons review` on real faces, and their ranking on
small synthetic arrays."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import numpy as np
from PIL import Image

from rbv.cluster.defaults import ImpostorModel
from rbv.cluster.suggestions import least_typical_first, suggest_merges
from rbv.config import Settings
from rbv.store import open_database
from tests.conftest import run_cli

SFACE = ImpostorModel(0.10, 0.087, 0.02)


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _people(rng: np.random.Generator, centres: np.ndarray, per: int, noise: float
            ) -> np.ndarray:
    return _unit(np.repeat(centres, per, axis=0)
                 + noise * rng.standard_normal((len(centres) * per, centres.shape[1])))


def test_fragments_of_one_person_rank_first_and_a_shared_photo_is_never_suggested() -> None:
    rng = np.random.default_rng(0)
    centres = _unit(rng.standard_normal((6, 64)))
    x = _people(rng, centres, 4, 0.12)  # person p's faces: rows 4p..4p+3
    # Persons: identity 0 split into codes 0 and 1; identity 1 into 2 and 3 (which share
    # a photo); identities 2..5 whole (codes 4..7).
    codes = np.array([0, 0, 1, 1, 2, 2, 3, 3] + [4] * 4 + [5] * 4 + [6] * 4 + [7] * 4)
    images = np.arange(len(x))
    images[7] = images[5]  # codes 2 and 3 each have a face in one photo
    ranked = suggest_merges(x, codes, images, SFACE)
    assert (ranked[0].a, ranked[0].b) == (0, 1) and ranked[0].probability > 0.9
    assert all({m.a, m.b} != {2, 3} for m in ranked)
    assert all(m.probability < 0.5 for m in ranked[1:])
    # A user said faces of 0 and 1 are different people: the pair now ranks last.
    demoted = suggest_merges(x, codes, images, SFACE, conflicts={(0, 1): 1})
    assert (demoted[-1].a, demoted[-1].b) == (0, 1) and demoted[-1].conflicts == 1


def test_least_typical_face_comes_first() -> None:
    rng = np.random.default_rng(1)
    centres = _unit(rng.standard_normal((2, 64)))
    person = np.concatenate([_people(rng, centres[:1], 6, 0.1), centres[1:]])
    fits = least_typical_first(person, SFACE)
    assert fits[0].row == 6 and fits[0].z < 3 < fits[1].z


def _face_identities(settings: Settings) -> dict[int, str]:
    """Face id -> identity folder of its photo (data/faces/<identity>/...) for the
    photos of one person; group photos of data/misc are left out."""
    with open_database(settings).connect() as conn:
        return {int(f): Path(p).parent.name for f, p in conn.execute(
            "SELECT f.id, min(p.path) FROM face_detections f JOIN image_paths p "
            "ON p.image_id = f.image_id GROUP BY f.id") if "/faces/" in p}


def test_suggest_ranks_true_merges_first_and_its_command_accepts_one(
        cli, faces_settings: Settings, tmp_path: Path) -> None:
    url = str(faces_settings.database_url)
    strict = run_cli(cli, "-d", url, "cluster", "--threshold", "0.7")
    assert strict.exit_code == 0, strict.output
    identity = _face_identities(faces_settings)

    def majority(person: str) -> str | None:
        shown = json.loads(run_cli(cli, "-d", url, "persons", "show", person, "--json").stdout)
        names = [identity[f["id"]] for f in shown["faces"] if f["id"] in identity]
        return max(set(names), key=names.count) if names else None

    done = run_cli(cli, "-d", url, "persons", "suggest", "--limit", "5", "--json",
                   "--sheet", str(tmp_path / "sheets"))
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    suggestions = report["suggestions"]
    assert len(suggestions) == 5
    # The strongest suggestions are true merges (where both persons have a face of a
    # labelled photo; group photos carry no label).
    judged = [(majority(s["keep"]["id"]), majority(s["merge"]["id"])) for s in suggestions]
    judged = [(a, b) for a, b in judged if a is not None and b is not None]
    assert len(judged) >= 3 and all(a == b for a, b in judged), judged
    sheet = Image.open(report["sheets"][0])
    assert sheet.width > 2 * 112 and sheet.height > 112

    top = suggestions[0]
    merged = run_cli(cli, "-d", url, *shlex.split(top["command"])[1:])
    assert merged.exit_code == 0, merged.output
    again = json.loads(run_cli(cli, "-d", url, "persons", "suggest", "--json").stdout)
    assert all(top["merge"]["id"] not in (s["keep"]["id"], s["merge"]["id"])
               for s in again["suggestions"])
    table = run_cli(cli, "-d", url, "persons", "suggest", "--limit", "3", env={"COLUMNS": "80"})
    assert table.exit_code == 0, table.output
    assert "…" not in table.stdout  # at 80 columns nothing is cut short
    assert f"rbv persons merge {again['suggestions'][0]['keep']['id']} " in table.stdout


def test_review_shows_a_stranger_first_and_one_command_takes_it_out(
        cli, faces_settings: Settings) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster").exit_code == 0
    identity = _face_identities(faces_settings)
    persons = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)
    host = persons[0]["id"]
    host_faces = [f["id"] for f in json.loads(run_cli(
        cli, "-d", url, "persons", "show", host, "--json").stdout)["faces"]]
    names = [identity[f] for f in host_faces if f in identity]
    host_identity = max(set(names), key=names.count)
    strangers = sorted(f for f, who in identity.items() if who != host_identity)[:2]
    moved = run_cli(cli, "-d", url, "persons", "move", *map(str, strangers), "--to", host)
    assert moved.exit_code == 0, moved.output
    assert run_cli(cli, "-d", url, "persons", "name", host, "Ada Lovelace").exit_code == 0

    done = run_cli(cli, "-d", url, "persons", "review", "ada lovelace", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert {f["id"] for f in report["faces"][:2]} == set(strangers)
    assert set(report["doubtful"]) == set(strangers)
    shown = run_cli(cli, "-d", url, "persons", "review", "ada lovelace", env={"COLUMNS": "80"})
    assert "…" not in shown.stdout  # photo paths wrap at 80 columns, never cut short
    assert "rbv persons not-this-person 'ada lovelace' " in shown.stdout
    rejected = run_cli(cli, "-d", url, *shlex.split(report["command"])[1:])
    assert rejected.exit_code == 0, rejected.output
    after = json.loads(run_cli(cli, "-d", url, "persons", "review", "Ada Lovelace", "--json"
                               ).stdout)
    assert not set(strangers) & {f["id"] for f in after["faces"]}
    assert after["doubtful"] == [] and after["command"] is None

"""`rbv refine` on real faces: the default gates, a faceset tree and manifest, and stable
numbers after more photos are indexed."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import psycopg
import pytest

from rbv.config import Settings
from rbv.jobs.library.index import run_index
from rbv.store import open_database
from tests.conftest import FACES, cluster_photos, run_cli

pytestmark = pytest.mark.slow  # ~10 s: refine on real faces, crops written

RELAXED = ("--min-images", "3", "--min-face", "30")


def _refine(cli, settings: Settings, out: Path, *args: str) -> dict:  # type: ignore[no-untyped-def]
    result = run_cli(cli, "-d", str(settings.database_url), "refine", str(out), "--json",
                     *args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _identity(path: str | None) -> str:
    assert path is not None
    p = Path(path)
    return p.parent.name if p.is_relative_to(FACES) else p.name


def test_refine_with_the_defaults(cli, faces_settings: Settings, tmp_path: Path) -> None:
    """With the defaults (≥ 15 different photos, faces ≥ 90 px, blur ≥ 40, det ≥ 0.6)
    the template's identities (at most 7 photos each) give no faceset, and the gate
    count is exactly the faces that fail one of the three gates."""
    report = _refine(cli, faces_settings, tmp_path / "out")
    with psycopg.connect(str(faces_settings.database_url)) as conn:
        failing = conn.execute(
            "SELECT count(*) FROM face_detections WHERE face_short < 90 OR blur < 40 "
            "OR det_score < 0.6").fetchone()[0]
    assert report["params"]["min_images"] == 15
    assert report["counts"]["failed_quality"] == failing > 0
    assert report["facesets"] == []
    manifest = json.loads((tmp_path / "out" / "refine_manifest.json").read_text())
    assert manifest["facesets"] == [] and manifest["params"]["min_face_short"] == 90.0
    # thresholds are similarities, as `rbv cluster`'s (issue 62 #12), under their own keys
    for params in (report["params"], manifest["params"]):
        assert {k: params[k] for k in ("initial_similarity", "merge_similarity",
                                       "outlier_similarity")} == {
            "initial_similarity": 0.45, "merge_similarity": 0.60, "outlier_similarity": 0.45}
        assert not {"initial", "merge", "outlier"} & set(params)


def test_refine_writes_pure_facesets_and_records_them(cli, faces_settings: Settings,
                                                      tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = _refine(cli, faces_settings, out, *RELAXED)
    manifest = json.loads((out / "refine_manifest.json").read_text())
    assert len(manifest["facesets"]) >= 4
    assert [f["number"] for f in manifest["facesets"]] == list(
        range(1, len(manifest["facesets"]) + 1))
    for fs in manifest["facesets"]:
        identities = Counter(_identity(f["path"]) for f in fs["faces"]
                             if Path(f["path"]).is_relative_to(FACES))
        assert len(identities) == 1, identities  # one person per faceset
        assert fs["images"] >= 3
        folder = out / fs["folder"]
        crops = sorted(folder.glob("face_*.jpg"))
        assert len(crops) == len(fs["faces"])
        assert {c.name for c in crops} == {f"face_{f['id']}.jpg" for f in fs["faces"]}
    with psycopg.connect(str(faces_settings.database_url)) as conn:
        stored = dict(conn.execute(
            "SELECT s.number, count(m.face_id) FROM facesets s JOIN faceset_faces m "
            "ON m.faceset_id = s.id WHERE s.active GROUP BY s.number").fetchall())
    assert stored == {f["number"]: len(f["faces"]) for f in manifest["facesets"]}
    assert report["run_id"] is not None


def test_second_run_after_new_photos_keeps_numbers(cli, faces_settings: Settings,
                                                   tmp_path: Path, sface_analyzer) -> None:
    out = tmp_path / "out"
    first = _refine(cli, faces_settings, out, *RELAXED)
    before = {f["number"]: set(f["face_ids"]) for f in first["facesets"]}
    who = {f["number"]: Counter(_identity(x["path"]) for x in json.loads(
        (out / "refine_manifest.json").read_text())["facesets"][i]["faces"]).most_common(1)[0][0]
        for i, f in enumerate(first["facesets"])}

    run_index(open_database(faces_settings), faces_settings, cluster_photos(later=True),
              analyzer=sface_analyzer)
    second = _refine(cli, faces_settings, out, *RELAXED)
    after = {f["number"]: set(f["face_ids"]) for f in second["facesets"]}
    manifest = json.loads((out / "refine_manifest.json").read_text())
    who_after = {f["number"]: Counter(_identity(x["path"]) for x in f["faces"]
                                      ).most_common(1)[0][0] for f in manifest["facesets"]}

    for number, faces in before.items():
        assert number in after, f"faceset_{number:03d} lost its number"
        # the faceset keeps (almost all of) its faces: a face may leave when new photos
        # move the centroid, but the set stays the same person
        assert len(faces & after[number]) >= 0.75 * len(faces)
        assert who_after[number] == who[number]
    assert sum(len(f) for f in after.values()) > sum(len(f) for f in before.values())
    for number in set(after) - set(before):
        assert number > max(before)
    assert not second["retired"]


def test_refine_leaves_out_hidden_persons_and_dry_run_writes_nothing(
    cli, faces_settings: Settings, tmp_path: Path
) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.46").exit_code == 0
    biggest = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)[0]
    assert run_cli(cli, "-d", url, "persons", "hide", biggest["id"]).exit_code == 0
    with psycopg.connect(url) as conn:
        hidden = {r[0] for r in conn.execute(
            "SELECT id FROM face_detections WHERE person_id = %s", (biggest["id"],))}

    dry = _refine(cli, faces_settings, tmp_path / "dry", *RELAXED, "--dry-run")
    assert dry["facesets"] and not (tmp_path / "dry").exists()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM facesets").fetchone()[0] == 0

    report = _refine(cli, faces_settings, tmp_path / "out", *RELAXED)
    assert report["facesets"]
    for fs in report["facesets"]:
        assert not hidden & set(fs["face_ids"])
        assert fs["person_id"] != biggest["id"]


def test_a_faceset_that_comes_back_gets_its_old_number(cli, faces_settings: Settings,
                                                       tmp_path: Path) -> None:
    first = _refine(cli, faces_settings, tmp_path / "a", *RELAXED)
    strict = _refine(cli, faces_settings, tmp_path / "b")  # the defaults find none
    assert strict["facesets"] == []
    assert strict["retired"] == [f["number"] for f in first["facesets"]]
    back = _refine(cli, faces_settings, tmp_path / "c", *RELAXED)
    assert {f["number"]: f["face_ids"] for f in back["facesets"]} == {
        f["number"]: f["face_ids"] for f in first["facesets"]}
    assert not any(f["new"] for f in back["facesets"])


def test_refine_keeps_a_rejected_face_out_of_that_persons_faceset(
    cli, faces_settings: Settings, tmp_path: Path
) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.46").exit_code == 0
    before = _refine(cli, faces_settings, tmp_path / "dry", *RELAXED, "--dry-run")
    owned = next(fs for fs in before["facesets"] if fs["person_id"])
    face = owned["face_ids"][0]
    rejected = run_cli(cli, "-d", url, "persons", "not-this-person", owned["person_id"],
                       str(face))
    assert rejected.exit_code == 0, rejected.output

    report = _refine(cli, faces_settings, tmp_path / "out", *RELAXED)
    again = next(fs for fs in report["facesets"] if fs["number"] == owned["number"])
    assert again["person_id"] == owned["person_id"]
    assert face not in again["face_ids"]
    assert set(again["face_ids"]) == set(owned["face_ids"]) - {face}


def test_a_named_person_is_one_faceset_unless_asked_to_split(
    cli, faces_settings: Settings, tmp_path: Path
) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.46").exit_code == 0
    persons = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)[:3]
    for i, person in enumerate(persons):
        assert run_cli(cli, "-d", url, "persons", "name", person["id"], f"Named {i}"
                       ).exit_code == 0
    # initial clusters this tight split a person's varied photos into several sets
    tight = ("--initial-similarity", "0.7", "--merge-similarity", "0.8", "--min-images", "2",
             "--min-face", "30", "--dry-run")

    def sets_of(report: dict) -> dict[str, list[dict]]:
        with psycopg.connect(url) as conn:
            owner = dict(conn.execute("SELECT id, person_id::text FROM face_detections"))
        return {p["id"]: [fs for fs in report["facesets"]
                          if any(owner[f] == p["id"] for f in fs["face_ids"])]
                for p in persons}

    split = sets_of(_refine(cli, faces_settings, tmp_path / "a", *tight, "--split-named"))
    assert any(len(s) > 1 for s in split.values()), split  # what refine did before

    kept = sets_of(_refine(cli, faces_settings, tmp_path / "b", *tight))
    for i, person in enumerate(persons):
        assert len(kept[person["id"]]) == 1, kept[person["id"]]
        assert kept[person["id"]][0]["person_name"] == f"Named {i}"

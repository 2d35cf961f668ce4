"""`rbv discover`: new facesets from a flat folder of mixed photos, the known facesets'
exported files left byte-identical."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import psycopg
import pytest

from rbv.config import Settings
from tests.conftest import CLUSTER_IDENTITIES, FACES, PACK, run_cli

pytestmark = pytest.mark.slow  # ~30 s: discover over real photos

RELAXED = ("--min-images", "3", "--min-face", "30")
KNOWN = ("Angelina_Jolie", "Katy_Perry")  # indexed in the template: in known facesets
NEW = ("Mark_Zuckerberg", "Jack_Dorsey")  # not indexed before


def _tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _mixed(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A flat folder, and who is in each of its photos (by file stem): of the known
    people, byte-identical copies of two indexed photos (their faces are in facesets)
    and two photos rbv has not seen; five photos each of two people rbv has never seen;
    all under names that say nothing."""
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    who: dict[str, str] = {}
    for identity in (*KNOWN, *NEW):
        photos = sorted((FACES / identity).iterdir())
        for photo in (photos[:2] + photos[-2:]) if identity in KNOWN else photos[:5]:
            stem = f"IMG_{len(who) + 1:04d}"
            who[stem] = identity
            shutil.copyfile(photo, mixed / f"{stem}{photo.suffix}")
    return mixed, who


def test_discover_adds_new_identities_and_leaves_known_facesets_byte_identical(
    cli, faces_settings: Settings, tmp_path: Path
) -> None:
    assert not set(NEW) & set(CLUSTER_IDENTITIES) and set(KNOWN) <= set(CLUSTER_IDENTITIES)
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.46").exit_code == 0
    refined = tmp_path / "refined"
    result = run_cli(cli, "-d", url, "refine", str(refined), *RELAXED, "--no-crops", "--json")
    assert result.exit_code == 0, result.output
    known = json.loads(result.stdout)["facesets"]
    swap = tmp_path / "swap"
    result = run_cli(cli, "-d", url, "export-swap", str(refined / "refine_manifest.json"),
                     str(swap), "--model-pack", str(PACK), "--min-face", "30")
    assert result.exit_code == 0, result.output
    before = _tree(swap)
    with psycopg.connect(url) as conn:
        rows_before = conn.execute(
            "SELECT s.number, s.active, array_agg(m.face_id ORDER BY m.face_id) FROM facesets s "
            "JOIN faceset_faces m ON m.faceset_id = s.id GROUP BY s.id ORDER BY 1").fetchall()
    mixed, who_is = _mixed(tmp_path)
    args = ("-d", url, "discover", str(mixed), str(swap), *RELAXED, "--swap-min-face", "30",
            "--model-pack", str(PACK))

    # index first (a dry run reads only what is indexed), then look before writing
    assert run_cli(cli, "-d", url, "index", str(mixed), "--model-pack", str(PACK)
                   ).exit_code == 0
    dry = run_cli(cli, *args, "--no-index", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    assert _tree(swap) == before
    assert plan["counts"]["photos"] == len(who_is)
    # refine's 0.45 for buffalo_l; the test pack's calibrated average-linkage threshold
    params = plan["params"]
    assert params["initial_similarity"] == 0.44 and "SFace" in params["initial_source"]
    # the known people's faces: in a faceset already, or near one's centroid
    assert plan["counts"]["in_facesets"] >= 3 and plan["counts"]["covered"] >= 3
    assert plan["clusters"] and all(c["survivors"] <= c["faces"] for c in plan["clusters"])
    assert len(plan["facesets"]) == len(NEW)

    # A named person with a faceset is one faceset: their new faces make no second one,
    # even where nothing else would keep them out (no centroid cover, 2 photos enough).
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.46").exit_code == 0
    later = [stem for stem, who in who_is.items() if who == KNOWN[0]][2:]  # not indexed before
    with psycopg.connect(url) as conn:
        faces_of = {f: (p, Path(path).stem) for f, p, path in conn.execute(
            "SELECT f.id, f.person_id::text, p.path FROM face_detections f JOIN image_paths p "
            "ON p.image_id = f.image_id WHERE p.path LIKE %s", (f"{mixed}/%",))}
    unseen = [f for f, (_, stem) in faces_of.items() if stem in later]
    owner = {faces_of[f][0] for f in unseen}
    assert len(owner) == 1 and None not in owner  # cluster put them in the known person
    assert any(fs["person_id"] in owner for fs in known)
    assert run_cli(cli, "-d", url, "persons", "name", owner.pop(), "Angelina Jolie"
                   ).exit_code == 0
    loose = json.loads(run_cli(cli, *args, "--no-index", "--dry-run", "--json",
                               "--covered-similarity", "1", "--min-images", "2").stdout)
    assert loose["counts"]["named_with_facesets"] == len(unseen)
    assert not {f for fs in loose["facesets"] for f in fs["face_ids"]} & set(unseen)

    result = run_cli(cli, *args, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    new = report["facesets"]
    assert [f["number"] for f in new] == [f["number"] for f in plan["facesets"]]
    assert min(f["number"] for f in new) == max(f["number"] for f in known) + 1

    after = _tree(swap)
    old_files = {k for k in before if k != "manifest.json"}
    assert {k: after[k] for k in old_files} == {k: before[k] for k in old_files}
    with psycopg.connect(url) as conn:
        assert conn.execute(
            "SELECT s.number, s.active, array_agg(m.face_id ORDER BY m.face_id) FROM facesets s "
            "JOIN faceset_faces m ON m.faceset_id = s.id WHERE s.discovered_from IS NULL "
            "GROUP BY s.id ORDER BY 1").fetchall() == rows_before
        paths = dict(conn.execute(
            "SELECT f.id, p.path FROM face_detections f JOIN image_paths p "
            "ON p.image_id = f.image_id WHERE p.path LIKE %s", (f"{mixed}/%",)).fetchall())
        marks = dict(conn.execute("SELECT number, discovered_from FROM facesets "
                                  "WHERE discovered_from IS NOT NULL").fetchall())
    assert marks == {f["number"]: str(mixed) for f in new}
    top = json.loads((swap / "manifest.json").read_text())
    assert [e["faceset"] for e in top["facesets"]] == [
        *(f["folder"] for f in known), *(f["folder"] for f in new)]
    people = set()
    for fs in new:
        who = {who_is[Path(paths[f]).stem] for f in fs["face_ids"]}
        assert len(who) == 1, who  # one new person per faceset, no known person's face
        people |= who
        folder = swap / fs["folder"]
        assert (folder / f"{fs['folder']}_all.fsz").is_file() and fs["written"] > 0
        mark = json.loads((folder / "provenance.json").read_text())
        assert mark["discovered_from"] == str(mixed) and mark["run_id"] == report["run_id"]
    assert people == set(NEW)

    again = run_cli(cli, *args, "--no-index", "--json")  # all known now: nothing new
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["facesets"] == []

    # export-swap run again from the refine manifest keeps the discovered sets listed
    result = run_cli(cli, "-d", url, "export-swap", str(refined / "refine_manifest.json"),
                     str(swap), "--model-pack", str(PACK), "--min-face", "30")
    assert result.exit_code == 0, result.output
    top = json.loads((swap / "manifest.json").read_text())
    assert [e["faceset"] for e in top["facesets"]] == [
        *(f["folder"] for f in new), *(f["folder"] for f in known)]

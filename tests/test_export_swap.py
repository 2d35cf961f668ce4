"""`rbv export-swap` on real faces: .fsz zips of 512×512 PNGs with exactly one
detectable face each, ranked by the composite score."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rbv.config import Settings
from rbv.jobs.exchange.export_swap import WEIGHTS
from tests.conftest import PACK, run_cli

pytestmark = pytest.mark.slow  # ~10 s: export-swap writes face sets

RELAXED = ("--min-images", "3", "--min-face", "30", "--no-crops")


def test_export_swap_bundles_single_face_pngs_ranked_by_score(
    cli, faces_settings: Settings, tmp_path: Path, sface_analyzer
) -> None:
    # Tight outlier and detection-score cuts leave faces of these identities outside
    # every faceset: the ones --candidates should rescue.
    result = run_cli(cli, "-d", str(faces_settings.database_url), "refine",
                     str(tmp_path / "refined"), *RELAXED, "--outlier-similarity", "0.7",
                     "--min-det", "0.8")
    assert result.exit_code == 0, result.output
    refined = tmp_path / "refined" / "refine_manifest.json"
    out = tmp_path / "swap"
    result = run_cli(cli, "-d", str(faces_settings.database_url), "export-swap", str(refined),
                     str(out), "--model-pack", str(PACK), "--min-face", "60", "--top", "3",
                     "--candidates", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    written = [s for s in summary["facesets"] if s["written"]]
    assert written, summary
    for s in summary["facesets"]:
        folder = out / s["faceset"]
        manifest = json.loads((folder / "manifest.json").read_text())
        faces = manifest["faces"]
        assert len(faces) == s["written"]
        scores = [f["score"] for f in faces]
        assert scores == sorted(scores, reverse=True)
        for f in faces:  # the score is the documented weighted sum of its parts
            assert 0.0 <= f["score"] <= 1.0
            assert f["score"] == pytest.approx(sum(WEIGHTS[k] * f[k] for k in WEIGHTS),
                                               abs=1e-3)
        with zipfile.ZipFile(folder / f"{s['faceset']}_all.fsz") as z:
            names = z.namelist()
            assert names == [f"{i}.png" for i in range(len(faces))]
            for name in names:
                png = Image.open(io.BytesIO(z.read(name)))
                assert png.format == "PNG" and png.size == (512, 512)
                found = sface_analyzer.detector.detect(np.asarray(png.convert("RGB")), 0.5)
                assert len(found) == 1, f"{s['faceset']}/{name}: {len(found)} faces"
        with zipfile.ZipFile(folder / f"{s['faceset']}_top3.fsz") as z:
            assert z.namelist() == [f"{i}.png" for i in range(min(3, len(faces)))]
            assert z.read("0.png") == (folder / "0.png").read_bytes() if faces else True
    top = json.loads((out / "manifest.json").read_text())
    assert [f["faceset"] for f in top["facesets"]] == [s["faceset"] for s in summary["facesets"]]

    # --candidates: faces in no faceset that match an identity closely and score well
    in_sets = {f["id"] for fs in json.loads(refined.read_text())["facesets"] for f in fs["faces"]}
    rescued = [c for s in summary["facesets"]
               for c in json.loads((out / s["faceset"] / "manifest.json").read_text())[
                   "candidates"]]
    assert rescued
    for c in rescued:
        assert c["face_id"] not in in_sets
        assert c["similarity"] >= 0.45 and c["score"] >= 0.40
        png = Image.open(out / c["file"])
        assert png.size == (512, 512)
        assert len(sface_analyzer.detector.detect(np.asarray(png.convert("RGB")), 0.5)) == 1


def test_export_swap_rejects_a_file_that_is_not_a_manifest(cli, faces_settings: Settings,
                                                           tmp_path: Path) -> None:
    bogus = tmp_path / "x.json"
    bogus.write_text("[1, 2]")
    result = run_cli(cli, "-d", str(faces_settings.database_url), "export-swap", str(bogus),
                     str(tmp_path / "o"), "--model-pack", str(PACK))
    assert result.exit_code == 1
    assert "is not a refine manifest" in result.stderr


def test_export_swap_on_a_manifest_with_no_faceset_says_so_at_once(
        cli, faces_settings: Settings, tmp_path: Path) -> None:
    """Issue 62 #14: on the manifest of a refine that made no faceset, export-swap loaded
    the models, ran 65 s and printed an empty table. It says at once that there is
    nothing to export, and writes nothing."""
    url = str(faces_settings.database_url)
    refined = run_cli(cli, "-d", url, "refine", str(tmp_path / "refined"), "--no-crops")
    assert refined.exit_code == 0 and "Wrote 0 facesets" in refined.stdout, refined.output
    manifest = tmp_path / "refined" / "refine_manifest.json"
    result = run_cli(cli, "-d", url, "export-swap", str(manifest), str(tmp_path / "swap"),
                     "--model-pack", str(PACK))
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    assert result.stderr == (f"Error: {manifest} lists no faceset (the refine that wrote it "
                             "made none: its output says why); nothing to export\n")
    assert not (tmp_path / "swap").exists()


def test_export_swap_honours_not_this_person_and_the_persons_name_now(
    cli, faces_settings: Settings, tmp_path: Path
) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.46").exit_code == 0
    result = run_cli(cli, "-d", url, "refine", str(tmp_path / "refined"), *RELAXED)
    assert result.exit_code == 0, result.output
    refined = tmp_path / "refined" / "refine_manifest.json"
    manifest = json.loads(refined.read_text())
    owned = next(fs for fs in manifest["facesets"] if fs["person_id"])
    manifest["facesets"] = [owned]  # the one faceset is enough here
    refined.write_text(json.dumps(manifest))
    face = owned["faces"][0]["id"]
    assert run_cli(cli, "-d", url, "persons", "not-this-person", owned["person_id"],
                   str(face)).exit_code == 0
    assert run_cli(cli, "-d", url, "persons", "name", owned["person_id"], "Ada Renamed"
                   ).exit_code == 0

    result = run_cli(cli, "-d", url, "export-swap", str(refined), str(tmp_path / "swap"),
                     "--model-pack", str(PACK), "--min-face", "30", "--json")
    assert result.exit_code == 0, result.output
    [summary] = json.loads(result.stdout)["facesets"]
    assert summary["name"] == "Ada Renamed" and summary["rejected"] == 1
    written = json.loads((tmp_path / "swap" / owned["folder"] / "manifest.json").read_text())
    assert written["name"] == "Ada Renamed"
    assert face not in {f["face_id"] for f in written["faces"] + written["dropped_faces"]}
    assert written["faces"]

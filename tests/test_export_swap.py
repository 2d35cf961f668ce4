"""`rbv export-swap` on real faces: .fsz zips of 512×512 PNGs with exactly one
detectable face each, ranked by the composite score; `rbv show` contact sheets."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rbv.config import Settings
from rbv.export.contact_sheet import CAPTION, HEADER
from rbv.export.swap import WEIGHTS
from tests.conftest import PACK, run_cli

RELAXED = ("--min-images", "3", "--min-face", "30", "--no-crops")


@pytest.fixture
def refined(cli, faces_settings: Settings, tmp_path: Path) -> Path:
    result = run_cli(cli, "-d", str(faces_settings.database_url), "refine",
                     str(tmp_path / "refined"), *RELAXED)
    assert result.exit_code == 0, result.output
    return tmp_path / "refined" / "refine_manifest.json"


def test_export_swap_bundles_single_face_pngs_ranked_by_score(
    cli, faces_settings: Settings, tmp_path: Path, sface_analyzer
) -> None:
    # Tight outlier and detection-score cuts leave faces of these identities outside
    # every faceset: the ones --candidates should rescue.
    result = run_cli(cli, "-d", str(faces_settings.database_url), "refine",
                     str(tmp_path / "refined"), *RELAXED, "--outlier", "0.3", "--min-det", "0.8")
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
        assert c["distance"] <= 0.55 and c["score"] >= 0.40
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


def _tiles(png: Path, tile: int, columns: int, rows: int) -> int:
    """Cells of the grid that hold a crop (anything but the flat background)."""
    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    count = 0
    for r in range(rows):
        for c in range(columns):
            y = HEADER + r * (tile + CAPTION)
            cell = pixels[y:y + tile, c * tile:(c + 1) * tile]
            count += int(cell.std() > 1.0)
    return count


def test_contact_sheet_of_a_person_and_of_a_faceset(cli, faces_settings: Settings,
                                                    refined: Path, tmp_path: Path) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.46").exit_code == 0
    persons = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json").stdout)
    biggest = persons[0]
    sheet = tmp_path / "person.png"
    result = run_cli(cli, "-d", url, "show", biggest["id"], "-o", str(sheet), "--columns", "4",
                     "--tile", "96", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    n = biggest["faces"]
    rows = -(-n // 4)
    assert info["tiles"] == n and (info["columns"], info["rows"]) == (min(4, n), rows)
    assert Image.open(sheet).size == (min(4, n) * 96, HEADER + rows * (96 + CAPTION))
    assert _tiles(sheet, 96, min(4, n), rows) == n

    faceset = json.loads(refined.read_text())["facesets"][0]
    fs_sheet = tmp_path / "fs.png"
    result = run_cli(cli, "-d", url, "show", faceset["folder"], "-o", str(fs_sheet), "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["tiles"] == len(faceset["faces"])
    assert _tiles(fs_sheet, 128, info["columns"], info["rows"]) == len(faceset["faces"])

    missing = run_cli(cli, "-d", url, "show", "faceset_999")
    assert missing.exit_code == 1 and "no faceset_999" in missing.stderr

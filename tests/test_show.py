"""`rbv show` on real faces: contact sheets of a person and of a faceset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rbv.config import Settings
from rbv.pictures.contact_sheet import CAPTION, HEADER
from tests.conftest import run_cli

RELAXED = ("--min-images", "3", "--min-face", "30", "--no-crops")


@pytest.fixture
def refined(cli, faces_settings: Settings, tmp_path: Path) -> Path:
    result = run_cli(cli, "-d", str(faces_settings.database_url), "refine",
                     str(tmp_path / "refined"), *RELAXED)
    assert result.exit_code == 0, result.output
    return tmp_path / "refined" / "refine_manifest.json"


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


def test_sheet_titles_draw_names_past_ascii_with_real_glyphs() -> None:
    from rbv.pictures.contact_sheet import draw_sheet

    def header(title: str) -> bytes:
        sheet, _ = draw_sheet(None, [], title, min_width=64)  # type: ignore[arg-type]
        return sheet.crop((0, 0, 64, HEADER)).tobytes()

    missing = header("\ue000")  # a private-use character: no font has it (a box)
    name = "Matt O'Dåmon Ольга Ωμέγα Łukasz Đorđe Nguyễn"
    boxes = [c for c in sorted(set(name) - {" "}) if header(c) == missing]
    assert not boxes, f"drawn as boxes: {''.join(boxes)}"

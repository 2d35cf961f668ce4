"""Issue 62, item 5: names are bounded text, by one rule at every entry point (rbv.formats.names):
at most 200 characters, invisible characters (bidi controls, zero-width) removed and
said, control characters refused; and a sidecar's regions are read up to 1,000, the
rest counted on one line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import psycopg
from PIL import Image

from rbv.config import Settings
from rbv.jobs.library.index import run_index
from rbv.store import open_database
from tests.conftest import FACES, run_cli
from tests.support.sidecars import mwg_sidecar

LONG = "x" * 100_000
LONGEST_LINE = 400  # no line of a report echoes a huge name


def _names(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return sorted(r[0] for r in conn.execute("SELECT name FROM person_names"))


def _a_person(url: str) -> str:
    with psycopg.connect(url) as conn:
        return str(conn.execute("SELECT person_id FROM face_detections "
                                "WHERE person_id IS NOT NULL LIMIT 1").fetchone()[0])


def test_serve_refuses_a_huge_name_and_removes_invisible_characters(
        served, faces_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    url = str(faces_settings.database_url)
    person = _a_person(url)
    refused = client.post("name", {"person": person, "name": LONG})
    assert refused.status == 400, (refused.status, refused.text[:200])
    error = refused.json()["error"]
    assert "100,000 characters; a name has at most 200" in error and len(error) < LONGEST_LINE
    assert _names(url) == []
    named = client.post("name", {"person": person, "name": "Katy_Perry\u200b"})
    assert named.status == 200, named.text
    assert "removed 1 invisible character (U+200B zero width space)" in named.json()["message"]
    assert _names(url) == ["Katy_Perry"]


def test_the_cli_refuses_a_huge_name_and_says_what_it_removed(
        cli, faces_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    person = _a_person(url)
    refused = run_cli(cli, "-d", url, "persons", "name", person, LONG)
    assert refused.exit_code == 1
    (line,) = refused.output.strip().splitlines()
    assert line.startswith("Error: a name has 100,000 characters; a name has at most 200")
    assert len(line) < LONGEST_LINE and _names(url) == []
    named = run_cli(cli, "-d", url, "persons", "name", person, "Obama\u202eevil")
    assert named.exit_code == 0, named.output
    assert ("Note: removed 1 invisible character (U+202E right-to-left override) from the "
            "name." in named.stderr)
    assert "is now named 'Obamaevil'." in named.stdout
    assert _names(url) == ["Obamaevil"]


def _one_face_photo(lib: Path, source: Path) -> Path:
    photo = lib / f"{source.parent.name}.jpg"
    shutil.copyfile(source, photo)
    return photo


def _area(url: str, photo: Path) -> tuple[str, ...]:
    """The photo's largest face as a normalised MWG area (centre x, y, width, height)."""
    with Image.open(photo) as im:
        w, h = im.size
    with psycopg.connect(url) as conn:
        x1, y1, x2, y2 = conn.execute(
            "SELECT f.x1, f.y1, f.x2, f.y2 FROM face_detections f JOIN image_paths p "
            "ON p.image_id = f.image_id WHERE p.path = %s ORDER BY (f.x2 - f.x1) DESC "
            "LIMIT 1", (str(photo),)).fetchone()
    return (str((x1 + x2) / 2 / w), str((y1 + y2) / 2 / h), str((x2 - x1) / w),
            str((y2 - y1) / h))


def test_import_xmp_cleans_names_and_refuses_a_huge_one(
        cli, settings: Settings, sface_analyzer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lib = tmp_path / "lib"
    lib.mkdir()
    photos = [_one_face_photo(lib, FACES / who / name) for who, name in (
        ("Barack_Obama", "fr_obama.jpg"), ("Katy_Perry", "deepface_img26.jpg"),
        ("Madonna", sorted(p.name for p in (FACES / "Madonna").glob("*.jpg"))[0]))]
    run_index(open_database(settings), settings, [lib], analyzer=sface_analyzer)
    url = str(settings.database_url)
    huge = "y" * 200_000
    for photo, name in zip(photos, ("Obama\u202eevil", "Katy_Perry\u200b", huge),
                           strict=True):
        Path(f"{photo}.xmp").write_bytes(mwg_sidecar(None, [(name, _area(url, photo))]))
    result = run_cli(cli, "-d", url, "import-xmp", str(lib))
    assert result.exit_code == 3, result.output  # the huge name is left out: a problem
    assert "Traceback" not in result.output
    assert all(len(line) < LONGEST_LINE for line in result.output.splitlines()), [
        len(line) for line in result.output.splitlines()]
    assert _names(url) == ["Katy_Perry", "Obamaevil"]
    assert ("'Obamaevil': removed 1 invisible character (U+202E right-to-left override) "
            "from the name." in result.stdout)
    assert "'Katy_Perry': removed 1 invisible character (U+200B" in result.stdout
    (error,) = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert "the name has 200,000 characters; a name has at most 200" in error
    assert "that region is left out" in error


def test_a_sidecar_of_20000_regions_is_read_up_to_1000_and_said_in_one_line(
        cli, settings: Settings, sface_analyzer, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    lib = tmp_path / "lib"
    lib.mkdir()
    photo = _one_face_photo(lib, FACES / "Barack_Obama" / "fr_obama.jpg")
    run_index(open_database(settings), settings, [lib], analyzer=sface_analyzer)
    regions = [(f"Person {i}", (str(0.01 + (i % 100) / 101), str(0.01 + (i // 100) / 201),
                                "0.005", "0.005")) for i in range(20_000)]
    Path(f"{photo}.xmp").write_bytes(mwg_sidecar(None, regions))
    url = str(settings.database_url)
    result = run_cli(cli, "-d", url, "import-xmp", str(lib))
    assert result.exit_code == 3, result.output[-2000:]
    lines = result.output.splitlines()
    assert len(lines) < 60, len(lines)
    skipped = [line for line in lines if "were skipped" in line]
    assert skipped == [f"Error: {photo}.xmp: 19,000 face regions past the first 1,000 were "
                       "skipped (rbv reads at most 1,000 from a file)"]
    assert "… and 950 more regions unmatched (`--json` lists them all)." in lines
    report = json.loads(run_cli(cli, "-d", url, "import-xmp", str(lib), "--json").stdout)
    assert report["regions"] == 1_000 and len(report["unmatched"]) == 1_000

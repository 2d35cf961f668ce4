"""`rbv import-xmp` on regions that mark one face twice: in two formats measured in two
frames (a photo turned sideways), or loosely by hand beside rbv's exact box. The faces
get their names and no region is called unmatched (issue 31: "'Marie Curie' unmatched"
for a photo whose faces did get named). And `rbv export-xmp` into such a photo's
regions measured on its stored pixels: compared and written in their own frame."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import psycopg

from rbv.config import Settings
from rbv.formats.regions import iou
from rbv.jobs.library.index import run_index
from rbv.store import open_database
from rbv.store.queries.persons import new_person, place_faces, set_name
from tests.conftest import MISC, run_cli
from tests.test_xmp import UPRIGHT, _displayed_size, _exiftool_regions, _faces

TURNED = MISC / "immich_portrait-orientation-6.jpg"


def _names(url: str) -> dict[str, tuple[float, ...]]:
    """Name → box of every named face."""
    with psycopg.connect(url) as conn:
        return {n: (x1, y1, x2, y2) for n, x1, y1, x2, y2 in conn.execute(
            "SELECT n.name, f.x1, f.y1, f.x2, f.y2 FROM face_detections f "
            "JOIN person_names n ON n.person_id = f.person_id")}


def test_regions_measured_on_a_turned_photos_stored_pixels_name_its_faces(
        cli, settings: Settings, sface_analyzer) -> None:
    """Immich's test photo, stored turned (EXIF orientation 6), carries MWG regions
    measured on its stored pixels (AppliedToDimensions 700×840, the stored size) and
    Microsoft Photo regions measured on the photo as shown (840×700): both mark the same
    two faces."""
    run_index(open_database(settings), settings, [TURNED], analyzer=sface_analyzer)
    url = str(settings.database_url)
    said = run_cli(cli, "-d", url, "import-xmp", str(MISC))
    assert said.exit_code == 0, said.output
    assert "unmatched:" not in said.stdout, said.stdout
    report = json.loads(run_cli(cli, "-d", url, "import-xmp", str(MISC), "--json").stdout)
    assert (report["regions"], report["matched"], report["unmatched"]) == (2, 2, [])
    names = _names(url)
    assert set(names) == {"Marie Curie", "Pierre Curie"}
    w, _ = _displayed_size(TURNED)
    # as shown, Marie is left of the middle and Pierre right of it (the MP regions'
    # centres: 0.37 and 0.69 of the width)
    assert (names["Marie Curie"][0] + names["Marie Curie"][2]) / 2 < w / 2
    assert (names["Pierre Curie"][0] + names["Pierre Curie"][2]) / 2 > w / 2


def test_a_name_marked_twice_on_one_face_is_not_called_unmatched(
        cli, settings: Settings, sface_analyzer, tmp_path: Path, exiftool: str) -> None:
    """The photo's own region is rbv's box, a sidecar's the same name drawn loosely by
    hand (1.5× as wide and high: too unlike to be taken for one region, close enough to
    the face): the face is named, the second region is counted as repeated."""
    photo = tmp_path / "two.jpg"
    shutil.copyfile(UPRIGHT, photo)
    run_index(open_database(settings), settings, [photo], analyzer=sface_analyzer)
    with psycopg.connect(str(settings.database_url)) as conn:
        x1, y1, x2, y2 = next(box for _, p, box, _ in _faces(conn) if p == str(photo))
    w, h = _displayed_size(photo)
    cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h

    def regions(scale: float) -> str:
        return (f"-RegionInfo={{AppliedToDimensions={{W={w},H={h},Unit=pixel}},RegionList=["
                f"{{Name=Ada Lovelace,Type=Face,Area={{X={cx},Y={cy},W={bw * scale},"
                f"H={bh * scale},Unit=normalized}}}}]}}")
    subprocess.run([exiftool, "-q", "-o", str(photo) + ".xmp", regions(1.5), str(photo)],
                   check=True)
    subprocess.run([exiftool, "-q", "-overwrite_original", regions(1.0), str(photo)],
                   check=True)

    url = str(settings.database_url)
    said = run_cli(cli, "-d", url, "import-xmp", str(tmp_path))
    assert said.exit_code == 0, said.output
    assert "unmatched:" not in said.stdout, said.stdout
    assert "1 repeated (a name marked twice on a photo)" in said.stdout
    report = json.loads(run_cli(cli, "-d", url, "import-xmp", str(tmp_path), "--json").stdout)
    assert (report["regions"], report["matched"], report["repeated"]) == (2, 1, 1)
    assert report["unmatched"] == [] and report["conflicts"] == []
    assert list(_names(url)) == ["Ada Lovelace"]


def _area(region: dict) -> tuple[float, float, float, float]:
    a = region["Area"]
    return (a["X"] - a["W"] / 2, a["Y"] - a["H"] / 2, a["X"] + a["W"] / 2, a["Y"] + a["H"] / 2)


def test_export_into_a_turned_photo_measured_on_its_stored_pixels_changes_nothing(
        cli, settings: Settings, sface_analyzer, tmp_path: Path) -> None:
    """The names rbv read from a sideways photo's regions measured on its stored pixels
    are the ones already there, at the same places: writing them back into the photo
    leaves it byte for byte as it was (no second pair of regions drawn in another
    frame, no AppliedToDimensions changed under another program's regions)."""
    photo = tmp_path / TURNED.name
    shutil.copyfile(TURNED, photo)
    original = photo.read_bytes()
    run_index(open_database(settings), settings, [photo], analyzer=sface_analyzer)
    url = str(settings.database_url)
    assert run_cli(cli, "-d", url, "import-xmp", str(tmp_path)).exit_code == 0
    said = run_cli(cli, "-d", url, "export-xmp", "--write-into-files", "--json")
    assert said.exit_code == 0, said.output
    (file,) = json.loads(said.stdout)["files"]
    assert (file["action"], file["added"], file["unchanged"]) == ("unchanged", 0, 2), file
    assert photo.read_bytes() == original
    assert not Path(str(photo) + "_original").exists()


def test_export_adds_to_stored_pixel_regions_in_their_own_frame(
        cli, settings: Settings, sface_analyzer, tmp_path: Path, exiftool: str) -> None:
    """A sidecar holds Marie's region as Immich writes it (on the stored pixels of the
    sideways photo, AppliedToDimensions 700×840); Pierre is named in rbv. export-xmp
    keeps Marie's region and the dimensions as they are and adds Pierre's measured the
    same way: where Immich itself marks Pierre on those pixels."""
    photo = tmp_path / TURNED.name
    shutil.copyfile(TURNED, photo)
    subprocess.run([exiftool, "-q", "-overwrite_original", "-xmp:all=", str(photo)],
                   check=True)
    immich = _exiftool_regions(exiftool, [TURNED])[str(TURNED)]["RegionInfo"]
    marie, pierre = immich["RegionList"]
    a = marie["Area"]
    subprocess.run([exiftool, "-q", "-o", str(photo) + ".xmp",
                    "-RegionInfo={AppliedToDimensions={W=700,H=840,Unit=pixel},RegionList=["
                    f"{{Name=Marie Curie,Type=Face,Area={{X={a['X']},Y={a['Y']},W={a['W']},"
                    f"H={a['H']},Unit=normalized}}}}]}}", str(photo)], check=True)
    run_index(open_database(settings), settings, [photo], analyzer=sface_analyzer)
    url = str(settings.database_url)
    assert run_cli(cli, "-d", url, "import-xmp", str(tmp_path)).exit_code == 0
    assert list(_names(url)) == ["Marie Curie"]
    with psycopg.connect(url) as conn:
        pack = conn.execute("SELECT id FROM model_packs").fetchone()[0]
        (face,) = [r[0] for r in conn.execute(
            "SELECT id FROM face_detections WHERE person_id IS NULL OR person_id NOT IN "
            "(SELECT person_id FROM person_names)")]
        person = new_person(conn, pack, source="manual")
        set_name(conn, person, "Pierre Curie")
        place_faces(conn, [face], person)

    said = run_cli(cli, "-d", url, "export-xmp", "--json")
    assert said.exit_code == 0, said.output
    (file,) = json.loads(said.stdout)["files"]
    assert (file["action"], file["added"], file["unchanged"]) == ("updated", 1, 1), file
    assert any("stored pixels" in note for note in file["notes"]), file
    written = _exiftool_regions(exiftool, [Path(str(photo) + ".xmp")])
    info = written[str(photo) + ".xmp"]["RegionInfo"]
    assert info["AppliedToDimensions"] == {"W": 700, "H": 840, "Unit": "pixel"}
    regions = {r["Name"]: r for r in info["RegionList"]}
    assert set(regions) == {"Marie Curie", "Pierre Curie"}
    assert regions["Marie Curie"]["Area"] == marie["Area"]
    assert iou(_area(regions["Pierre Curie"]), _area(pierre)) >= 0.5
    report = json.loads(run_cli(cli, "-d", url, "import-xmp", str(tmp_path), "--json").stdout)
    assert report["unmatched"] == [] and report["conflicts"] == []

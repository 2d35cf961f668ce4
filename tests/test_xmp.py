"""Names out and in: `rbv export-xmp` writes MWG face regions that an independent reader
(exiftool) reads back onto the faces, merges into existing sidecars without clobbering
them, and `rbv import-xmp` turns regions (rbv's, digiKam/Lightroom-style MWG, Microsoft
Photo) back into named persons."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import piexif
import psycopg
import pytest
from PIL import Image, ImageOps
from pillow_heif import register_heif_opener

from rbv.config import Settings
from rbv.formats.regions import iou
from rbv.jobs.library.index import run_index
from rbv.store import open_database
from rbv.store.queries.persons import new_person, place_faces, set_name
from tests.conftest import FACES, FOLDER_IDENTITIES, FOLDER_MIXED, MISC, import_folders, run_cli

pytestmark = pytest.mark.slow  # ~10 s: exports and imports through exiftool

register_heif_opener()

UPRIGHT = MISC / "fr_two_people.jpg"


def _oriented_copy(folder: Path, orientation: int) -> Path:
    """fr_two_people.jpg stored turned, with the EXIF orientation that shows it upright."""
    upright = Image.open(UPRIGHT)
    stored = {3: upright.transpose(Image.Transpose.ROTATE_180),
              6: upright.transpose(Image.Transpose.ROTATE_90),
              8: upright.transpose(Image.Transpose.ROTATE_270)}[orientation]
    path = folder / f"two_people_o{orientation}.jpg"
    exif = piexif.dump({"0th": {piexif.ImageIFD.Orientation: orientation}})
    stored.save(path, quality=92, exif=exif)
    assert ImageOps.exif_transpose(Image.open(path)).size == upright.size
    return path


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """Upright, EXIF-rotated (3, 6, 8; and a real orientation-6 photo) and HEIC photos."""
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copyfile(UPRIGHT, lib / UPRIGHT.name)
    for o in (3, 6, 8):
        _oriented_copy(lib, o)
    for name in ("immich_portrait-orientation-6.jpg", "nokia_bothie_1440x960.heic"):
        shutil.copyfile(MISC / name, lib / name)
    return lib


def _faces(conn: psycopg.Connection) -> list[tuple[int, str, tuple[float, ...], int]]:
    """(face id, path, box, image id) of every face, left to right per photo."""
    return [(r[0], r[1], (r[2], r[3], r[4], r[5]), r[6]) for r in conn.execute(
        "SELECT f.id, p.path, f.x1, f.y1, f.x2, f.y2, f.image_id FROM face_detections f "
        "JOIN image_paths p ON p.image_id = f.image_id ORDER BY p.path, f.x1")]


def _name_by_position(settings: Settings) -> dict[str, dict[str, tuple[float, ...]]]:
    """Every face named "Person k" (k = its rank from the left in its photo): one
    person per rank, so no photo has one person twice. Returns path → name → box."""
    db = open_database(settings)
    expected: dict[str, dict[str, tuple[float, ...]]] = {}
    with db.connect() as conn:
        pack = conn.execute("SELECT id FROM model_packs").fetchone()[0]
        persons = {}
        for face_id, path, box, _ in _faces(conn):
            names = expected.setdefault(path, {})
            name = f"Person {len(names) + 1}"
            if name not in persons:
                persons[name] = new_person(conn, pack, source="manual")
                set_name(conn, persons[name], name)
            place_faces(conn, [face_id], persons[name])
            names[name] = box
        conn.commit()
    return expected


def _displayed_size(path: Path) -> tuple[int, int]:
    return ImageOps.exif_transpose(Image.open(path)).size


def _clip(box: tuple[float, ...], w: int, h: int) -> tuple[float, float, float, float]:
    return (min(max(box[0], 0), w), min(max(box[1], 0), h),
            min(max(box[2], 0), w), min(max(box[3], 0), h))


def _exiftool_regions(exiftool: str, files: list[Path]) -> dict[str, dict]:
    out = subprocess.run([exiftool, "-j", "-struct", "-RegionInfo", "-RegionInfoMP",
                          *map(str, files)], capture_output=True, text=True, check=True)
    return {d["SourceFile"]: d for d in json.loads(out.stdout)}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_regions_land_on_the_faces_of_rotated_and_heic_photos(
        cli, settings: Settings, sface_analyzer, library: Path, exiftool: str) -> None:
    run_index(open_database(settings), settings, [library], analyzer=sface_analyzer)
    expected = _name_by_position(settings)
    assert len(expected) == 6 and sum(len(v) for v in expected.values()) >= 11
    photos_before = {p: _sha(p) for p in library.iterdir()}

    result = run_cli(cli, "-d", str(settings.database_url), "export-xmp", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["created"] == 6 and report["conflicts"] == 0 and report["failed"] == 0

    sidecars = {path: Path(path + ".xmp") for path in expected}
    read = _exiftool_regions(exiftool, list(sidecars.values()))
    for path, names in expected.items():
        info = read[str(sidecars[path])]["RegionInfo"]
        w, h = _displayed_size(Path(path))
        assert info["AppliedToDimensions"] == {"W": w, "H": h, "Unit": "pixel"}, path
        drawn = {}
        for region in info["RegionList"]:
            assert region["Type"] == "Face" and region["Area"]["Unit"] == "normalized"
            a = region["Area"]
            drawn[region["Name"]] = ((a["X"] - a["W"] / 2) * w, (a["Y"] - a["H"] / 2) * h,
                                     (a["X"] + a["W"] / 2) * w, (a["Y"] + a["H"] / 2) * h)
        assert set(drawn) == set(names), path
        for name, box in names.items():
            assert iou(drawn[name], _clip(box, w, h)) >= 0.9, (path, name)
    # the rotated copies show the same two people at the same places as the upright one
    upright = expected[str(library / UPRIGHT.name)]
    for o in (3, 6, 8):
        turned = expected[str(library / f"two_people_o{o}.jpg")]
        assert set(turned) == set(upright)
        for name in upright:
            assert iou(turned[name], upright[name]) >= 0.9, (o, name)
    assert {p: _sha(p) for p in library.iterdir() if p.suffix != ".xmp"} == photos_before

    before = {p: p.read_bytes() for p in sidecars.values()}
    again = run_cli(cli, "-d", str(settings.database_url), "export-xmp", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["unchanged"] == 6
    assert {p: p.read_bytes() for p in sidecars.values()} == before  # byte-identical


def test_existing_sidecars_are_merged_never_clobbered(
        cli, settings: Settings, sface_analyzer, tmp_path: Path, exiftool: str) -> None:
    photo = tmp_path / "two.jpg"
    shutil.copyfile(UPRIGHT, photo)
    run_index(open_database(settings), settings, [photo], analyzer=sface_analyzer)
    names = _name_by_position(settings)[str(photo)]
    w, h = _displayed_size(photo)
    x1, y1, x2, y2 = names["Person 1"]
    area = f"{{X={(x1 + x2) / 2 / w},Y={(y1 + y2) / 2 / h},W={(x2 - x1) / w},H={(y2 - y1) / h}" \
           ",Unit=normalized}"
    sidecar = Path(str(photo) + ".xmp")
    subprocess.run([exiftool, "-q", "-o", str(sidecar), "-XMP-dc:Title=Beach day",
                    "-XMP-xmp:Rating=4",
                    f"-RegionInfo={{AppliedToDimensions={{W={w},H={h},Unit=pixel}},RegionList="
                    f"[{{Name=Barack,Type=Face,Area={area}}},"
                    "{Name=Bo,Type=Pet,Area={X=0.1,Y=0.9,W=0.05,H=0.05,Unit=normalized}}]}",
                    str(photo)], check=True)

    dry = run_cli(cli, "-d", str(settings.database_url), "export-xmp", "--dry-run", "--json")
    assert dry.exit_code == 0 and json.loads(dry.stdout)["updated"] == 1
    written = sidecar.read_bytes()
    result = run_cli(cli, "-d", str(settings.database_url), "export-xmp")
    assert result.exit_code == 0, result.output
    assert "kept 'Barack'" in result.stdout and "1 conflict," in result.stdout
    assert sidecar.read_bytes() != written

    tags = _exiftool_regions(exiftool, [sidecar])[str(sidecar)]
    out = subprocess.run([exiftool, "-j", "-Title", "-Rating", str(sidecar)],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)[0]["Title"] == "Beach day"
    assert json.loads(out.stdout)[0]["Rating"] == 4
    regions = {r["Name"]: r["Type"] for r in tags["RegionInfo"]["RegionList"]}
    assert regions == {"Barack": "Face", "Bo": "Pet", "Person 2": "Face"}

    written = sidecar.read_bytes()
    again = run_cli(cli, "-d", str(settings.database_url), "export-xmp")
    assert again.exit_code == 0 and sidecar.read_bytes() == written


def test_the_comments_of_a_sidecar_are_kept_when_rbv_writes_into_it(
        cli, settings: Settings, sface_analyzer, tmp_path: Path, exiftool: str) -> None:
    """Issue 62 #9: a sidecar's XML comments (a person's notes, a program's mark) were
    gone once `export-xmp` wrote its regions into it. Each is still there, in its place
    (before the element it preceded), and exiftool reads the tags and the new regions."""
    photo = tmp_path / "two.jpg"
    shutil.copyfile(UPRIGHT, photo)
    run_index(open_database(settings), settings, [photo], analyzer=sface_analyzer)
    _name_by_position(settings)
    sidecar = Path(str(photo) + ".xmp")
    sidecar.write_bytes(
        b'<?xpacket begin="\xef\xbb\xbf" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        b"<!-- written by hand -->\n"
        b'<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        b' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        b'  <rdf:Description rdf:about="" xmlns:dc="http://purl.org/dc/elements/1.1/">\n'
        b"   <!-- the title is the beach's name: keep it -->\n"
        b'   <dc:title><rdf:Alt><rdf:li xml:lang="x-default">Beach day</rdf:li></rdf:Alt>'
        b"</dc:title>\n"
        b"  </rdf:Description>\n </rdf:RDF>\n</x:xmpmeta>\n<!-- the end -->\n"
        b'<?xpacket end="w"?>')

    result = run_cli(cli, "-d", str(settings.database_url), "export-xmp")
    assert result.exit_code == 0, result.output
    text = sidecar.read_text()
    comments = ["<!-- written by hand -->",
                "<!-- the title is the beach's name: keep it -->", "<!-- the end -->"]
    at = [text.find(c) for c in comments]
    assert -1 not in at and at == sorted(at), text
    assert at[0] < text.find("<x:xmpmeta") and at[1] < text.find("<dc:title") \
        and at[2] > text.find("</x:xmpmeta>"), text
    out = subprocess.run([exiftool, "-j", "-Title", str(sidecar)], capture_output=True,
                         text=True, check=True)
    assert json.loads(out.stdout)[0]["Title"] == "Beach day"
    regions = _exiftool_regions(exiftool, [sidecar])[str(sidecar)]["RegionInfo"]
    assert {r["Name"] for r in regions["RegionList"]} == {"Person 1", "Person 2"}


def test_write_into_files_keeps_the_original_and_heic_gets_a_sidecar(
        cli, settings: Settings, sface_analyzer, tmp_path: Path, exiftool: str) -> None:
    jpeg, heic = tmp_path / "two.jpg", tmp_path / "bothie.heic"
    shutil.copyfile(UPRIGHT, jpeg)
    shutil.copyfile(MISC / "nokia_bothie_1440x960.heic", heic)
    original = jpeg.read_bytes()
    run_index(open_database(settings), settings, [tmp_path], analyzer=sface_analyzer)
    _name_by_position(settings)
    url = str(settings.database_url)
    for run, verb in (("--dry-run", "would be "), ("--write-into-files", "")):
        said = run_cli(cli, "-d", url, "export-xmp", "--write-into-files", run)
        assert said.exit_code == 0, said.output
        # What was written is said as such: a photo rewritten, its original kept beside
        # it, not "0 sidecars created, 2 updated" (issue 52 #3).
        lines = said.stdout.splitlines()
        assert lines[0].startswith(f"1 photo {verb}rewritten, 1 sidecar {verb}created, "
                                   f"0 {verb}updated, 0 unchanged, 0 skipped; "), lines
        assert lines[1] == (f"1 backup of the original {verb}left beside it as "
                            "PHOTO_original (exiftool's name).")
    again = run_cli(cli, "-d", url, "export-xmp", "--write-into-files")
    assert again.stdout.startswith("0 sidecars created, 0 updated, 2 unchanged"), again.output
    result = run_cli(cli, "-d", url, "export-xmp", "--write-into-files", "--json")
    assert result.exit_code == 0, result.output
    targets = {f["target"] for f in json.loads(result.stdout)["files"]}
    assert targets == {str(jpeg), str(heic) + ".xmp"}
    assert Path(str(jpeg) + "_original").read_bytes() == original
    assert not Path(str(jpeg) + ".xmp").exists()
    read = _exiftool_regions(exiftool, [jpeg])[str(jpeg)]
    assert {r["Name"] for r in read["RegionInfo"]["RegionList"]} == {"Person 1", "Person 2"}
    assert Image.open(jpeg).size == Image.open(UPRIGHT).size  # still a good JPEG


def _named_faces(url: str) -> set[tuple[str, str, tuple[float, ...]]]:
    with psycopg.connect(url) as conn:
        return {(r[0], r[1], tuple(round(v, 1) for v in r[2:])) for r in conn.execute(
            "SELECT p.path, n.name, f.x1, f.y1, f.x2, f.y2 FROM face_detections f "
            "JOIN person_names n ON n.person_id = f.person_id "
            "JOIN image_paths p ON p.image_id = f.image_id")}


def test_round_trip_export_then_import_into_a_fresh_database(
        cli, faces_settings: Settings, pg_server, faces_template: str, sface_analyzer,
        tmp_path: Path) -> None:
    import_folders(cli, faces_settings)
    named = _named_faces(str(faces_settings.database_url))
    out = tmp_path / "sidecars"
    result = run_cli(cli, "-d", str(faces_settings.database_url), "export-xmp",
                     str(FACES), str(MISC), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["created"] >= 40
    assert (out / "Barack_Obama").is_dir() and not any(FACES.rglob("*.xmp"))

    fresh = f"{faces_template}_fresh_{os.getpid()}"
    with psycopg.connect(pg_server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{fresh}" TEMPLATE "{faces_template}"')
    url = pg_server.url(fresh)
    fresh_settings = Settings(database_url=url, data_dir=tmp_path / "data")
    run_index(open_database(fresh_settings), fresh_settings,
              [*(FACES / name for name in FOLDER_IDENTITIES), *(MISC / p for p in FOLDER_MIXED)],
              analyzer=sface_analyzer)  # the same photos as the first database
    dry = run_cli(cli, "-d", url, "import-xmp", str(FACES), str(MISC), "--from", str(out),
                  "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert _named_faces(url) == set()
    result = run_cli(cli, "-d", url, "import-xmp", str(FACES), str(MISC), "--from", str(out),
                     "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["conflicts"] == [] and report["unmatched"] == []
    imported = _named_faces(url)
    assert imported >= named
    # immich_portrait.jpg carries its own MWG regions (written by another program): they
    # name its two faces too
    assert {(Path(p).name, n) for p, n, _ in imported - named} == {
        ("immich_portrait.jpg", "Marie Curie"), ("immich_portrait.jpg", "Pierre Curie")}
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM face_detections WHERE person_id IS NOT NULL "
                            "AND assigned_by <> 'manual'").fetchone()[0] == 0
        persons = conn.execute("SELECT count(*) FROM persons").fetchone()[0]
    again = run_cli(cli, "-d", url, "import-xmp", "--from", str(out), "--json")
    assert json.loads(again.stdout)["assigned"] == 0
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM persons").fetchone()[0] == persons


def test_import_reads_digikam_and_microsoft_regions_and_reuses_persons(
        cli, settings: Settings, sface_analyzer, tmp_path: Path, exiftool: str) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    jpeg = lib / "two.jpg"
    shutil.copyfile(UPRIGHT, jpeg)
    rotated = _oriented_copy(lib, 6)
    run_index(open_database(settings), settings, [lib], analyzer=sface_analyzer)
    with psycopg.connect(str(settings.database_url)) as conn:
        faces = _faces(conn)
        pack = conn.execute("SELECT id FROM model_packs").fetchone()[0]
        obama = new_person(conn, pack, source="manual")  # exists already: reused
        set_name(conn, obama, "Barack Obama")
        conn.commit()
    w, h = _displayed_size(jpeg)
    (l1, t1, r1, b1), (l2, t2, r2, b2) = [box for _, p, box, _ in faces if p == str(jpeg)]

    def grown(x1: float, y1: float, x2: float, y2: float) -> tuple[float, ...]:
        """A hand-drawn region: 20 % larger than the detector's box."""
        cx, cy, bw, bh = (x1 + x2) / 2 / w, (y1 + y2) / 2 / h, (x2 - x1) / w, (y2 - y1) / h
        return cx, cy, bw * 1.2, bh * 1.2

    a, b = grown(l1, t1, r1, b1), grown(l2, t2, r2, b2)
    # digiKam writes MWG regions into the photo itself; a stray one names nobody's face
    subprocess.run([exiftool, "-q", "-overwrite_original",
                    f"-RegionInfo={{AppliedToDimensions={{W={w},H={h},Unit=pixel}},RegionList=["
                    f"{{Name=Barack Obama,Type=Face,Area={{X={a[0]},Y={a[1]},W={a[2]},H={a[3]},"
                    "Unit=normalized}},"
                    "{Name=Nobody,Type=Face,Area={X=0.5,Y=0.9,W=0.05,H=0.05,Unit=normalized}}]}",
                    str(jpeg)], check=True)
    # Windows Photo Gallery's MP regions (top-left corner) in a PHOTO.xmp sidecar
    left, top = b[0] - b[2] / 2, b[1] - b[3] / 2
    subprocess.run([exiftool, "-q", "-o", str(rotated.with_suffix(".xmp")),
                    f"-RegionInfoMP={{Regions=[{{PersonDisplayName=Joe Biden,"
                    f"Rectangle={left:.4f}|, {top:.4f}|, {b[2]:.4f}|, {b[3]:.4f}}}]}}",  # | escapes
                    str(UPRIGHT)], check=True)
    result = run_cli(cli, "-d", str(settings.database_url), "import-xmp", str(lib), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["regions"] == 3 and report["matched"] == 2
    assert report["persons_created"] == ["Joe Biden"]
    assert [u["name"] for u in report["unmatched"]] == ["Nobody"]
    said = run_cli(cli, "-d", str(settings.database_url), "import-xmp", str(lib), "--dry-run")
    assert said.exit_code == 0, said.output
    assert any(line.startswith(f"{jpeg}: 'Nobody' unmatched: no face was detected there; "
                               f"`rbv faces add {jpeg} --box ")
               and line.endswith("--person Nobody` adds it by hand.")
               for line in said.stdout.splitlines()), said.stdout  # issue 24 #4, 51
    named = _named_faces(str(settings.database_url))
    assert {(Path(p).name, n) for p, n, _ in named} == {("two.jpg", "Barack Obama"),
                                                        (rotated.name, "Joe Biden")}
    with psycopg.connect(str(settings.database_url)) as conn:
        assert conn.execute("SELECT count(*) FROM face_detections WHERE person_id = %s",
                            (obama,)).fetchone()[0] == 1


def test_a_sidecar_applied_to_other_dimensions_is_reported_and_made_consistent(
        cli, settings: Settings, sface_analyzer, tmp_path: Path, exiftool: str) -> None:
    photo = tmp_path / "two.jpg"
    shutil.copyfile(UPRIGHT, photo)
    run_index(open_database(settings), settings, [photo], analyzer=sface_analyzer)
    names = _name_by_position(settings)[str(photo)]
    w, h = _displayed_size(photo)
    x1, y1, x2, y2 = names["Person 1"]
    area = f"{{X={(x1 + x2) / 2 / w},Y={(y1 + y2) / 2 / h},W={(x2 - x1) / w},H={(y2 - y1) / h}" \
           ",Unit=normalized}"
    sidecar = Path(str(photo) + ".xmp")
    subprocess.run([exiftool, "-q", "-o", str(sidecar), "-XMP-dc:Title=Beach day",
                    f"-RegionInfo={{AppliedToDimensions={{W=100,H=100,Unit=pixel}},RegionList="
                    f"[{{Name=Barack,Type=Face,Area={area}}},"
                    "{Name=Bo,Type=Pet,Area={X=10,Y=90,W=5,H=4,Unit=pixel}}]}",
                    str(photo)], check=True)

    result = run_cli(cli, "-d", str(settings.database_url), "export-xmp")

    assert result.exit_code == 0, result.output
    assert (f"{sidecar}: AppliedToDimensions 100x100 does not match the photo ({w}x{h}): "
            f"set to {w}x{h}; normalised regions kept as they are, 1 region in pixels "
            "rescaled to it") in result.stdout
    info = _exiftool_regions(exiftool, [sidecar])[str(sidecar)]["RegionInfo"]
    assert info["AppliedToDimensions"]["W"] == w and info["AppliedToDimensions"]["H"] == h
    regions = {r["Name"]: r["Area"] for r in info["RegionList"]}
    assert set(regions) == {"Barack", "Bo", "Person 2"}
    bo = regions["Bo"]  # the same place on the photo, in pixels of its real size
    assert (bo["X"], bo["W"]) == pytest.approx((10 * w / 100, 5 * w / 100), abs=1e-3)
    assert (bo["Y"], bo["H"]) == pytest.approx((90 * h / 100, 4 * h / 100), abs=1e-3)
    px1, py1, px2, py2 = _clip(names["Person 2"], w, h)
    ours = regions["Person 2"]
    assert ours["Unit"] == "normalized"
    assert ours["X"] == pytest.approx((px1 + px2) / 2 / w, abs=1e-5)
    assert ours["W"] == pytest.approx((px2 - px1) / w, abs=1e-5)

    again = run_cli(cli, "-d", str(settings.database_url), "export-xmp")
    assert again.exit_code == 0 and "AppliedToDimensions" not in again.stdout

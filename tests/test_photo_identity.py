"""A photo is its image data (issue 29): a file whose tags were edited, by rbv's own
`export-xmp --write-into-files` or by another program (the real exiftool here), is the
same photo: same image row, same faces and ids, persons, names and decisions, with the
new sha256 and metadata on record."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import psycopg
import pytest
from PIL import Image, ImageOps

from rbv.config import Settings
from rbv.jobs.library.index import run_index
from rbv.store import open_database
from tests.conftest import FACES, MISC, PACK, run_cli

pytestmark = pytest.mark.slow  # ~20 s: indexes copies and moves of photos, in subprocesses

IDENTITIES = ("Madonna", "Jerry_Seinfeld")

State = dict[int, tuple[int, str | None, str | None, tuple[float, ...]]]


def _state(settings: Settings) -> State:
    """face id → (image id, its person's name, how it was placed, box)."""
    with psycopg.connect(str(settings.database_url)) as conn:
        rows = conn.execute(
            "SELECT f.id, f.image_id, n.name, f.assigned_by, f.x1, f.y1, f.x2, f.y2 "
            "FROM face_detections f LEFT JOIN person_names n ON n.person_id = f.person_id"
        ).fetchall()
    return {r[0]: (r[1], r[2], r[3], tuple(round(v, 2) for v in r[4:])) for r in rows}


def _library(tmp_path: Path) -> Path:
    lib = tmp_path / "lib"
    for identity in IDENTITIES:
        shutil.copytree(FACES / identity, lib / identity, copy_function=shutil.copyfile)
    return lib


def _named_library(cli, settings: Settings, analyzer, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """The two identity folders, indexed and imported as two named persons."""
    lib = _library(tmp_path)
    run_index(open_database(settings), settings, [lib], analyzer=analyzer)
    result = run_cli(cli, "-d", str(settings.database_url), "import-folders",
                     *(str(lib / i) for i in IDENTITIES), "--model-pack", str(PACK),
                     "--no-index", "--json")
    assert result.exit_code == 0, result.output
    return lib


def _index(cli, settings: Settings, lib: Path):  # type: ignore[no-untyped-def]
    result = run_cli(cli, "-d", str(settings.database_url), "index", str(lib),
                     "--model-pack", str(PACK), "--device", "cpu")
    assert result.exit_code == 0, result.output
    return result


def test_names_written_into_the_photos_survive_the_next_index_and_cluster(
        cli, settings: Settings, sface_analyzer, tmp_path: Path) -> None:
    lib = _named_library(cli, settings, sface_analyzer, tmp_path)
    before = _state(settings)
    named = sum(1 for _, name, _, _ in before.values() if name)
    assert named >= 45 and {n for _, n, _, _ in before.values()} >= set(IDENTITIES)

    written = run_cli(cli, "-d", str(settings.database_url), "export-xmp", str(lib),
                      "--write-into-files", "--json")
    assert written.exit_code == 0, written.output
    rewritten = json.loads(written.stdout)["updated"] + json.loads(written.stdout)["created"]
    assert rewritten >= 40

    again = _index(cli, settings, lib)
    assert f"{rewritten} photos with new metadata, faces kept" in again.stdout
    assert " 0 new images" in again.stdout
    assert _state(settings) == before  # every face, id, name and hand-placement

    clustered = run_cli(cli, "-d", str(settings.database_url), "cluster",
                        "--model-pack", str(PACK))
    assert clustered.exit_code == 0, clustered.output
    after = _state(settings)
    assert {f: s for f, s in after.items() if before[f][1]} == \
        {f: s for f, s in before.items() if s[1]}
    with psycopg.connect(str(settings.database_url)) as conn:
        shas = conn.execute("SELECT count(*) FROM images i JOIN image_paths p "
                            "ON p.image_id = i.id AND p.sha256 = i.sha256").fetchone()[0]
        assert shas == conn.execute("SELECT count(*) FROM image_paths").fetchone()[0]


EDITS = {
    "rating": ["-XMP-xmp:Rating=4"],
    "keywords": ["-IPTC:Keywords+=beach", "-XMP-dc:Subject+=beach"],
    "xmp-dc": ["-XMP-dc:Title=Summer", "-XMP-dc:Description=On the pier"],
    "iptc caption": ["-IPTC:Caption-Abstract=A caption"],
    "exif description": ["-EXIF:ImageDescription=Somewhere", "-EXIF:DateTimeOriginal="
                         "2001:02:03 04:05:06", "-GPSLatitude=48.1", "-GPSLatitudeRef=N"],
    "digikam regions": ["-XMP-mwg-rs:RegionAppliedToDimensionsW=400",
                        "-XMP-mwg-rs:RegionAppliedToDimensionsH=300",
                        "-XMP-mwg-rs:RegionAppliedToDimensionsUnit=pixel",
                        "-XMP-mwg-rs:RegionList={Name=Someone,Type=Face,Area={X=0.5,Y=0.5,"
                        "W=0.2,H=0.2,Unit=normalized}}"],
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_tags_edited_by_exiftool_keep_the_photo_and_its_faces(
        cli, settings: Settings, sface_analyzer, tmp_path: Path, exiftool: str,
        edit: str) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    photo = lib / "two.jpg"
    shutil.copyfile(MISC / "fr_two_people.jpg", photo)
    run_index(open_database(settings), settings, [lib], analyzer=sface_analyzer)
    faces = sorted(_state(settings))
    assert len(faces) == 2
    placed = run_cli(cli, "-d", str(settings.database_url), "persons", "move",
                     str(faces[0]))
    assert placed.exit_code == 0, placed.output
    before = _state(settings)

    subprocess.run([exiftool, "-q", "-overwrite_original", *EDITS[edit], str(photo)],
                   check=True, capture_output=True)
    again = _index(cli, settings, lib)
    assert "1 photos with new metadata, faces kept" in again.stdout, again.stdout
    assert _state(settings) == before
    with psycopg.connect(str(settings.database_url)) as conn:
        sha, taken = conn.execute("SELECT sha256, taken_at FROM images").fetchone()
    import hashlib

    assert sha == hashlib.sha256(photo.read_bytes()).hexdigest()
    if edit == "exif description":
        assert str(taken) == "2001-02-03 04:05:06"  # the metadata was read again


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def test_a_new_rotation_flag_keeps_the_faces_with_their_boxes_turned(
        cli, settings: Settings, sface_analyzer, tmp_path: Path, exiftool: str) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    photo = lib / "two.jpg"
    shutil.copyfile(MISC / "fr_two_people.jpg", photo)
    run_index(open_database(settings), settings, [lib], analyzer=sface_analyzer)
    before = _state(settings)

    subprocess.run([exiftool, "-q", "-overwrite_original", "-n", "-Orientation=6", str(photo)],
                   check=True, capture_output=True)
    again = _index(cli, settings, lib)
    assert "1 photos with new metadata, faces kept" in again.stdout, again.stdout
    after = _state(settings)
    assert sorted(after) == sorted(before)
    # Each box frames the same pixels in the photo as it is now shown (turned 90°):
    then = ImageOps.exif_transpose(Image.open(MISC / "fr_two_people.jpg")).convert("L")
    now = ImageOps.exif_transpose(Image.open(photo)).convert("L")
    assert now.size == (then.height, then.width)
    for face_id, (_, _, _, box) in after.items():
        old = then.crop(tuple(round(v) for v in before[face_id][3]))
        new = now.crop(tuple(round(v) for v in box))
        turned = np.asarray(old.transpose(Image.Transpose.ROTATE_270).resize(new.size), float)
        assert np.abs(turned - np.asarray(new, float)).mean() < 8, face_id
    with psycopg.connect(str(settings.database_url)) as conn:
        assert conn.execute("SELECT orientation FROM images").fetchone()[0] == 6


def _formats(lib: Path) -> list[Path]:
    """A photo with faces in each format whose image data rbv hashes its own way."""
    lib.mkdir(exist_ok=True)
    heic, png = lib / "bothie.heic", lib / "bulk_mask.png"
    shutil.copyfile(MISC / "nokia_bothie_1440x960.heic", heic)
    shutil.copyfile(MISC / "insightface_bulk_mask.png", png)
    with Image.open(MISC / "fr_two_people.jpg") as im:
        im.save(lib / "two.webp", quality=90)
        im.save(lib / "two.tif")
    return [heic, png, lib / "two.webp", lib / "two.tif"]


def test_heic_png_webp_and_tiff_keep_their_faces_through_a_tag_edit(
        cli, settings: Settings, sface_analyzer, tmp_path: Path, exiftool: str) -> None:
    lib = tmp_path / "lib"
    photos = _formats(lib)
    run_index(open_database(settings), settings, [lib], analyzer=sface_analyzer)
    before = _state(settings)
    with psycopg.connect(str(settings.database_url)) as conn:
        faced = conn.execute("SELECT count(DISTINCT image_id) FROM face_detections"
                             ).fetchone()[0]
    assert faced == len(photos)
    edited = [p.read_bytes() for p in photos]
    subprocess.run([exiftool, "-q", "-overwrite_original", "-XMP-xmp:Rating=5",
                    "-XMP-dc:Subject+=holiday", "-XMP-dc:Title=Summer", *map(str, photos)],
                   check=True, capture_output=True)
    assert all(p.read_bytes() != b for p, b in zip(photos, edited, strict=True))
    again = _index(cli, settings, lib)
    assert f"{len(photos)} photos with new metadata, faces kept" in again.stdout, again.stdout
    assert _state(settings) == before


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "TIFF", "HEIF"])
def test_the_image_data_hash_ignores_tags_and_sees_pixels(
        tmp_path: Path, exiftool: str, fmt: str) -> None:
    from rbv.media.image_data import image_data_hash

    source = {"JPEG": MISC / "fr_two_people.jpg", "HEIF": MISC / "nokia_bothie_1440x960.heic",
              "PNG": MISC / "insightface_bulk_mask.png"}.get(fmt)
    suffix = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "HEIF": ".heic"}
    photo, other = tmp_path / f"a{suffix[fmt]}", tmp_path / f"b{suffix[fmt]}"
    if source is not None:
        shutil.copyfile(source, photo)
    else:
        with Image.open(MISC / "fr_two_people.jpg") as im:
            im.save(photo, fmt)
    first = image_data_hash(photo, fmt, 10**9)
    subprocess.run([exiftool, "-q", "-overwrite_original", "-XMP-xmp:Rating=4",
                    "-XMP-dc:Description=On the pier", "-Keywords+=beach",
                    "-XMP-mwg-rs:RegionList={Name=Someone,Type=Face,Area={X=0.5,Y=0.5,"
                    "W=0.2,H=0.2,Unit=normalized}}", str(photo)], check=True,
                   capture_output=True)
    assert image_data_hash(photo, fmt, 10**9) == first
    # Other pixels (another photo, or the same one cropped) are another image.
    if fmt == "HEIF":
        shutil.copyfile(MISC / "nokia_cheers_1440x960.heic", other)
    else:
        with Image.open(photo) as im:
            im.crop((0, 0, im.width - 8, im.height)).save(other, fmt)
    assert image_data_hash(other, fmt, 10**9) != first


def test_a_photo_whose_pixels_changed_says_which_decisions_went_with_its_faces(
        cli, settings: Settings, sface_analyzer, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    photo = lib / "two.jpg"
    shutil.copyfile(MISC / "fr_two_people.jpg", photo)
    run_index(open_database(settings), settings, [lib], analyzer=sface_analyzer)
    first, second = sorted(_state(settings))
    url = str(settings.database_url)
    for args in (["persons", "move", str(first)], ["persons", "move", str(second)],
                 ["faces", "different", str(first), str(second)]):
        done = run_cli(cli, "-d", url, *args)
        assert done.exit_code == 0, (args, done.output)
    with psycopg.connect(url) as conn:
        ada = conn.execute("SELECT person_id FROM face_detections WHERE id = %s",
                           (first,)).fetchone()[0]
    assert run_cli(cli, "-d", url, "persons", "name", str(ada), "Ada").exit_code == 0

    # Other people's photo copied over it: none of its faces is one of the old ones
    # (tests/test_photo_carry.py: a crop or a retouch keeps them).
    shutil.copyfile(MISC / "fr_obama_and_biden.jpg", photo)
    again = _index(cli, settings, lib)
    lines = [line for line in again.stdout.splitlines() if "image data changed" in line]
    assert len(lines) == 2, again.stdout
    assert f"face {first} was not found in it again: it is gone, which was placed by hand " \
        f"in 'Ada', linked 'different' with face {second}" in lines[0]
    assert f"face {second} was not found in it again: it is gone, which was placed by hand " \
        f"in an unnamed person, linked 'different' with face {first}" in lines[1]

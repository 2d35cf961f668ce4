"""What `rbv index` takes for a photo and for a deleted one: the backups and sidecars
`export-xmp` leaves are not photos, an unmounted disk below the library is not a
deletion, and a file name that is not UTF-8 is a photo like any other (issue 21)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from rbv.config import Settings
from tests.conftest import FACES, MISC, PACK, run_cli
from tests.test_xmp import _name_by_position


def _rows(settings: Settings, sql: str, *params: object) -> list[tuple]:  # type: ignore[type-arg]
    with psycopg.connect(str(settings.database_url), autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def _index(cli, settings: Settings, *args: str):  # type: ignore[no-untyped-def]
    result = run_cli(cli, "index", "-d", str(settings.database_url), "--model-pack", str(PACK),
                     *args)
    assert result.exit_code == 0, result.output
    return result


def _missing(settings: Settings) -> list[str]:
    return sorted(Path(p).name for (p,) in _rows(
        settings, "SELECT path FROM image_paths WHERE missing_since IS NOT NULL"))


# --- item 6: PHOTO.EXT_original and *.xmp are not photos --------------------------------

def test_backups_and_sidecars_left_by_export_xmp_are_not_catalogued(
        cli, settings: Settings, tmp_path: Path, exiftool: str) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    shutil.copyfile(MISC / "fr_two_people.jpg", lib / "two.jpg")
    shutil.copyfile(FACES / "Barack_Obama" / "fr_obama.jpg", lib / "obama.jpg")
    shutil.copyfile(MISC / "nokia_bothie_1440x960.heic", lib / "bothie.heic")
    url = str(settings.database_url)
    first = json.loads(_index(cli, settings, str(lib), "--json").stdout)["catalogue"]
    assert (first["files"], first["new_images"], first["not_images"]) == (3, 3, 0)
    _name_by_position(settings)
    faces = _rows(settings, "SELECT count(*) FROM face_detections")[0][0]
    for args in ([], ["--write-into-files"]):  # sidecars beside all three, then backups
        done = run_cli(cli, "-d", url, "export-xmp", *args)
        assert done.exit_code == 0, done.output
    assert sorted(p.name for p in lib.iterdir()) == [
        "bothie.heic", "bothie.heic.xmp", "obama.jpg", "obama.jpg.xmp", "obama.jpg_original",
        "two.jpg", "two.jpg.xmp", "two.jpg_original"]

    again = json.loads(_index(cli, settings, str(lib), "--json").stdout)["catalogue"]
    # The two JPEGs were rewritten: new bytes, the same image data (issue 29), so the
    # same photos with their faces; nothing else is a file.
    assert (again["files"], again["not_images"], again["failed"]) == (3, 0, 0), again
    assert (again["new_images"], again["new_metadata"], again["aliases"],
            again["missing"]) == (0, 2, 0, 0), again
    assert sorted(Path(p).name for (p,) in _rows(settings, "SELECT path FROM image_paths")
                  ) == ["bothie.heic", "obama.jpg", "two.jpg"]
    assert _rows(settings, "SELECT count(*) FROM images") == [(3,)]
    assert _rows(settings, "SELECT count(*) FROM face_detections") == [(faces,)]
    third = json.loads(_index(cli, settings, str(lib), "--json").stdout)["catalogue"]
    assert (third["files"], third["unchanged"], third["not_images"]) == (3, 3, 0)
    assert _missing(settings) == []

    # A catalogue from before the fix holds a backup as a photo (the old content, with
    # its faces): the next index says so and marks it missing, so `prune` drops it.
    _rows(settings, "INSERT INTO images (sha256, size_bytes, format, status) "
          "VALUES (repeat('0', 64), 1, 'jpeg', 'ok')")
    _rows(settings, "INSERT INTO image_paths (image_id, path) SELECT id, %s FROM images "
          "WHERE sha256 = repeat('0', 64)", f"{lib}/two.jpg_original")
    legacy = json.loads(_index(cli, settings, str(lib), "--json").stdout)["catalogue"]
    assert legacy["missing"] == 1 and legacy["notes"] == [
        f"1 catalogued backup or sidecar file under {lib} is not a photo: marked "
        "missing"], legacy
    assert _missing(settings) == ["two.jpg_original"]
    # in words, the missing photos' remedy is the CLI's (the note names no command)
    _rows(settings, "INSERT INTO images (sha256, size_bytes, format, status) "
          "VALUES (repeat('1', 64), 1, 'jpeg', 'ok')")
    _rows(settings, "INSERT INTO image_paths (image_id, path) SELECT id, %s FROM images "
          "WHERE sha256 = repeat('1', 64)", f"{lib}/obama.jpg_original")
    said = " ".join(_index(cli, settings, str(lib)).stdout.split())
    assert ("1 missing. Missing photos keep their faces until `rbv prune`. Note: 1 "
            f"catalogued backup or sidecar file under {lib} is not a photo: marked "
            "missing.") in said, said
    assert _missing(settings) == ["obama.jpg_original", "two.jpg_original"]
    pruned = run_cli(cli, "prune", "-d", url, "--json")
    assert json.loads(pruned.stdout)["images"] == 2, pruned.output
    assert _rows(settings, "SELECT count(*) FROM images") == [(3,)]


# --- item 7: an unmounted disk below the named folder -----------------------------------

def _fill_disk(disk: Path) -> None:
    """Five photos, two of them a folder deeper."""
    for name in ("fr_obama.jpg", "fr_obama1.jpg", "fr_obama2.jpg"):
        shutil.copy(FACES / "Barack_Obama" / name, disk / name)
    (disk / "2020").mkdir()
    for name in ("fr_biden2_exif8.jpg", "fr_biden.jpg"):
        shutil.copy(FACES / "Joe_Biden" / name, disk / "2020" / name)


def test_an_emptied_folder_below_the_target_is_not_taken_for_deleted_photos(
        cli, settings: Settings, tmp_path: Path) -> None:
    lib, disk, away = tmp_path / "lib", tmp_path / "lib" / "disk", tmp_path / "away"
    disk.mkdir(parents=True)
    shutil.copy(MISC / "fr_two_people.jpg", lib / "keep.jpg")
    shutil.copy(MISC / "insightface_t1.jpg", lib / "gone.jpg")
    _fill_disk(disk)
    assert "7 new images" in _index(cli, settings, str(lib)).stdout
    assert run_cli(cli, "-d", str(settings.database_url), "cluster").exit_code == 0

    shutil.move(disk, away)  # the disk is unmounted: its mount point is an empty folder
    disk.mkdir()
    os.unlink(lib / "gone.jpg")  # a real deletion beside it
    result = _index(cli, settings, str(lib))
    assert "0 moved, 1 missing" in result.stdout
    assert (f"Note: {disk} holds no files (is the disk mounted?); none of its 5 catalogued "
            "paths was marked missing.") in " ".join(result.stdout.split())  # wrapped at 80
    assert _missing(settings) == ["gone.jpg"]
    dry = run_cli(cli, "prune", "-d", str(settings.database_url), "--dry-run")
    assert dry.stdout.startswith("Would remove 1 missing photos"), dry.output

    disk.rmdir()  # mounted again: everything is where it was
    shutil.move(away, disk)
    back = _index(cli, settings, str(lib), "--json")
    catalogue = json.loads(back.stdout)["catalogue"]
    assert (catalogue["unchanged"], catalogue["missing"], catalogue["notes"]) == (6, 0, [])

    shutil.rmtree(disk)  # the folder itself is gone: that is a deletion
    gone = _index(cli, settings, str(lib))
    assert "0 moved, 5 missing" in gone.stdout and "Note:" not in gone.stdout
    assert len(_missing(settings)) == 6


def test_an_unmounted_tmpfs_below_the_target_marks_nothing_missing(
        cli, settings: Settings, tmp_path: Path) -> None:
    lib, disk = tmp_path / "lib", tmp_path / "lib" / "disk"
    disk.mkdir(parents=True)
    shutil.copy(MISC / "fr_two_people.jpg", lib / "keep.jpg")
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "rbv-test", str(disk)],
                           capture_output=True, text=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")
    try:
        _fill_disk(disk)
        assert os.path.ismount(disk)
        assert "6 new images" in _index(cli, settings, str(lib), "--no-embed").stdout
    finally:
        subprocess.run(["umount", str(disk)], check=True)
    assert not os.path.ismount(disk) and not any(disk.iterdir())
    result = _index(cli, settings, str(lib), "--no-embed")
    assert f"Note: {disk} holds no files (is the disk mounted?)" in " ".join(
        result.stdout.split())
    assert _missing(settings) == []
    # An empty file system mounted there (the wrong disk) is no proof either.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "rbv-test", str(disk)], check=True)
    try:
        again = _index(cli, settings, str(lib), "--no-embed")
        assert f"Note: {disk} holds no files" in " ".join(again.stdout.split())
        assert _missing(settings) == []
    finally:
        subprocess.run(["umount", str(disk)], check=True)


# --- item 13: file names that are not UTF-8 ----------------------------------------------

def _odd(folder: str | Path, name: bytes) -> str:
    """The path (as Python's file functions take it) of ``name``'s bytes in ``folder``."""
    return os.fsdecode(os.fsencode(folder) + b"/" + name)


def test_photos_whose_names_are_not_utf8_are_indexed_clustered_exported_and_found_again(
        cli, settings: Settings, tmp_path: Path, exiftool: str) -> None:
    real = tmp_path / "real"
    summer = _odd(real, b"\xc9t\xe9")  # "Été" in Latin-1, as an old disk or a FAT copy has it
    os.makedirs(summer)
    for name, odd in (("fr_obama.jpg", b"caf\xe9.jpg"), ("fr_obama1.jpg", b"na\xefve.jpg"),
                      ("fr_obama2.jpg", b"plain.jpg"), ("fr_obama3.jpg", b"\xff\xfe.jpg")):
        shutil.copy(FACES / "Barack_Obama" / name, _odd(summer, odd))
    shutil.copy(FACES / "Joe_Biden" / "fr_biden.jpg", real / "biden.jpg")
    lib = tmp_path / "lib"  # reached through a symlink
    lib.symlink_to(real)
    url = str(settings.database_url)

    first = _index(cli, settings, str(lib))
    assert "Catalogued 5 files: 5 new images" in first.stdout and "0 failed" in first.stdout
    assert "Error" not in first.stderr
    odd_dir = os.fsencode(lib) + b"/\xc9t\xe9/"
    rows = dict(_rows(settings, "SELECT path_bytes, path FROM image_paths"))
    assert set(rows) == {odd_dir + b"caf\xe9.jpg", odd_dir + b"na\xefve.jpg",
                         odd_dir + b"plain.jpg", odd_dir + b"\xff\xfe.jpg",
                         os.fsencode(lib) + b"/biden.jpg"}  # the exact bytes, lossless
    assert rows[odd_dir + b"caf\xe9.jpg"] == f"{lib}/\\xc9t\\xe9/caf\\xe9.jpg"  # text to read
    assert _rows(settings, "SELECT count(*) FROM face_scans WHERE status = 'done'") == [(5,)]

    clustered = run_cli(cli, "-d", url, "cluster", "--threshold", "0.46")
    assert clustered.exit_code == 0, clustered.output
    (person,) = _rows(settings, "SELECT DISTINCT f.person_id FROM face_detections f "
                      "JOIN image_paths p ON p.image_id = f.image_id "
                      "WHERE p.path_bytes = %s", odd_dir + b"caf\xe9.jpg")
    named = run_cli(cli, "-d", url, "persons", "name", str(person[0]), "Barack")
    assert named.exit_code == 0, named.output
    listed = run_cli(cli, "-d", url, "photos", "-p", "Barack")
    assert listed.exit_code == 0, listed.output
    assert f"{lib}/\\xc9t\\xe9/caf\\xe9.jpg" in listed.stdout  # shown escaped
    barack = _rows(settings, "SELECT count(*) FROM face_detections WHERE person_id = %s",
                   person[0])[0][0]
    assert barack == 4

    exported = run_cli(cli, "-d", url, "export-xmp", str(lib), "--json")
    assert exported.exit_code == 0, exported.output
    sidecar = _odd(summer, b"caf\xe9.jpg.xmp")
    assert os.path.isfile(sidecar)  # beside the photo, under its own bytes
    read = subprocess.run([exiftool, "-j", "-struct", "-RegionInfo", sidecar],
                          capture_output=True, check=True)
    assert "Barack" in read.stdout.decode("utf-8", "replace")
    assert sorted(os.listdir(os.fsencode(summer))) == sorted(
        [b"caf\xe9.jpg", b"caf\xe9.jpg.xmp", b"na\xefve.jpg", b"na\xefve.jpg.xmp",
         b"plain.jpg", b"plain.jpg.xmp", b"\xff\xfe.jpg", b"\xff\xfe.jpg.xmp"])

    again = json.loads(_index(cli, settings, str(lib), "--json").stdout)["catalogue"]
    assert (again["files"], again["unchanged"], again["new_images"]) == (5, 5, 0), again
    assert (again["missing"], again["moved"], again["not_images"], again["failed"]) == (
        0, 0, 0, 0)
    os.rename(_odd(summer, b"caf\xe9.jpg"), _odd(summer, b"caf\xc3\xa9.jpg"))  # convmv'd
    renamed = _index(cli, settings, str(lib))
    assert "1 moved, 0 missing" in renamed.stdout
    assert _rows(settings, "SELECT count(*) FROM face_detections WHERE person_id = %s",
                 person[0]) == [(barack,)]
    assert _rows(settings, "SELECT count(*) FROM image_paths WHERE path = %s",
                 f"{lib}/\\xc9t\\xe9/café.jpg") == [(1,)]

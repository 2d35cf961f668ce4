"""Never write onto what changed (issue 29): `export-xmp` checks, before writing a sidecar
or into a photo, that the photo is still the file rbv indexed, a regular file, inside
the indexed folders and writable. FIFOs and folders are never opened (a hang fails the
test by its deadline), symlinks are not written through, and a symlink loop is said
once per run, not failed and retried every night."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from rbv.config import Settings
from rbv.jobs.library.index import run_index
from rbv.store import open_database
from tests.conftest import FACES, PACK, run_cli
from tests.test_xmp import _name_by_position

DEADLINE_S = 120
CHANGED = "changed since it was indexed"


def _photos(lib: Path, names: list[str]) -> dict[str, Path]:
    """One different photo per name, writable copies."""
    lib.mkdir(exist_ok=True)
    sources = sorted(FACES.glob("*/*.jpg"))
    out = {}
    for name, source in zip(names, sources[:len(names)], strict=True):
        shutil.copyfile(source, lib / name)
        out[name] = lib / name
    return out


def _rbv(settings: Settings, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """rbv in its own process: a hang on a FIFO ends in TimeoutExpired, not a stuck run."""
    env = {**os.environ, "DATABASE_URL": str(settings.database_url),
           "RBV_MODEL_PACK": str(PACK), "RBV_DATA_DIR": str(tmp / "data")}
    return subprocess.run([sys.executable, "-m", "rbv", *args], env=env, text=True,
                          capture_output=True, timeout=DEADLINE_S)


def test_a_photo_replaced_since_indexing_gets_no_names(
        cli, settings: Settings, sface_analyzer, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    lib.mkdir()
    ben = lib / "ben.jpg"
    shutil.copyfile(sorted((FACES / "Ben_Affleck").iterdir())[0], ben)
    shutil.copyfile(sorted((FACES / "Madonna").iterdir())[0], lib / "madonna.jpg")
    run_index(open_database(settings), settings, [lib], analyzer=sface_analyzer)
    _name_by_position(settings)
    shutil.copyfile(lib / "madonna.jpg", ben)  # Madonna over Ben, not indexed again
    madonna = ben.read_bytes()
    url = str(settings.database_url)

    for args in ([], ["--write-into-files"]):
        done = run_cli(cli, "-d", url, "export-xmp", str(lib), *args)
        assert done.exit_code == 3, done.output
        # the job's reason names no command; the CLI words its remedy: index it again
        assert f"Error: {ben}: {CHANGED}: `rbv index {ben}`" in done.stderr
        assert "1 failed" in done.stdout
        assert not (lib / "ben.jpg.xmp").exists() and not (lib / "ben.jpg_original").exists()
        assert ben.read_bytes() == madonna
    assert (lib / "madonna.jpg.xmp").exists() and (lib / "madonna.jpg_original").exists()

    run_index(open_database(settings), settings, [lib], analyzer=sface_analyzer)
    again = run_cli(cli, "-d", url, "export-xmp", str(lib))
    assert again.exit_code == 0, again.output  # indexed again: nothing is refused


def test_fifos_folders_symlinks_and_read_only_files_are_never_written_or_hung_on(
        settings: Settings, sface_analyzer, tmp_path: Path) -> None:
    lib, outside = tmp_path / "lib", tmp_path / "outside"
    outside.mkdir()
    photos = _photos(lib, ["fifo_sidecar.jpg", "link_sidecar.jpg", "folder.jpg",
                           "read_only.jpg", "link.jpg", "fifo.jpg", "plain.jpg"])
    run_index(open_database(settings), settings, [lib], analyzer=sface_analyzer)
    _name_by_position(settings)

    os.mkfifo(lib / "fifo_sidecar.jpg.xmp")
    theirs = outside / "theirs.xmp"
    theirs.write_text("<x:xmpmeta xmlns:x='adobe:ns:meta/'/>")
    os.symlink(theirs, lib / "link_sidecar.jpg.xmp")
    photos["folder.jpg"].unlink()
    photos["folder.jpg"].mkdir()
    photos["read_only.jpg"].chmod(0o444)
    victim = outside / "victim.jpg"
    shutil.copy2(photos["link.jpg"], victim)  # the same bytes, outside the library
    photos["link.jpg"].unlink()
    os.symlink(victim, photos["link.jpg"])
    photos["fifo.jpg"].unlink()
    os.mkfifo(photos["fifo.jpg"])
    read_only, victim_bytes = photos["read_only.jpg"].read_bytes(), victim.read_bytes()

    for args in (["import-xmp", str(lib), "--dry-run"],
                 ["export-xmp", str(lib), "--write-into-files", "--dry-run"],
                 ["export-xmp", str(lib)], ["export-xmp", str(lib), "--write-into-files"]):
        done = _rbv(settings, tmp_path, *args)
        assert done.returncode == 3, (args, done.stdout, done.stderr)
        assert f"{photos['fifo.jpg']}: not a regular file but a FIFO" in done.stderr, args
        if args[0] == "import-xmp":
            continue
        assert f"{photos['folder.jpg']}: not a regular file but a folder" in done.stderr
        if "--write-into-files" in args:
            assert f"{photos['read_only.jpg']}: is read-only" in done.stdout
            assert f"{photos['link.jpg']}: is a symlink to {victim}" in done.stdout
        else:
            assert f"{lib / 'fifo_sidecar.jpg'}: its sidecar fifo_sidecar.jpg.xmp is a " \
                "FIFO (named pipe), not a file" in done.stderr
            assert f"{lib / 'link_sidecar.jpg'}: its sidecar link_sidecar.jpg.xmp is a " \
                "symlink" in done.stdout

    assert (lib / "link_sidecar.jpg.xmp").is_symlink()
    assert theirs.read_text() == "<x:xmpmeta xmlns:x='adobe:ns:meta/'/>"
    assert not (lib / "folder.jpg.xmp").exists()
    assert photos["read_only.jpg"].read_bytes() == read_only
    assert not (lib / "read_only.jpg_original").exists()
    assert victim.read_bytes() == victim_bytes and not (outside / "victim.jpg_original").exists()
    assert (lib / "plain.jpg_original").exists()  # the ordinary photo was written into


def test_a_symlink_loop_is_said_not_failed_and_not_retried_every_night(
        cli, settings: Settings, sface_analyzer, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    photos = _photos(lib, ["loop.jpg", "plain.jpg"])
    run_index(open_database(settings), settings, [lib], analyzer=sface_analyzer)
    _name_by_position(settings)
    photos["loop.jpg"].unlink()
    os.symlink("loop.jpg", photos["loop.jpg"])  # points at itself
    url = str(settings.database_url)
    for _night in range(2):
        indexed = run_cli(cli, "-d", url, "index", str(lib), "--no-embed")
        assert indexed.exit_code == 0, indexed.output
        assert f"Note: {photos['loop.jpg']}: symlink loop; skipped" in " ".join(
            indexed.stdout.split())  # wrapped at 80 columns
        exported = run_cli(cli, "-d", url, "export-xmp", str(lib))
        assert exported.exit_code == 0, exported.output
        assert (f"{photos['loop.jpg']}: was missing when its folder was last indexed"
                in exported.stdout)

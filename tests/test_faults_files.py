"""Fault injection on the user's files (issue #21 items 1 and 10): `export-xmp
--write-into-files` killed with SIGKILL at every step of writing a photo's backup and the
photo, and run on a full disk (a real tmpfs). After each fault the photo is either as it
was or rewritten beside a complete backup; a re-run finishes the job, and `exiftool
-restore_original` then gives back the original bytes exactly. A backup cut short by an
earlier rbv is never trusted. Temporary files that killed or failed runs left are removed
by later runs, and only those.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from rbv.config import Settings
from rbv.jobs.library.index import run_index
from rbv.store import open_database
from tests.conftest import MISC, PACK, run_cli
from tests.test_xmp import _name_by_position

pytestmark = pytest.mark.slow  # export-xmp in a subprocess killed at every file step

PHOTOS = ("fr_two_people.jpg", "fr_obama_and_biden.jpg")
DEADLINE_S = 120
ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

# rbv in a subprocess that SIGKILLs itself at its STEP-th file step: a write into one of
# rbv's temporary files (cut in half), an fsync, a link, a rename or an unlink.
_KILLER = r"""
import os, re, signal, sys
limit, steps = int(sys.argv[1]), [0]
temp = re.compile(r"\.rbv-\d+\.tmp$")
def step(before=None):
    steps[0] += 1
    if steps[0] == limit:
        if before:
            before()
        os.kill(os.getpid(), signal.SIGKILL)
def hooked(name):
    real = getattr(os, name)
    def call(*args, **kwargs):
        step()
        return real(*args, **kwargs)
    setattr(os, name, call)
for name in ("fsync", "link", "replace", "unlink"):
    hooked(name)
real_write = os.write
def write(fd, data):
    try:
        where = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        where = ""
    if temp.search(where):
        step(lambda: real_write(fd, bytes(memoryview(data)[: len(data) // 2])))
    return real_write(fd, data)
os.write = write
sys.argv = ["rbv", *sys.argv[2:]]
from rbv.cli.app import main
main()
"""


def _env(settings: Settings, tmp: Path) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": str(settings.database_url),
            "RBV_MODEL_PACK": str(PACK), "RBV_DATA_DIR": str(tmp / "data")}


def _export(settings: Settings, tmp: Path, lib: Path, kill_at: int | None = None
            ) -> subprocess.CompletedProcess[str]:
    args = ["export-xmp", "--write-into-files", str(lib)]
    command = ([sys.executable, "-c", _KILLER, str(kill_at), *args] if kill_at
               else [sys.executable, "-m", "rbv", *args])
    return subprocess.run(command, env=_env(settings, tmp), text=True, capture_output=True,
                          timeout=DEADLINE_S)


def _restore(exiftool: str, lib: Path) -> None:
    subprocess.run([exiftool, "-q", "-restore_original", str(lib)], check=True,
                   capture_output=True, timeout=DEADLINE_S)


def _temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".rbv-" in p.name)


@contextlib.contextmanager
def _tmpfs(size: str) -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix="rbv-files-disk-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                   check=True, capture_output=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)
        with contextlib.suppress(OSError):
            where.rmdir()


def _named_library(lib: Path, settings: Settings, analyzer, names: tuple[str, ...] = PHOTOS  # type: ignore[no-untyped-def]
                   ) -> dict[Path, bytes]:
    """Photos under ``lib``, indexed, every face named: path → original bytes."""
    lib.mkdir(exist_ok=True)
    for name in names:
        shutil.copyfile(MISC / name, lib / name)
    run_index(open_database(settings), settings, [lib], analyzer=analyzer)
    _name_by_position(settings)
    return {lib / name: (lib / name).read_bytes() for name in names}


def _backup(photo: Path) -> Path:
    return photo.with_name(photo.name + "_original")


def test_killed_at_every_step_of_a_photo_rewrite_never_loses_the_original(
        settings: Settings, sface_analyzer, tmp_path: Path, exiftool: str) -> None:
    lib = tmp_path / "lib"
    originals = _named_library(lib, settings, sface_analyzer, PHOTOS[:1])
    photo, original = next(iter(originals.items()))
    step = 0
    while True:
        step += 1
        assert step < 40, "the export never finished"
        killed = _export(settings, tmp_path, lib, kill_at=step)
        if killed.returncode == 0:
            break  # past the last step: the export ran to its end
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        backup = _backup(photo)
        if photo.read_bytes() != original:  # rewritten: only with a complete backup
            assert backup.read_bytes() == original, step
        assert not backup.exists() or backup.read_bytes() == original, step
        again = _export(settings, tmp_path, lib)
        assert again.returncode == 0, (step, again.stderr)
        assert _temps(lib) == [], step  # what the killed run left is gone
        assert backup.read_bytes() == original and photo.read_bytes() != original, step
        _restore(exiftool, lib)
        assert photo.read_bytes() == original and not backup.exists(), step
    assert step > 8  # every step was reached: writes, syncs, link, unlink, rename
    _restore(exiftool, lib)
    assert photo.read_bytes() == original


@ROOT_ONLY
def test_disk_full_while_backing_up_or_rewriting_leaves_the_photo_whole(
        settings: Settings, sface_analyzer, tmp_path: Path, exiftool: str) -> None:
    """A 3 MB tmpfs holding the photos; a filler leaves too little room for the first
    backup, then room for the backup but not for the rewritten photo."""
    with _tmpfs("3m") as disk:
        lib = disk / "lib"
        originals = _named_library(lib, settings, sface_analyzer)
        first = min(originals, key=lambda p: str(p))
        for room in (len(originals[first]) // 2, len(originals[first]) + 64 * 1024):
            filler = disk / "filler"
            with filler.open("wb") as f:
                f.write(b"\0" * max(0, shutil.disk_usage(disk).free - room))
            done = _export(settings, tmp_path, lib)
            assert done.returncode == 1, done.stderr
            errors = [ln for ln in done.stderr.splitlines() if ln.startswith("Error: ")]
            assert len(errors) == 1 and "no space left" in errors[0], done.stderr
            assert str(lib) in errors[0], errors
            assert "Traceback" not in done.stderr
            assert _temps(lib) == []  # removed at once, not at the next run
            for photo, original in originals.items():
                assert photo.read_bytes() == original
                backup = _backup(photo)
                assert not backup.exists() or backup.read_bytes() == original
            filler.unlink()
            done = _export(settings, tmp_path, lib)
            assert done.returncode == 0, done.stderr
            for photo, original in originals.items():
                assert _backup(photo).read_bytes() == original
                assert photo.read_bytes() != original
            _restore(exiftool, lib)
            assert {p: p.read_bytes() for p in originals} == originals
            assert sorted(p.name for p in lib.iterdir()) == sorted(p.name for p in originals)


def test_a_backup_that_does_not_verify_is_never_trusted(
        settings: Settings, sface_analyzer, tmp_path: Path, exiftool: str) -> None:
    """The issue's reproduction: an older rbv left a backup cut short by a full disk.
    That photo is left alone with one line (exit 3); the other photo is written."""
    lib = tmp_path / "lib"
    originals = _named_library(lib, settings, sface_analyzer)
    cut, other = sorted(originals, key=str)
    _backup(cut).write_bytes(originals[cut][:100_000])
    done = _export(settings, tmp_path, lib)
    assert done.returncode == 3, done.stderr
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("Error: ")]
    assert len(errors) == 1 and f"{cut.name}_original" in errors[0], done.stderr
    assert "not a verified copy" in errors[0]
    assert cut.read_bytes() == originals[cut]
    assert _backup(cut).read_bytes() == originals[cut][:100_000]
    assert other.read_bytes() != originals[other]
    assert _backup(other).read_bytes() == originals[other]
    # The backup rbv wrote stays trusted once the photo is indexed again (its catalogued
    # content is then the rewritten photo) and someone stripped the regions from it.
    rewritten = other.read_bytes()
    with psycopg.connect(str(settings.database_url)) as conn:
        conn.execute("UPDATE images SET sha256 = %s, size_bytes = %s WHERE sha256 = %s",
                     (_sha(rewritten), len(rewritten), _sha(originals[other])))
    subprocess.run([exiftool, "-q", "-overwrite_original", "-RegionInfo=", str(other)],
                   check=True, timeout=DEADLINE_S)
    stripped = other.read_bytes()
    again = _export(settings, tmp_path, lib)
    assert again.returncode == 3 and other.read_bytes() != stripped, again.stderr
    # ... but not a backup of the same size with other bytes
    _backup(other).write_bytes(originals[other][:-1] + b"!")
    subprocess.run([exiftool, "-q", "-overwrite_original", "-RegionInfo=", str(other)],
                   check=True, timeout=DEADLINE_S)
    stripped = other.read_bytes()
    again = _export(settings, tmp_path, lib)
    assert again.returncode == 3 and other.read_bytes() == stripped, again.stderr
    assert sum(ln.startswith("Error: ") for ln in again.stderr.splitlines()) == 2  # both
    assert cut.read_bytes() == originals[cut]  # never touched
    _backup(cut).unlink()  # the user moves the bad backups away
    _backup(other).write_bytes(originals[other])
    _restore(exiftool, lib)
    assert {p: p.read_bytes() for p in originals} == originals


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_temporary_files_of_dead_runs_are_removed_and_nothing_else(
        settings: Settings, sface_analyzer, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    originals = _named_library(lib, settings, sface_analyzer, PHOTOS[:1])
    photo = next(iter(originals))
    pid = _dead_pid()
    left = [lib / f".{photo.name}.rbv-{pid}.tmp", lib / f".{photo.name}_original.rbv-{pid}.tmp",
            lib / f".{photo.name}.xmp.rbv-{pid}.tmp"]
    kept = [lib / f".{photo.name}.rbv-{os.getpid()}.tmp",  # a live process's
            lib / f".{photo.name}.rbv-{pid}.tmp.keep", lib / f"{photo.name}.rbv-{pid}.tmp",
            lib / f".notes.rbv-{pid}.txt", lib / f".{photo.name}.tmp{pid}"]
    for path in [*left, *kept]:
        path.write_bytes(b"partial")
    link = lib / f".link.rbv-{pid}.tmp"
    link.symlink_to(photo)
    done = _export(settings, tmp_path, lib)
    assert done.returncode == 0, done.stderr
    assert not any(p.exists() for p in left)
    assert all(p.read_bytes() == b"partial" for p in kept)
    assert link.is_symlink()


@ROOT_ONLY
def test_site_on_a_full_disk_leaves_no_temporary_file_and_clears_old_ones(
        cli, faces_settings: Settings, tmp_path: Path) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    with _tmpfs("192k") as disk:
        out = disk / "site"
        done = run_cli(cli, "-d", url, "site", str(out))
        assert done.exit_code == 1, done.output
        assert "no space left" in done.output
        left = [p.name for p in out.rglob("*") if re.search(r"\.tmp\d*$", p.name)]
        assert left == []  # removed as the write failed
        dead = _dead_pid()
        stale = [out / "thumbs" / f".1_0123456789.jpg.tmp{dead}",  # an older rbv's name
                 out / "thumbs" / f".2_0123456789.jpg.rbv-{dead}.tmp",
                 out / f".index.html.rbv-{dead}.tmp"]
        kept = [out / "thumbs" / f"notes.tmp{dead}", out / "thumbs" / f".notes.txt.tmp{dead}"]
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        for path in [*stale, *kept]:
            path.write_bytes(b"x")
        again = run_cli(cli, "-d", url, "site", str(out), "--json")
        assert again.exit_code == 0, again.output
        assert json.loads(again.stdout)["temps_removed"] == len(stale)
        assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    return int(done.stdout)

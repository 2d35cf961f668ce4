"""A program keeps a photo open while `export-xmp --write-into-files` rewrites it (issue
62 item 8): it would write its save into the file rbv swapped out, and the save would be
lost. rbv holds a Linux write lease across its last check and its swap: a photo another
process has open is not written (one line names it, the run goes on, exit 3) and is
written by the next run once closed; a program that opens the photo for writing during
the swap waits, the swap is undone, and its save lands in the photo. The other program
is a real second process; the tests wait on what it prints and on /proc/locks, never on
a sleep."""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

from rbv.config import Settings
from rbv.formats import replace_if_unchanged
from rbv.jobs.exchange.export_xmp import OPEN_ELSEWHERE
from tests.conftest import run_cli
from tests.test_faults_files import PHOTOS, _backup, _named_library, _temps

pytestmark = pytest.mark.slow  # ~6 s: export-xmp beside a second process

DEADLINE_S = 60
AGAIN = "re-run `rbv export-xmp`"
"""The remedy the CLI words after the reason (the job names no command)."""

# An editor: opens the photo for writing, says so, then saves what it is sent (nothing:
# no save) through that same descriptor and closes.
_EDITOR = r"""
import sys
with open(sys.argv[1], "r+b") as f:
    print("open", flush=True)
    save = sys.stdin.buffer.read()
    if save:
        f.seek(0)
        f.write(save)
        f.truncate()
"""


def _editor(photo: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", _EDITOR, str(photo)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def _brightened(photo: Path) -> bytes:
    out = io.BytesIO()
    ImageEnhance.Brightness(Image.open(photo)).enhance(1.3).save(out, "JPEG", quality=90)
    return out.getvalue()


def _export(cli, settings: Settings, lib: Path):  # type: ignore[no-untyped-def]
    return run_cli(cli, "-d", str(settings.database_url), "export-xmp",
                   "--write-into-files", str(lib))


def test_a_photo_open_in_another_program_is_left_to_it_until_closed(
        cli, settings: Settings, sface_analyzer, tmp_path: Path) -> None:
    lib = tmp_path / "lib"
    originals = _named_library(lib, settings, sface_analyzer)
    held, other = (lib / name for name in PHOTOS)
    editor = _editor(held)
    try:
        assert editor.stdout is not None and editor.stdout.readline() == b"open\n"

        result = _export(cli, settings, lib)

        assert result.exit_code == 3, result.output
        assert result.stderr.splitlines() == [f"Error: {held}: {OPEN_ELSEWHERE}; {AGAIN}"]
        assert held.read_bytes() == originals[held]
        assert not _backup(held).exists() and _temps(lib) == []
        assert _backup(other).read_bytes() == originals[other] != other.read_bytes()
    finally:
        editor.communicate(b"", timeout=DEADLINE_S)  # closed without a save
    assert editor.returncode == 0

    again = _export(cli, settings, lib)

    assert again.exit_code == 0, again.output
    assert _backup(held).read_bytes() == originals[held] != held.read_bytes()
    assert _temps(lib) == []


def test_a_save_through_a_descriptor_opened_during_the_swap_is_kept(
        cli, settings: Settings, sface_analyzer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    lib = tmp_path / "lib"
    originals = _named_library(lib, settings, sface_analyzer)
    raced, other = (lib / name for name in PHOTOS)
    edited = _brightened(raced)
    editors: list[subprocess.Popen[bytes]] = []
    real = replace_if_unchanged._exchange

    def racing(a: Path, b: Path) -> bool:
        # The editor opens the photo after rbv's last check, right before the swap: it
        # waits for rbv's lease (seen in /proc/locks), or, without one, gets the file.
        if Path(b) == raced and not editors:
            editors.append(_editor(raced))
            _wait_for_break(raced, editors[0])
        return real(a, b)

    monkeypatch.setattr(replace_if_unchanged, "_exchange", racing)
    try:
        result = _export(cli, settings, lib)
    finally:
        for editor in editors:
            assert editor.stdout is not None and editor.stdout.readline() == b"open\n"
            editor.communicate(edited, timeout=DEADLINE_S)  # its save, through its descriptor
            assert editor.returncode == 0

    assert len(editors) == 1
    assert raced.read_bytes() == edited  # the save is in the photo, not in a lost file
    assert result.exit_code == 3, result.output
    assert result.stderr.splitlines() == [f"Error: {raced}: {OPEN_ELSEWHERE}; {AGAIN}"]
    assert not _backup(raced).exists() and _temps(lib) == []
    assert _backup(other).read_bytes() == originals[other] != other.read_bytes()


def _wait_for_break(photo: Path, editor: subprocess.Popen[bytes]) -> None:
    """Until the editor waits on a lease of ``photo`` (its open breaks it) or has the
    photo open (there was no lease)."""
    assert editor.stdout is not None
    breaking = re.compile(rf"LEASE\s+BREAKING\s.*:{os.stat(photo).st_ino}\s")
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if breaking.search(Path("/proc/locks").read_text()):
            return
        if select.select([editor.stdout], [], [], 0.01)[0]:
            return  # opened at once: nothing held the photo
    raise AssertionError("the editor neither waited on a lease nor opened the photo")

"""The Debian packages the tests need come from the README's install block
(``scripts/tools/install_test_packages.sh``), never from apt-get inside pytest; a missing
one fails the tests that need it and says how to install it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.system_packages import INSTALL, MissingPackage, command_path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / INSTALL
# "command package what for" entries of the script's NEEDED list
NEEDED = re.findall(r'^\s+"(\S+) (\S+) [^"]+"$', SCRIPT.read_text(), re.M)


def _run_with(tmp_path: Path, commands: list[str]) -> tuple[subprocess.CompletedProcess[str],
                                                                list[str]]:
    """The script, with only ``commands`` (stubs), ``id``, a recording ``apt-get`` and a
    ``sudo`` that runs it on PATH: (its result, the apt-get command lines it ran)."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    for command in commands:
        (stubs / command).write_text("#!/bin/sh\n")
        (stubs / command).chmod(0o755)
    (stubs / "id").symlink_to(shutil.which("id") or "/usr/bin/id")
    calls = tmp_path / "apt-get.calls"
    (stubs / "apt-get").write_text(f'#!/bin/sh\necho "$*" >> {calls}\n')
    (stubs / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    for stub in ("apt-get", "sudo"):
        (stubs / stub).chmod(0o755)
    done = subprocess.run(["/bin/bash", str(SCRIPT)], env={"PATH": str(stubs)},
                          capture_output=True, text=True, timeout=60, check=False)
    return done, calls.read_text().splitlines() if calls.exists() else []


def test_the_script_names_the_tests_debian_packages() -> None:
    assert {"exiftool", "chromium", "redis-server", "ffmpeg", "node", "npm"} \
        <= {command for command, _ in NEEDED}


def test_with_every_package_there_the_script_only_looks(tmp_path: Path) -> None:
    done, apt = _run_with(tmp_path, [command for command, _ in NEEDED])
    assert (done.returncode, done.stdout, done.stderr, apt) == (0, "", "", [])


def test_the_script_installs_what_is_missing_and_only_that(tmp_path: Path) -> None:
    there = [command for command, _ in NEEDED if command not in ("exiftool", "ffmpeg")]
    done, apt = _run_with(tmp_path, there)
    assert done.returncode == 0, done.stderr
    assert apt == ["-o DPkg::Lock::Timeout=600 install -y libimage-exiftool-perl ffmpeg"]


def test_a_missing_command_fails_saying_how_to_install_it() -> None:
    with pytest.raises(MissingPackage) as raised:
        command_path("rbv-no-such-command", "rbv-no-such-package", "to read XMP back")
    assert str(raised.value) == (
        "rbv-no-such-command is needed to read XMP back and is not on PATH: run "
        "scripts/tools/install_test_packages.sh (it installs Debian's rbv-no-such-package)")

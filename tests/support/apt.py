"""Debian packages some tests need (exiftool, chromium, redis-server, ffmpeg), installed
when missing."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

# Another apt-get (an engineer's, unattended-upgrades) holding dpkg's lock is waited for,
# up to this long, instead of failing the install at once (the review-site fixture
# failed with 2 errors that way).
LOCK_WAIT_S = 600


def apt_install(*packages: str) -> subprocess.CompletedProcess[str]:
    """``apt-get install -y PACKAGE…``, after ``apt-get update`` when the first try fails;
    the last apt-get's result."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    wait = ["-o", f"DPkg::Lock::Timeout={LOCK_WAIT_S}"]
    done = subprocess.CompletedProcess[str]([], 1, "", "")
    for command in (["install", "-y", *packages], ["update"], ["install", "-y", *packages]):
        done = subprocess.run(["apt-get", *wait, *command], capture_output=True, text=True,
                              env=env, check=False)
        if command[0] == "install" and done.returncode == 0:
            break
    return done


def installed(command: str, package: str, needed_for: str) -> str:
    """Path of ``command``, installed with ``apt-get install -y PACKAGE`` when missing; a
    failed install fails the test, saying what ``command`` is ``needed_for``."""
    found = shutil.which(command)
    if found:
        return found
    done = apt_install(package)
    found = shutil.which(command)
    if not found:
        pytest.fail(f"{command} is needed {needed_for} and could not be installed "
                    f"(apt-get install -y {package}: {done.stderr.strip()[-500:]})")
    return found

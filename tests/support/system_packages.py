"""The Debian packages some tests need (exiftool, chromium, redis-server, ffmpeg, Node.js),
installed by ``scripts/tools/install_test_packages.sh`` (the README's install block), never
from inside the tests: a missing one fails the tests that need it, saying how to
install it."""

from __future__ import annotations

import shutil

INSTALL = "scripts/tools/install_test_packages.sh"


class MissingPackage(RuntimeError):
    """A command the tests need is not on PATH (the message says how to install it)."""


def command_path(command: str, package: str, needed_for: str) -> str:
    """Path of ``command``; raises :class:`MissingPackage` when it is not on PATH, saying
    what it is ``needed_for`` and that ``INSTALL`` brings it (Debian's ``package``)."""
    found = shutil.which(command)
    if found is None:
        raise MissingPackage(f"{command} is needed {needed_for} and is not on PATH: run "
                             f"{INSTALL} (it installs Debian's {package})")
    return found

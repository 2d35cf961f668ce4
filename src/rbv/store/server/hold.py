"""The embedded server's hold, set by ``rbv db start`` and cleared by ``rbv db stop``.

A marker file in the data folder, beside the server lock (0600, in a 0700 folder: its
user's alone). While it is there the last rbv process to leave the server neither stops
it nor hands it to a watcher, and a watcher that finds it leaves the server running, so
the URL ``rbv db start`` printed keeps working for other tools. A hold lasts as long as
the server it was set on: a server that has to be started again (after a reboot, say)
starts without one. Read and change it under the server lock."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

HOLD_NAME = ".pg.held"


def _marker(pgdata: Path) -> Path:
    return pgdata.parent / HOLD_NAME


def is_held(pgdata: Path) -> bool:
    """Whether the server of ``pgdata`` is held up until ``rbv db stop``."""
    return os.path.lexists(_marker(pgdata))


def hold(pgdata: Path) -> None:
    """Keep the server of ``pgdata`` up after the last rbv process leaves."""
    fd = os.open(_marker(pgdata), os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    os.close(fd)


def release(pgdata: Path) -> None:
    """Let the server of ``pgdata`` stop again with the last rbv process."""
    with contextlib.suppress(FileNotFoundError):
        _marker(pgdata).unlink()

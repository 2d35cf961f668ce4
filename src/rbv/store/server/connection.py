"""One entry point to the database: a server given by URL, or the embedded one.

Every connection has the pgvector types registered (once the extension exists), and
every failure to connect becomes one :class:`~rbv.errors.DatabaseUnavailable` line that
names the server without its password.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import psycopg
from pgvector.psycopg.bit import register_bit_info
from pgvector.psycopg.halfvec import register_halfvec_info
from pgvector.psycopg.sparsevec import register_sparsevec_info
from pgvector.psycopg.vector import register_vector_info
from psycopg.adapt import AdaptersMap
from psycopg.conninfo import conninfo_to_dict
from psycopg.types import TypeInfo

from rbv.errors import (
    EXIT_ERROR,
    ConfigError,
    DatabaseUnavailable,
    RbvError,
    Remedy,
    printable,
)

_SETUP_PROBLEMS = ("authentication", "password", "does not exist", "pg_hba.conf",
                   "permission denied", "SSL", "certificate", "invalid", "resolve host")


class Database:
    """Where rbv's data lives; hands out connections with pgvector registered."""

    def __init__(self, url: str, display: str, connect_timeout_s: int = 10, *,
                 embedded: bool = False, restart: Callable[[], str] | None = None,
                 data_dir: Path | None = None) -> None:
        self.url = url
        self.display = display
        self.embedded = embedded
        # rbv's data folder, where the files it keeps beside the database go (the face
        # lists of rbv.jobs.grouping.face_lists); None: keep none
        self.data_dir = data_dir
        # the embedded server's start, for a long-running process whose server stopped
        # under it (returns the URL it answers on)
        self.restart = restart
        self._connect_timeout_s = connect_timeout_s
        # pgvector's types as the first connection that found them registered them:
        # later connections start with them and ask the server nothing
        self._adapters: AdaptersMap | None = None

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        """A new connection; the caller closes it (use it as a context manager)."""
        return self._open(psycopg.Connection, autocommit)

    def _open(self, kind: type[psycopg.Connection[Any]], autocommit: bool
              ) -> psycopg.Connection:
        try:
            conn = kind.connect(
                self.url,
                autocommit=autocommit,
                connect_timeout=self._connect_timeout_s,
                application_name="rbv",
                context=self._adapters,
            )
        except psycopg.OperationalError as exc:
            reason = _reason(exc, self.url)
            # A refused login or a missing database is the user's to fix (exit 1); a
            # server that does not answer is down, and a later re-run may succeed (2).
            setup = any(m in reason for m in _SETUP_PROBLEMS)
            if self.embedded:
                fix = "re-run; if it persists, see the server's log in its data directory"
            elif setup:
                fix = "Check the database's URL, or give none to use the embedded database"
            else:
                fix = ("Is the server up? Re-run when it is (work committed so far is kept), "
                       "or check the database's URL")
            error = ConfigError if setup else DatabaseUnavailable
            raise error(f"cannot connect to PostgreSQL at {self.display}: {reason}. {fix}",
                        remedies=[] if self.embedded else [Remedy("check_url")]) from None
        except psycopg.ProgrammingError as exc:
            # libpq quotes the part of the URL it choked on, password and all.
            reason = re.sub(r'"[^"]*"', '"…"', _reason(exc, self.url))
            raise ConfigError(f"invalid database URL {self.display}: {reason}") from None
        if self._adapters is None and register_vector_types(conn):
            self._adapters = AdaptersMap(conn.adapters)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A connection whose work is committed on success and rolled back on error."""
        with self.connect() as conn, conn.transaction():
            yield conn


_VECTOR_TYPES = {"vector": register_vector_info, "bit": register_bit_info,
                 "halfvec": register_halfvec_info, "sparsevec": register_sparsevec_info}


def register_vector_types(conn: psycopg.Connection) -> bool:
    """Register pgvector's types on ``conn``, read from the catalogue in one query
    (pgvector's own ``register_vector`` asks four times: 7.6 ms a connection, twice the
    connection itself). False, with nothing registered, when there is no vector type
    yet: the database is not migrated, and commands that need it are stopped earlier by
    the schema check with "run `rbv migrate`". ``conn`` is left as it was found, idle
    or in its transaction."""
    with conn.transaction():
        rows = conn.execute(
            "SELECT n.name, t.typname, t.oid, t.typarray, t.oid::regtype::text, t.typdelim "
            "FROM unnest(%s::text[]) AS n(name) JOIN pg_type t ON t.oid = to_regtype(n.name)",
            (list(_VECTOR_TYPES),)).fetchall()
    found = {name: TypeInfo(typname, oid, array_oid, regtype=regtype, delimiter=delimiter)
             for name, typname, oid, array_oid, regtype, delimiter in rows}
    if "vector" not in found:
        return False
    for name, info in found.items():
        _VECTOR_TYPES[name](conn, info)
    return True


class _Kept(psycopg.Connection[Any]):
    """A connection of a :class:`PooledDatabase`: leaving its ``with`` block commits (or
    rolls back) as any connection does, then hands it back instead of closing it."""

    home: PooledDatabase | None = None

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None,
                 exc_tb: TracebackType | None) -> None:
        home, self.home = self.home, None
        if home is None or self.closed:
            super().__exit__(exc_type, exc_val, exc_tb)
            return
        try:
            if exc_type:
                self.rollback()
            else:
                self.commit()
        except BaseException:
            self.close()
            raise
        home._give_back(self)


class PooledDatabase(Database):
    """The same database for a long-running process (``rbv serve``): connections are
    kept after use and handed out again, so a request does not pay for connecting (and
    authenticating) several times. A connection goes back only idle, with no session
    advisory lock left (the pack's person lock is never kept between edits); a broken
    one is dropped. When the server went away, :meth:`forget` drops them all; a new
    connection that finds the embedded server stopped starts it again first."""

    KEEP = 8

    def __init__(self, db: Database) -> None:
        super().__init__(db.url, db.display, db._connect_timeout_s, embedded=db.embedded,
                         restart=db.restart, data_dir=db.data_dir)
        self._idle: list[_Kept] = []
        self._lock = threading.Lock()
        self._restarting = threading.Lock()

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        conn: _Kept | None = None
        with self._lock:
            while self._idle and conn is None:
                candidate = self._idle.pop()
                if not (candidate.closed or candidate.broken):
                    conn = candidate
        if conn is None:
            opened = self._open_again(autocommit)
            assert isinstance(opened, _Kept)
            conn = opened
        conn.autocommit = autocommit
        conn.home = self
        return conn

    def _open_again(self, autocommit: bool) -> psycopg.Connection:
        """A new connection; the embedded server, found stopped, is started again first
        (one thread at a time), as the start of any command would."""
        try:
            return self._open(_Kept, autocommit)
        except DatabaseUnavailable:
            if self.restart is None:
                raise
        with self._restarting:
            try:
                return self._open(_Kept, autocommit)
            except DatabaseUnavailable:
                self.url = self.restart()
        return self._open(_Kept, autocommit)

    def forget(self) -> None:
        """Drop the kept connections (the server they went to is gone)."""
        self.close()

    def _give_back(self, conn: _Kept) -> None:
        try:
            if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                raise psycopg.InterfaceError("not idle")
            conn.autocommit = True
            conn.execute("SELECT pg_advisory_unlock_all()")
        except psycopg.Error:
            conn.close()
            return
        with self._lock:
            if len(self._idle) < self.KEEP:
                self._idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        """Close the kept connections."""
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class DatabaseDiskFull(RbvError):
    """The database server ran out of disk space; what was committed is kept."""

    exit_code = EXIT_ERROR


def connection_lost(exc: BaseException) -> str | None:
    """What went wrong, in words, when ``exc`` says the connection to the database server
    is gone (the server stopped, was killed, is restarting or cannot be reached: no SQL
    state, or one of classes 08 and 57P); None for any other error."""
    if not isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return None
    state = exc.sqlstate or ""
    if state and not state.startswith(("08", "57P")):  # a lock, a deadlock, a timeout …
        return None
    return f"the database server stopped or the connection was lost ({_first_line(exc)})"


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return printable(lines[0]) if lines else type(exc).__name__


def database_error(exc: BaseException) -> RbvError | None:
    """The one-line error for a database failure met in the middle of a command (the
    server was stopped or killed, the connection dropped, the disk filled up), or None
    when ``exc`` is not one. Work committed before it is kept, so a re-run resumes."""
    if isinstance(exc, psycopg.errors.DiskFull):
        return DatabaseDiskFull(
            "the database server's disk is full; free space there, then re-run "
            "(work committed so far is kept)")
    if (lost := connection_lost(exc)) is not None:
        return DatabaseUnavailable(
            f"{lost}; work committed so far is kept, re-run when the server is up")
    if isinstance(exc, psycopg.OperationalError):  # out of memory, a deadlock, a cancel …
        return DatabaseUnavailable(
            f"the database server stopped this command ({_first_line(exc)}); work "
            "committed so far is kept, re-run")
    return None


_LIBPQ_ENV = {"host": "PGHOST", "port": "PGPORT", "dbname": "PGDATABASE", "user": "PGUSER",
              "password": "PGPASSWORD", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT",
              "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY", "options": "PGOPTIONS",
              "connect_timeout": "PGCONNECT_TIMEOUT", "application_name": "PGAPPNAME"}


def libpq_environment(url: str) -> dict[str, str]:
    """The ``PG*`` environment variables that make libpq clients (psql) connect to
    ``url``: a child process gets the password there, not in its visible arguments."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        raise ConfigError("the database URL cannot be parsed",
                          remedies=[Remedy("check_url")]) from None
    unknown = sorted(set(parts) - set(_LIBPQ_ENV))
    if unknown:
        raise ConfigError(f"the database URL uses options psql cannot take from the "
                          f"environment ({', '.join(unknown)}); run psql yourself")
    return {_LIBPQ_ENV[k]: str(v) for k, v in parts.items() if v is not None}


def describe_url(url: str) -> str:
    """``user@host:port/dbname`` for messages: never the password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "<unparseable URL>"
    host = str(parts.get("host") or "localhost")
    port = parts.get("port")
    where = f"{host}:{port}" if port else host
    user = parts.get("user")
    return f"{str(user) + '@' if user else ''}{where}/{parts.get('dbname', '')}"


def _reason(exc: Exception, url: str) -> str:
    """The useful tail of a libpq message, on one line, with any password removed."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0] if lines else type(exc).__name__
    text = text.rsplit(" failed: ", 1)[-1].removeprefix("FATAL:").strip()
    try:
        password = conninfo_to_dict(url).get("password")
    except psycopg.ProgrammingError:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return redact(text)


def redact(text: str) -> str:
    """``text`` with the password of any URL (``scheme://user:pw@``) or keyword
    connection string (``password=…``) in it replaced by ``***``."""
    text = re.sub(r"""([A-Za-z][\w+.-]*://[^/@\s:]*):[^\s"'/]*@""", r"\1:***@", text)
    return re.sub(r"(password\s*=\s*)('[^']*'|\S+)", r"\1***", text, flags=re.IGNORECASE)

"""One entry point to the database: a server given by URL, or the embedded one.

Every connection has the pgvector type registered (once the extension exists), and
every failure to connect becomes one :class:`~rbv.errors.DatabaseUnavailable` line that
names the server without its password.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from pgvector.psycopg import register_vector
from psycopg.conninfo import conninfo_to_dict

from rbv.errors import ConfigError, DatabaseUnavailable


class Database:
    """Where rbv's data lives; hands out connections with pgvector registered."""

    def __init__(self, url: str, display: str, connect_timeout_s: int = 10) -> None:
        self.url = url
        self.display = display
        self._connect_timeout_s = connect_timeout_s

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        """A new connection; the caller closes it (use it as a context manager)."""
        try:
            conn = psycopg.connect(
                self.url,
                autocommit=autocommit,
                connect_timeout=self._connect_timeout_s,
                application_name="rbv",
            )
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable(
                f"cannot connect to PostgreSQL at {self.display}: {_reason(exc, self.url)}. "
                "Check --database / DATABASE_URL, or omit both to use the embedded database"
            ) from None
        except psycopg.ProgrammingError as exc:
            raise ConfigError(
                f"invalid database URL {self.display}: {_reason(exc, self.url)}"
            ) from None
        try:
            register_vector(conn)
        except psycopg.ProgrammingError:
            # No vector type yet: the database is not migrated. Commands that need it
            # are stopped earlier by the schema check with "run `rbv migrate`".
            conn.rollback()
        return conn

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A connection whose work is committed on success and rolled back on error."""
        with self.connect() as conn, conn.transaction():
            yield conn


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
    return text

"""Plain-SQL migrations, dbmate style.

``migrations/NNNN_name.sql`` files are applied in order; each runs in one transaction
together with its row in ``schema_migrations``, so a failed file leaves nothing behind.
Concurrent migrators are serialised by an advisory lock.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path

import psycopg

from rbv.errors import (
    MigrationError,
    PgvectorMissing,
    Remedy,
    SchemaNotReady,
    SchemaTooNew,
)
from rbv.store.server.connection import Database

_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x7262_765F  # "rbv_": one advisory lock id for all migrators
_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    path: Path

    @cached_property
    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationState:
    """A migration and when it was applied (None: pending)."""

    migration: Migration
    applied_at: datetime | None


def migrations_dir() -> Path:
    """The repository's ``migrations/`` in a checkout, the packaged copy in a wheel."""
    package = Path(__file__).resolve().parents[2]  # src/rbv (site-packages/rbv in a wheel)
    checkout = package.parents[1] / "migrations"
    return checkout if checkout.is_dir() else package / "_migrations"


def available_migrations(directory: Path | None = None) -> list[Migration]:
    """Every migration file, in version order."""
    found = []
    for path in sorted((directory or migrations_dir()).glob("*.sql")):
        match = _FILE_NAME.match(path.name)
        if match:
            found.append(Migration(int(match[1]), match[2], path))
    return found


def _applied(conn: psycopg.Connection) -> dict[int, datetime]:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = conn.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
    return {version: applied_at for version, applied_at in rows}


def migration_status(db: Database) -> list[MigrationState]:
    """Applied and pending migrations, read without writing anything."""
    with db.connect() as conn:
        applied = _applied(conn)
    return [MigrationState(m, applied.get(m.version)) for m in available_migrations()]


def check_schema_current(conn: psycopg.Connection) -> None:
    """Raise unless every known migration is applied and none is unknown."""
    applied = _applied(conn)
    known = {m.version for m in available_migrations()}
    if not applied:
        raise SchemaNotReady("the database has no rbv schema yet",
                             remedies=[Remedy("migrate")])
    newer = sorted(set(applied) - known)
    if newer:
        raise SchemaTooNew(
            f"the database schema is at version {max(applied)}, newer than this rbv knows "
            f"({max(known)}); upgrade rbv"
        )
    missing = sorted(known - set(applied))
    if missing:
        raise SchemaNotReady(
            f"the database schema is at version {max(applied)}, this rbv needs "
            f"{max(known)}", remedies=[Remedy("migrate")])


def apply_pending(db: Database,
                  on_start: Callable[[Migration], None] | None = None) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; return those applied.
    On an upgrade (some were applied before) ``on_start`` is told of each before it runs:
    some rebuild an index, minutes at a million faces."""
    done: list[Migration] = []
    with db.connect(autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            conn.execute(_BOOKKEEPING)
            applied = _applied(conn)
            for migration in available_migrations():
                if migration.version in applied:
                    continue
                if on_start is not None and applied:
                    on_start(migration)
                _apply_one(conn, migration)
                done.append(migration)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return done


def _apply_one(conn: psycopg.Connection, migration: Migration) -> None:
    try:
        with conn.transaction():
            conn.execute(migration.sql.encode())
            conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                (migration.version, migration.name, migration.checksum),
            )
    except (psycopg.errors.FeatureNotSupported, psycopg.errors.UndefinedFile) as exc:
        if "vector" in str(exc):
            raise PgvectorMissing(
                "this PostgreSQL server has no pgvector extension; install pgvector on it "
                "(https://github.com/pgvector/pgvector)", remedies=[Remedy("embedded_server")]
            ) from None
        raise MigrationError(f"{migration.path.name} failed: {_first_line(exc)}") from None
    except psycopg.errors.InsufficientPrivilege as exc:
        raise MigrationError(
            f"{migration.path.name} failed: {_first_line(exc)}; "
            "ask the database owner to run it, or to grant this user the privilege"
        ) from None
    except psycopg.Error as exc:
        raise MigrationError(f"{migration.path.name} failed: {_first_line(exc)}") from None


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]

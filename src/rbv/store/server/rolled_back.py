"""A database seen through one open transaction, for previews that run the real code.

A preview that is computed by other code than the run it previews can differ from it,
and then it decides for the user without saying so. :class:`RolledBackDatabase` lets a
caller run a job's own code (which opens its connections from a :class:`Database`)
inside a transaction the caller holds, see what the job left, and roll it all back:
every connection the job opens is that one transaction, so the job also sees what the
caller did before in it (an edit not committed yet).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, cast

import psycopg

from rbv.store.server.connection import Database


class _Lent:
    """The caller's connection as a job sees it: ending its ``with`` block, ``commit()``,
    ``rollback()`` and ``close()`` leave the caller's transaction as it is (the caller
    rolls it back); everything else is the connection's own."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self._conn = conn

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)

    def __enter__(self) -> _Lent:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc_val: BaseException | None,
                 exc_tb: TracebackType | None) -> None:
        return None

    def commit(self) -> None:
        return None

    def rollback(self) -> None:
        # A job's own dry run rolls back here; its writes stay visible to the caller
        # until the caller rolls back. After an error the transaction stays failed, so
        # the job's next statement fails too (nothing goes on silently).
        return None

    def close(self) -> None:
        return None


class RolledBackDatabase(Database):
    """``db`` as seen from ``conn``'s open transaction, which the caller rolls back.

    Every connection handed out is ``conn`` itself (``autocommit`` is ignored: nothing is
    committed through it), so a job run on it sees the caller's uncommitted work and the
    caller sees the job's, until the caller rolls back. ``conn`` must be inside a
    transaction block (``conn.transaction()``), so that a job's own ``transaction()``
    blocks are savepoints of it. One connection: a job that opens connections from
    several threads at once runs their statements interleaved on it.
    """

    def __init__(self, db: Database, conn: psycopg.Connection) -> None:
        super().__init__(db.url, db.display, embedded=db.embedded)
        self._lent = _Lent(conn)

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection:
        return cast(psycopg.Connection, self._lent)

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        with self._lent._conn.transaction():
            yield cast(psycopg.Connection, self._lent)

"""The advisory lock that serialises clustering and person edits on one pack."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import psycopg

from rbv.errors import ClusterBusy
from rbv.store.server.connection import Database

_CLUSTER_LOCK = 0x7262_7643  # "rbvC": (this, pack id) is one pack's person-editing lock
_PREPARE_LOCK = 0x7262_7645  # one lock id for pack registration + enqueueing


def lock_pack_preparation(conn: psycopg.Connection) -> None:
    """Serialise pack registration until the transaction ends: workers starting together
    would race to create the pack's index."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PREPARE_LOCK,))


def server_now(conn: psycopg.Connection) -> datetime:
    """The database server's clock (the one every timestamp column uses)."""
    row = conn.execute("SELECT now()").fetchone()
    assert row is not None
    return row[0]  # type: ignore[no-any-return]


@contextmanager
def person_lock(db: Database, pack_id: int, pack_name: str) -> Iterator[None]:
    """Hold the pack's person-editing lock for the block, or raise :class:`ClusterBusy`.

    ``rbv cluster`` and every ``rbv persons`` edit take it, so they never interleave.
    It is a session advisory lock: it goes away with the connection if rbv dies.
    """
    with db.connect(autocommit=True) as conn:
        got = conn.execute("SELECT pg_try_advisory_lock(%s, %s)",
                           (_CLUSTER_LOCK, pack_id)).fetchone()
        if not got or not got[0]:
            holder = conn.execute(
                """
                SELECT a.pid, a.client_addr, a.state_change FROM pg_locks l
                JOIN pg_stat_activity a ON a.pid = l.pid
                WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s
                  AND l.granted LIMIT 1
                """,
                (_CLUSTER_LOCK, pack_id),
            ).fetchone()
            # the holder's connection does nothing else while it holds the lock, so its
            # last change of state is when it took it (its backend_start, when it was
            # opened: long before, for a kept connection of `rbv serve`)
            since = f" since {holder[2]:%H:%M:%S}" if holder and holder[2] else ""
            raise ClusterBusy(
                f"another clustering run or person edit is running on pack {pack_name}{since}; "
                "wait for it to finish, then re-run"
            )
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", (_CLUSTER_LOCK, pack_id))

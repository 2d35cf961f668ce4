"""Provenance of a run: a ``runs`` row that says what ran, how it ended, and its counts."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from rbv.errors import DatabaseUnavailable
from rbv.store import Database
from rbv.store.queries.runs import close_dead_runs, finish_run, start_run
from rbv.store.server.connection import database_error


@dataclass
class RunRecord:
    """Filled in by the job: its final status (``ok``/``partial``) and counts. ``id`` is
    None for a dry run (nothing is recorded)."""

    id: int | None
    status: str = "ok"
    counts: dict[str, Any] = field(default_factory=dict)
    parameters: dict[str, Any] | None = None  # learned in the run: over those at its start


def process_alive(pid: int) -> bool:
    """Whether a process of this host with that id still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def close_dead_runs_here(db: Database) -> int:
    """Mark ``interrupted`` this host's runs whose process is gone (``kill -9``, a crash),
    so ``runs`` and ``stats`` never show a dead run as running; returns how many."""
    with db.transaction() as conn:
        return close_dead_runs(conn, socket.gethostname(), process_alive)


@contextmanager
def recorded_run(db: Database, command: str, parameters: Mapping[str, Any], *,
                 dry_run: bool = False) -> Iterator[RunRecord]:
    """Record the run as ``running`` now, and its outcome when the block ends
    (``interrupted`` on Ctrl-C, ``failed`` on an error). Every command that changes the
    database records itself through this; a dry run records nothing."""
    if dry_run:
        yield RunRecord(None)
        return
    with db.transaction() as conn:
        close_dead_runs(conn, socket.gethostname(), process_alive)
        run_id = start_run(conn, command, parameters)
        record = RunRecord(run_id)
    try:
        yield record
    except BaseException as exc:
        # Ctrl-C, SIGTERM, and a run whose database died (or whose connection dropped)
        # did not fail: they were cut short, and a re-run resumes them.
        interrupted = isinstance(exc, KeyboardInterrupt) or _database_lost(exc)
        record.status = "interrupted" if interrupted else "failed"
        with contextlib.suppress(Exception):
            _finish(db, record)
        # When the server is gone the row cannot be written now: it stays ``running``
        # until the next run or `rbv audit --fix` finds this process gone and marks it
        # ``interrupted`` (close_dead_runs_here). The error that stopped the run is
        # what the user sees, never the failed bookkeeping.
        raise
    _finish(db, record)


def _finish(db: Database, record: RunRecord) -> None:
    assert record.id is not None
    with db.transaction() as conn:
        finish_run(conn, record.id, record.status, record.counts, record.parameters)


def _database_lost(exc: BaseException) -> bool:
    return isinstance(exc, DatabaseUnavailable) or \
        isinstance(database_error(exc), DatabaseUnavailable)

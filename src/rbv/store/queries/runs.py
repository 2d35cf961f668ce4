"""Provenance: one ``runs`` row per command run that writes."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psutil
import psycopg

from rbv import __version__

_PROCESS_STARTED = "process_started"
"""Key in ``runs.parameters``: when the run's process started (this host's clock), so a
pid that a new process took over is not mistaken for the run still going."""


def _process_started(pid: int) -> float | None:
    try:
        return float(psutil.Process(pid).create_time())
    except psutil.Error:
        return None


def _pid_reused(pid: int, recorded: str | None) -> bool:
    now = _process_started(pid)
    return recorded is not None and now is not None and abs(now - float(recorded)) > 1.0


def start_run(conn: psycopg.Connection, command: str, parameters: Mapping[str, Any]) -> int:
    """Record that ``command`` started (status ``running``); returns the run id."""
    row = conn.execute(
        """
        INSERT INTO runs (command, parameters, host, pid, rbv_version)
        VALUES (%s, %s, %s, %s, %s) RETURNING id
        """,
        (command, json.dumps({**parameters, _PROCESS_STARTED: _process_started(os.getpid())},
                             default=str), socket.gethostname(), os.getpid(), __version__),
    ).fetchone()
    assert row is not None
    return int(row[0])


def finish_run(
    conn: psycopg.Connection, run_id: int, status: str, counts: Mapping[str, Any],
    parameters: Mapping[str, Any] | None = None,
) -> None:
    """Record how a run ended: ``ok``, ``partial``, ``failed`` or ``interrupted``, and
    ``parameters`` it learned on the way (over those of the same name recorded at its
    start)."""
    conn.execute(
        # clock_timestamp(): the moment it ended, even if the caller's transaction began
        # when the run started.
        "UPDATE runs SET status = %s, counts = %s, finished_at = clock_timestamp(), "
        "parameters = parameters || %s::jsonb WHERE id = %s",
        (status, json.dumps(dict(counts), default=str),
         json.dumps(dict(parameters or {}), default=str), run_id),
    )


@dataclass(frozen=True)
class DeadRun:
    """A run recorded as ``running`` whose process is gone."""

    id: int
    command: str
    pid: int | None
    started_at: datetime


def dead_runs(conn: psycopg.Connection, host: str,
              is_alive: Callable[[int], bool]) -> list[DeadRun]:
    """The runs of this host still ``running`` whose process is gone (killed, crashed,
    or its pid now taken by another process). Reads only."""
    rows = conn.execute(
        "SELECT id, command, pid, started_at, parameters ->> %s FROM runs "
        "WHERE status = 'running' AND host = %s ORDER BY id",
        (_PROCESS_STARTED, host),
    ).fetchall()
    return [DeadRun(int(r[0]), str(r[1]), r[2], r[3]) for r in rows
            if r[2] is None or not is_alive(int(r[2])) or _pid_reused(int(r[2]), r[4])]


def close_dead_runs(conn: psycopg.Connection, host: str, is_alive: Callable[[int], bool]) -> int:
    """Mark ``interrupted`` the runs of this host still ``running`` whose process is gone
    (killed or crashed); returns how many."""
    dead = [r.id for r in dead_runs(conn, host, is_alive)]
    if dead:
        conn.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = clock_timestamp() "
            "WHERE id = ANY(%s)",
            (dead,),
        )
    return len(dead)

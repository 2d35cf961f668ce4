"""Provenance: one ``runs`` row per command run that writes."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Mapping
from typing import Any

import psycopg

from rbv import __version__


def start_run(conn: psycopg.Connection, command: str, parameters: Mapping[str, Any]) -> int:
    """Record that ``command`` started (status ``running``); returns the run id."""
    row = conn.execute(
        """
        INSERT INTO runs (command, parameters, host, pid, rbv_version)
        VALUES (%s, %s, %s, %s, %s) RETURNING id
        """,
        (command, json.dumps(dict(parameters), default=str), socket.gethostname(), os.getpid(),
         __version__),
    ).fetchone()
    assert row is not None
    return int(row[0])


def finish_run(
    conn: psycopg.Connection, run_id: int, status: str, counts: Mapping[str, Any]
) -> None:
    """Record how a run ended: ``ok``, ``partial``, ``failed`` or ``interrupted``."""
    conn.execute(
        # clock_timestamp(): the moment it ended, even if the caller's transaction began
        # when the run started.
        "UPDATE runs SET status = %s, counts = %s, finished_at = clock_timestamp() "
        "WHERE id = %s",
        (status, json.dumps(dict(counts), default=str), run_id),
    )


def close_dead_runs(conn: psycopg.Connection, host: str, is_alive: Callable[[int], bool]) -> int:
    """Mark ``interrupted`` the runs of this host still ``running`` whose process is gone
    (killed or crashed); returns how many."""
    rows = conn.execute(
        "SELECT id, pid FROM runs WHERE status = 'running' AND host = %s", (host,)
    ).fetchall()
    dead = [int(r[0]) for r in rows if r[1] is None or not is_alive(int(r[1]))]
    if dead:
        conn.execute(
            "UPDATE runs SET status = 'interrupted', finished_at = clock_timestamp() "
            "WHERE id = ANY(%s)",
            (dead,),
        )
    return len(dead)

"""Queries on ``photo_originals`` (the verified backups of photos rbv rewrote) and the
catalogued content of images, which an existing backup is checked against."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import psycopg


def recorded_original(conn: psycopg.Connection, backup: Path) -> tuple[int, str] | None:
    """(size, sha256) rbv verified ``backup`` to hold when it wrote it, if it did."""
    row = conn.execute("SELECT size_bytes, sha256 FROM photo_originals WHERE path = %s",
                       (os.fsencode(backup),)).fetchone()
    return None if row is None else (int(row[0]), str(row[1]))


def record_original(conn: psycopg.Connection, backup: Path, size: int, sha256: str) -> None:
    """Remember what ``backup`` holds (written before the backup itself: a record
    without its file is harmless, a backup without its record would not be trusted)."""
    conn.execute(
        """
        INSERT INTO photo_originals (path, size_bytes, sha256) VALUES (%s, %s, %s)
        ON CONFLICT (path) DO UPDATE SET size_bytes = EXCLUDED.size_bytes,
            sha256 = EXCLUDED.sha256, written_at = now()
        """,
        (os.fsencode(backup), size, sha256),
    )


def catalogued_content(conn: psycopg.Connection,
                       image_ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    """Image id → (size, sha256) of its content as indexed."""
    rows = conn.execute("SELECT id, size_bytes, sha256 FROM images WHERE id = ANY(%s)",
                        (list(image_ids),)).fetchall()
    return {int(r[0]): (int(r[1]), str(r[2])) for r in rows if r[1] is not None}

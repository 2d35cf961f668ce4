"""Which file contents the catalogue already holds (by sha256)."""

from __future__ import annotations

from collections.abc import Collection

import psycopg


def known_sha256(conn: psycopg.Connection, digests: Collection[str]) -> set[str]:
    """The subset of ``digests`` (hex sha256) that are images in the database."""
    if not digests:
        return set()
    rows = conn.execute(
        "SELECT sha256 FROM images WHERE sha256 = ANY(%s)", (list(digests),)
    ).fetchall()
    return {row[0] for row in rows}

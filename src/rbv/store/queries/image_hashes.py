"""Queries for ``dedup``: perceptual hashes, byte-identical paths, faces per image."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import psycopg
from numpy.typing import NDArray

from rbv.store.queries.paths import path_from_bytes


def images_without_hash(conn: psycopg.Connection) -> list[tuple[int, str]]:
    """(image id, format) of catalogued images with no perceptual hash yet."""
    return [(int(i), str(f)) for i, f in conn.execute(
        "SELECT i.id, i.format FROM images i WHERE i.status = 'ok' AND NOT EXISTS "
        "(SELECT 1 FROM image_hashes h WHERE h.image_id = i.id) ORDER BY i.id")]


def save_hashes(conn: psycopg.Connection, rows: Sequence[tuple[int, int]]) -> None:
    conn.execute(
        "INSERT INTO image_hashes (image_id, phash) SELECT * FROM unnest(%s::bigint[], "
        "%s::bigint[]) ON CONFLICT (image_id) DO UPDATE SET phash = excluded.phash, "
        "computed_at = now()", ([r[0] for r in rows], [r[1] for r in rows]))


def all_hashes(conn: psycopg.Connection) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(image ids, hashes) of every hashed image, by id."""
    rows = conn.execute("SELECT image_id, phash FROM image_hashes ORDER BY image_id").fetchall()
    return (np.array([r[0] for r in rows], np.int64), np.array([r[1] for r in rows], np.int64))


def byte_identical(conn: psycopg.Connection) -> list[tuple[int, str, list[str]]]:
    """(image id, sha256, paths) of every content found under more than one path."""
    return [(int(i), str(s), [path_from_bytes(b) for b in p]) for i, s, p in conn.execute(
        "SELECT i.id, i.sha256, array_agg(p.path_bytes ORDER BY p.path_bytes) FROM images i "
        "JOIN image_paths p ON p.image_id = i.id GROUP BY i.id HAVING count(*) > 1 "
        "ORDER BY i.id")]

"""Paths whose file is gone: marked by ``index``, settled as moves, removed by ``prune``.

A path is marked missing (``image_paths.missing_since``), never deleted, when ``index``
walked its folder and the file was not there: the image and its faces stay until
``rbv prune``. A missing path whose content is still at another, present path was a
move (or a duplicate copy deleted): its row is dropped and the image is untouched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from rbv.store.queries.paths import path_bytes, path_from_bytes, prefix_range


@dataclass(frozen=True)
class PruneCounts:
    """What ``prune`` removes (or would remove)."""

    images: int  # images with no present path left: deleted with their faces
    faces: int
    paths: int  # missing path rows deleted

    def as_dict(self) -> dict[str, int]:
        return {"images": self.images, "faces": self.faces, "paths": self.paths}


def present_paths_under(conn: psycopg.Connection, folder: str) -> list[tuple[int, str]]:
    """(id, path) of every catalogued path inside ``folder`` not marked missing."""
    lo, hi = prefix_range(folder)
    return [(int(i), path_from_bytes(p)) for i, p in conn.execute(
        "SELECT id, path_bytes FROM image_paths "
        "WHERE path_bytes >= %s AND path_bytes < %s AND missing_since IS NULL", (lo, hi))]


def failures_under(conn: psycopg.Connection, folder: str) -> list[str]:
    """Paths inside ``folder`` recorded as unreadable (they have no image row)."""
    lo, hi = prefix_range(folder)
    return [path_from_bytes(r[0]) for r in conn.execute(
        "SELECT path_bytes FROM catalogue_failures WHERE path_bytes >= %s AND path_bytes < %s",
        (lo, hi))]


def forget_failures(conn: psycopg.Connection, paths: Sequence[str]) -> int:
    """Drop the unreadable-file records of files that are gone (nothing to retry)."""
    if not paths:
        return 0
    return conn.execute("DELETE FROM catalogue_failures WHERE path_bytes = ANY(%s)",
                        ([path_bytes(p) for p in paths],)).rowcount


def mark_missing(conn: psycopg.Connection, path_ids: Sequence[int]) -> list[int]:
    """Mark these path rows missing (their file was looked for and not found); returns
    the ids newly marked."""
    if not path_ids:
        return []
    return [int(r[0]) for r in conn.execute(
        "UPDATE image_paths SET missing_since = now() "
        "WHERE id = ANY(%s) AND missing_since IS NULL RETURNING id", (list(path_ids),))]


def unmark_missing(conn: psycopg.Connection, paths: Sequence[str]) -> int:
    """The files at these paths are back: they are present again."""
    if not paths:
        return 0
    return conn.execute(
        "UPDATE image_paths SET missing_since = NULL, last_seen = now() "
        "WHERE path_bytes = ANY(%s) AND missing_since IS NOT NULL",
        ([path_bytes(p) for p in paths],)).rowcount


def settle_moves(conn: psycopg.Connection) -> list[tuple[int, int]]:
    """Drop every missing path whose image is present at another path (it moved, or a
    copy was deleted); returns (path id, image id) of each row dropped."""
    return [(int(r[0]), int(r[1])) for r in conn.execute(
        """
        DELETE FROM image_paths m
        WHERE m.missing_since IS NOT NULL
          AND EXISTS (SELECT 1 FROM image_paths p
                      WHERE p.image_id = m.image_id AND p.missing_since IS NULL)
        RETURNING m.id, m.image_id
        """)]


def missing_paths(conn: psycopg.Connection, limit: int) -> tuple[int, int, list[str]]:
    """(missing paths, images with no present path, the first ``limit`` missing paths)."""
    row = conn.execute(
        """
        SELECT count(*),
               count(DISTINCT image_id) FILTER (WHERE NOT EXISTS (
                   SELECT 1 FROM image_paths p
                   WHERE p.image_id = m.image_id AND p.missing_since IS NULL))
        FROM image_paths m WHERE m.missing_since IS NOT NULL
        """).fetchone()
    assert row is not None
    first = [str(r[0]) for r in conn.execute(
        "SELECT path FROM image_paths WHERE missing_since IS NOT NULL ORDER BY path LIMIT %s",
        (limit,))]
    return int(row[0]), int(row[1]), first


_MISSING = """
    EXISTS (SELECT 1 FROM image_paths m
            WHERE m.image_id = {i} AND m.missing_since IS NOT NULL)
    AND NOT EXISTS (SELECT 1 FROM image_paths p
                    WHERE p.image_id = {i} AND p.missing_since IS NULL)
"""
# Missing images, and the old content of an edited photo that is missing (kept, with no
# path, until its faces were carried to the new content's: see image_supersessions).
_GONE_IMAGES = f"""
    SELECT i.id FROM images i WHERE {_MISSING.format(i="i.id")}
    UNION
    SELECT s.old_image_id FROM image_supersessions s WHERE {_MISSING.format(i="s.new_image_id")}
"""


def prune_missing(conn: psycopg.Connection, *, dry_run: bool) -> PruneCounts:
    """Delete the images whose every path is missing (their faces, scans and embeddings
    go with them by cascade) and every missing path row. An image that still has a
    present path is never deleted. Call inside a transaction."""
    row = conn.execute(
        f"""
        WITH gone AS ({_GONE_IMAGES})
        SELECT (SELECT count(*) FROM gone),
               (SELECT count(*) FROM face_detections f WHERE f.image_id IN (SELECT id FROM gone)),
               (SELECT count(*) FROM image_paths WHERE missing_since IS NOT NULL)
        """).fetchone()
    assert row is not None
    counts = PruneCounts(*(int(v) for v in row))
    if not dry_run:
        conn.execute(f"DELETE FROM images WHERE id IN ({_GONE_IMAGES})")
        conn.execute("DELETE FROM image_paths WHERE missing_since IS NOT NULL")
    return counts


def gone_images(conn: psycopg.Connection) -> list[tuple[int, str]]:
    """(image id, a path that showed it) of each image ``prune`` deletes: a missing
    photo, or the old content of an edited photo that is missing now."""
    return [(int(i), str(p)) for i, p in conn.execute(
        f"""
        SELECT g.id, coalesce(
            (SELECT min(path) FROM image_paths WHERE image_id = g.id),
            (SELECT min(p.path) FROM image_supersessions s JOIN image_paths p
             ON p.image_id = s.new_image_id WHERE s.old_image_id = g.id), 'image ' || g.id)
        FROM ({_GONE_IMAGES}) g ORDER BY g.id
        """)]


def faces_of_images(conn: psycopg.Connection, image_ids: Sequence[int]) -> dict[int, int]:
    """Face id → image id of every face of these images."""
    return {int(f): int(i) for f, i in conn.execute(
        "SELECT id, image_id FROM face_detections WHERE image_id = ANY(%s)",
        (list(image_ids),))}

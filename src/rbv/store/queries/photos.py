"""Finding photos by who is in them: ``rbv photos``.

The query starts from the faces of the wanted persons (``face_detections_person``),
so its cost grows with those persons' faces, not with the library.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg

from rbv.store.queries.paths import path_from_bytes


@dataclass(frozen=True)
class PhotoHit:
    image_id: int
    taken_at: datetime | None
    paths: list[str]
    others: list[str]  # names (or short ids) of the other persons in the photo


def photos_with(conn: psycopg.Connection, persons: Sequence[uuid.UUID],
                without: Sequence[uuid.UUID] = (), since: datetime | None = None,
                before: datetime | None = None, limit: int | None = None) -> list[PhotoHit]:
    """Photos that show every one of ``persons`` and none of ``without``, taken in
    [``since``, ``before``) when given (photos without a date then drop out), oldest
    first."""
    rows = conn.execute(
        """
        WITH hits AS (
            SELECT f.image_id FROM face_detections f
            WHERE f.person_id = ANY(%(with)s)
            GROUP BY f.image_id
            HAVING count(DISTINCT f.person_id) = %(n)s
        )
        SELECT i.id, i.taken_at FROM hits h JOIN images i ON i.id = h.image_id
        WHERE (%(since)s::timestamp IS NULL OR i.taken_at >= %(since)s)
          AND (%(before)s::timestamp IS NULL OR i.taken_at < %(before)s)
          AND NOT EXISTS (SELECT 1 FROM face_detections g
                          WHERE g.image_id = i.id AND g.person_id = ANY(%(without)s))
        ORDER BY i.taken_at NULLS LAST, i.id
        LIMIT %(limit)s
        """,
        {"with": list(persons), "n": len(set(persons)), "without": list(without),
         "since": since, "before": before, "limit": limit},
    ).fetchall()
    ids = [int(r[0]) for r in rows]
    paths: dict[int, list[str]] = {}
    for image_id, raw in conn.execute(
            "SELECT image_id, path_bytes FROM image_paths WHERE image_id = ANY(%s) ORDER BY id",
            (ids,)):
        paths.setdefault(int(image_id), []).append(path_from_bytes(raw))
    others: dict[int, list[str]] = {}
    for image_id, who in conn.execute(
            """
            SELECT DISTINCT f.image_id, coalesce(n.name, left(f.person_id::text, 8))
            FROM face_detections f
            JOIN persons p ON p.id = f.person_id AND NOT p.hidden
            LEFT JOIN person_names n ON n.person_id = f.person_id
            WHERE f.image_id = ANY(%s) AND NOT f.person_id = ANY(%s)
            ORDER BY 1, 2
            """,
            (ids, list(persons))):
        others.setdefault(int(image_id), []).append(str(who))
    return [PhotoHit(int(i), t, paths.get(int(i), []), others.get(int(i), []))
            for i, t in rows]

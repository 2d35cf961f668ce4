"""What reviewing persons reads: the manual decisions that stand between two persons,
and the faces to show (box, photo, one path)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from numpy.typing import NDArray


def person_conflicts(conn: psycopg.Connection, pack_id: int
                     ) -> dict[tuple[uuid.UUID, uuid.UUID], int]:
    """Per pair of persons (the smaller uuid first): how many cannot-links join a face
    of one to a face of the other, plus faces of one that a user rejected from the
    other ("not this person")."""
    rows = conn.execute(
        """
        SELECT least(fa.person_id, fb.person_id), greatest(fa.person_id, fb.person_id),
               count(*)
        FROM cannot_links c
        JOIN face_detections fa ON fa.id = c.face_a
        JOIN face_detections fb ON fb.id = c.face_b
        WHERE fa.pack_id = %(pack)s AND fa.person_id <> fb.person_id
        GROUP BY 1, 2
        UNION ALL
        SELECT least(r.person_id, f.person_id), greatest(r.person_id, f.person_id), count(*)
        FROM person_rejections r JOIN face_detections f ON f.id = r.face_id
        WHERE f.pack_id = %(pack)s AND f.person_id <> r.person_id
        GROUP BY 1, 2
        """,
        {"pack": pack_id},
    ).fetchall()
    out: dict[tuple[uuid.UUID, uuid.UUID], int] = {}
    for a, b, n in rows:
        out[(a, b)] = out.get((a, b), 0) + int(n)
    return out


def conflicts_of(conn: psycopg.Connection, faces: Sequence[int],
                 persons: Sequence[uuid.UUID]) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """The pairs (the smaller uuid first) that :func:`person_conflicts` holds because of
    ``faces`` (a "different" link of theirs, or one of them rejected from a person) or of
    a rejection from one of ``persons``: after a merge, its faces moved and the person
    kept name every pair the merge put apart, found from those faces alone (about 1 ms,
    where all of a 2,600-face person's took 15-30 ms and the whole pack's 20-40 ms)."""
    rows = conn.execute(
        """
        WITH mine AS (SELECT id, person_id FROM face_detections
                      WHERE id = ANY(%(faces)s) AND person_id IS NOT NULL),
        other (one, face) AS (
            SELECT m.person_id, c.face_b FROM mine m JOIN cannot_links c ON c.face_a = m.id
            UNION ALL
            SELECT m.person_id, c.face_a FROM mine m JOIN cannot_links c ON c.face_b = m.id
            UNION ALL
            SELECT r.person_id, r.face_id FROM person_rejections r
            WHERE r.person_id = ANY(%(persons)s))
        SELECT o.one, f.person_id FROM other o JOIN face_detections f ON f.id = o.face
        WHERE f.person_id IS NOT NULL AND f.person_id <> o.one
        UNION
        SELECT m.person_id, r.person_id FROM mine m JOIN person_rejections r ON r.face_id = m.id
        WHERE r.person_id <> m.person_id
        """,
        {"faces": [int(f) for f in faces], "persons": list(persons)},
    ).fetchall()
    return {(min(a, b), max(a, b)) for a, b in rows}


def photo_mates_of(conn: psycopg.Connection, faces: Sequence[int]
                   ) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """The pairs (the smaller uuid first) of the persons holding ``faces`` with each
    other person that has a face in one of those faces' photos: never one person."""
    rows = conn.execute(
        "SELECT DISTINCT m.person_id, o.person_id FROM face_detections m "
        "JOIN face_detections o ON o.image_id = m.image_id AND o.pack_id = m.pack_id "
        "WHERE m.id = ANY(%s) AND m.person_id IS NOT NULL AND o.person_id IS NOT NULL "
        "AND o.person_id <> m.person_id", ([int(f) for f in faces],)).fetchall()
    return {(min(a, b), max(a, b)) for a, b in rows}


@dataclass(frozen=True)
class ShownFace:
    """A face as a review shows it."""

    id: int
    image_id: int
    bbox: tuple[float, float, float, float]
    path: str | None


def shown_faces(conn: psycopg.Connection, face_ids: list[int]) -> list[ShownFace]:
    """Box, photo and one path (the first discovered) of each face, in the order given."""
    rows = {int(r[0]): ShownFace(int(r[0]), int(r[1]), (r[2], r[3], r[4], r[5]), r[6])
            for r in conn.execute(
                """
                SELECT f.id, f.image_id, f.x1, f.y1, f.x2, f.y2,
                       (SELECT p.path FROM image_paths p WHERE p.image_id = f.image_id
                        ORDER BY p.id LIMIT 1)
                FROM face_detections f WHERE f.id = ANY(%s::bigint[])
                """, ([int(f) for f in face_ids],))}
    return [rows[f] for f in face_ids if f in rows]


def neighbour_boxes(conn: psycopg.Connection, face_ids: Sequence[int]
                    ) -> dict[int, list[tuple[float, float, float, float]]]:
    """Per face: the boxes of the other faces its pack found in its photo (the faces a
    tile of it may show beside it), ordered by id; faces alone in their photo are left
    out."""
    found: dict[int, list[tuple[float, float, float, float]]] = {}
    for face, *box in conn.execute(
            """
            SELECT f.id, o.x1, o.y1, o.x2, o.y2
            FROM face_detections f
            JOIN face_detections o ON o.image_id = f.image_id AND o.pack_id = f.pack_id
                                  AND o.id <> f.id
            WHERE f.id = ANY(%s::bigint[])
            ORDER BY f.id, o.id
            """, ([int(f) for f in face_ids],)):
        found.setdefault(int(face), []).append(tuple(box))  # type: ignore[arg-type]
    return found


def review_answers(conn: psycopg.Connection, pack_id: int, version: int
                   ) -> list[list[float]]:
    """The answers given to merge suggestions in the pack's edits still in effect (not
    undone), each the features the pair had when shown and 1 (one person) or 0; kept by
    the edit in its run's parameters (``answers``: ``{"version": …, "rows": […]}``);
    answers kept under another ``version`` of the features are left out."""
    rows = conn.execute(
        """
        SELECT r.parameters -> 'answers' -> 'rows'
        FROM person_edits e JOIN runs r ON r.id = e.run_id
        WHERE e.pack_id = %s AND e.undone_by IS NULL
          AND r.parameters -> 'answers' ->> 'version' = %s
        ORDER BY e.id
        """,
        (pack_id, str(version)),
    ).fetchall()
    return [[float(v) for v in answer] for (answers,) in rows for answer in answers or []]


def face_prominence(conn: psycopg.Connection, pack_id: int,
                    faces: Sequence[int] | None = None
                    ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Per face of the pack (ids ascending): its short edge over that of the largest
    face the pack found in its photo (1 for a photo's largest face; 1 when no size is
    known). Only the faces of the photos of ``faces``, when given."""
    rows = conn.execute(
        """
        SELECT f.id, coalesce(f.face_short / nullif(max(f.face_short)
                                  OVER (PARTITION BY f.image_id), 0), 1)
        FROM face_detections f WHERE f.pack_id = %(pack)s
          AND (%(faces)s::bigint[] IS NULL OR f.image_id IN (
               SELECT image_id FROM face_detections WHERE id = ANY(%(faces)s)))
        ORDER BY f.id
        """,
        {"pack": pack_id, "faces": None if faces is None else list(faces)},
    ).fetchall()
    ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    return ids, np.fromiter((r[1] for r in rows), np.float64, len(rows))

"""Detections a user marked "not a face" (``not_faces``): a poster, a statue, a pattern.

A marked face has no person, and every reader of faces for clustering, matching,
suggestions, review and export leaves it out (``NOT EXISTS`` on this table). The table
is logged by the edit log, so marking is undone exactly."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import psycopg


@dataclass(frozen=True)
class MarkedFace:
    """A face marked not a face, as ``rbv faces not-faces`` lists it."""

    id: int
    image_id: int
    path: str | None
    bbox: tuple[float, float, float, float]
    marked_at: datetime

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "image": self.image_id, "path": self.path,
                "bbox": [round(v, 1) for v in self.bbox],
                "marked_at": self.marked_at.isoformat()}


@dataclass(frozen=True)
class FaceBefore:
    """A face about to be marked, with where it is now."""

    id: int
    pack_id: int
    person_id: uuid.UUID | None
    person_name: str | None
    manual: bool
    marked: bool


def faces_before(conn: psycopg.Connection, face_ids: Sequence[int]) -> list[FaceBefore]:
    """The faces (those that exist), with their person, its name and their mark, in id
    order."""
    return [FaceBefore(int(r[0]), int(r[1]), r[2], r[3], bool(r[4]), bool(r[5]))
            for r in conn.execute(
                "SELECT f.id, f.pack_id, f.person_id, n.name, "
                "coalesce(f.assigned_by = 'manual', false), "
                "EXISTS (SELECT 1 FROM not_faces m WHERE m.face_id = f.id) "
                "FROM face_detections f LEFT JOIN person_names n ON n.person_id = f.person_id "
                "WHERE f.id = ANY(%s::bigint[]) ORDER BY f.id", ([int(f) for f in face_ids],))]


def marked_among(conn: psycopg.Connection, face_ids: Sequence[int]) -> list[int]:
    """Those of ``face_ids`` that are marked not a face, in id order."""
    return [int(r[0]) for r in conn.execute(
        "SELECT face_id FROM not_faces WHERE face_id = ANY(%s::bigint[]) ORDER BY face_id",
        ([int(f) for f in face_ids],))]


def mark(conn: psycopg.Connection, face_ids: Sequence[int]) -> int:
    """Mark the faces not a face and take them out of their persons; how many were
    newly marked. Their links and rejections are lifted by the caller first."""
    ids = [int(f) for f in face_ids]
    conn.execute("UPDATE face_detections SET person_id = NULL, assigned_by = NULL, "
                 "assigned_at = now() WHERE id = ANY(%s::bigint[]) "
                 "AND (person_id IS NOT NULL OR assigned_by IS NOT NULL)", (ids,))
    return conn.execute("INSERT INTO not_faces (face_id) SELECT unnest(%s::bigint[]) "
                        "ON CONFLICT DO NOTHING", (ids,)).rowcount


def unmark(conn: psycopg.Connection, face_ids: Sequence[int]) -> int:
    """Take the mark back: the faces are faces again (with no person: the next
    ``rbv cluster`` places them). How many were marked."""
    return conn.execute("DELETE FROM not_faces WHERE face_id = ANY(%s::bigint[])",
                        ([int(f) for f in face_ids],)).rowcount


def list_marked(conn: psycopg.Connection, pack_id: int | None = None,
                limit: int | None = None) -> list[MarkedFace]:
    """The faces marked not a face (of one pack, when given), newest mark first, each
    with one path of its photo."""
    return [MarkedFace(int(r[0]), int(r[1]), r[2], (r[3], r[4], r[5], r[6]), r[7])
            for r in conn.execute(
                """
                SELECT f.id, f.image_id,
                       (SELECT min(p.path) FROM image_paths p WHERE p.image_id = f.image_id),
                       f.x1, f.y1, f.x2, f.y2, m.created_at
                FROM not_faces m JOIN face_detections f ON f.id = m.face_id
                WHERE %(pack)s::bigint IS NULL OR f.pack_id = %(pack)s
                ORDER BY m.created_at DESC, f.id LIMIT %(limit)s
                """, {"pack": pack_id, "limit": limit})]


def carry_marks(conn: psycopg.Connection, mapping: dict[int, int]) -> None:
    """Give each new face of ``mapping`` (old face → the new face that is the same
    detection) the old face's mark, unless the new face was placed in a person by hand
    (the user's later decision: the old mark is then said as dropped). A marked new face
    leaves the person a clustering run may have given it."""
    rows = conn.execute(
        "SELECT m.face_id, m.created_at FROM not_faces m WHERE m.face_id = ANY(%s::bigint[])",
        (list(mapping),)).fetchall()
    for old_face, created in rows:
        new_face = mapping[int(old_face)]
        manual = conn.execute(
            "SELECT 1 FROM face_detections WHERE id = %s AND assigned_by = 'manual'",
            (new_face,)).fetchone()
        if manual:
            continue
        conn.execute("UPDATE face_detections SET person_id = NULL, assigned_by = NULL, "
                     "assigned_at = now() WHERE id = %s AND person_id IS NOT NULL",
                     (new_face,))
        conn.execute("INSERT INTO not_faces (face_id, created_at) VALUES (%s, %s) "
                     "ON CONFLICT DO NOTHING", (new_face, created))
        conn.execute("DELETE FROM not_faces WHERE face_id = %s", (old_face,))

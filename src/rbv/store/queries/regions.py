"""What XMP export and import read: named faces per photo, and the detected faces of
photos with their current person."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg


@dataclass(frozen=True)
class PhotoRow:
    """A catalogued photo of a pack: its id, displayed size, format and EXIF orientation."""

    image_id: int
    width: int
    height: int
    format: str | None
    orientation: int = 1


@dataclass(frozen=True)
class FaceRow:
    """A detected face (box in displayed pixels) and its current person, if any."""

    id: int
    image_id: int
    box: tuple[float, float, float, float]
    person_id: uuid.UUID | None
    assigned_by: str | None
    name: str | None


def named_faces(conn: psycopg.Connection, pack_id: int) -> dict[int, list[FaceRow]]:
    """Image id → its faces whose person has a name (hidden persons left out)."""
    rows = conn.execute(
        """
        SELECT f.id, f.image_id, f.x1, f.y1, f.x2, f.y2, f.person_id, f.assigned_by, n.name
        FROM face_detections f
        JOIN persons p ON p.id = f.person_id AND NOT p.hidden AND p.merged_into IS NULL
        JOIN person_names n ON n.person_id = p.id
        WHERE f.pack_id = %s
        ORDER BY f.image_id, f.x1, f.id
        """,
        (pack_id,),
    ).fetchall()
    out: dict[int, list[FaceRow]] = {}
    for r in rows:
        out.setdefault(int(r[1]), []).append(
            FaceRow(int(r[0]), int(r[1]), (r[2], r[3], r[4], r[5]), r[6], r[7], r[8]))
    return out


def faces_of_images(conn: psycopg.Connection, pack_id: int,
                    image_ids: Sequence[int]) -> dict[int, list[FaceRow]]:
    """Image id → every face the pack detected in it, with its person and name."""
    rows = conn.execute(
        """
        SELECT f.id, f.image_id, f.x1, f.y1, f.x2, f.y2, f.person_id, f.assigned_by, n.name
        FROM face_detections f LEFT JOIN person_names n ON n.person_id = f.person_id
        WHERE f.pack_id = %s AND f.image_id = ANY(%s)
        ORDER BY f.image_id, f.id
        """,
        (pack_id, list(image_ids)),
    ).fetchall()
    out: dict[int, list[FaceRow]] = {}
    for r in rows:
        out.setdefault(int(r[1]), []).append(
            FaceRow(int(r[0]), int(r[1]), (r[2], r[3], r[4], r[5]), r[6], r[7], r[8]))
    return out


def faces_by_id(conn: psycopg.Connection, face_ids: Sequence[int]) -> dict[int, FaceRow]:
    """Face id → the face as it is now (its person and name), for those that exist."""
    rows = conn.execute(
        """
        SELECT f.id, f.image_id, f.x1, f.y1, f.x2, f.y2, f.person_id, f.assigned_by, n.name
        FROM face_detections f LEFT JOIN person_names n ON n.person_id = f.person_id
        WHERE f.id = ANY(%s::bigint[])
        """, ([int(f) for f in face_ids],)).fetchall()
    return {int(r[0]): FaceRow(int(r[0]), int(r[1]), (r[2], r[3], r[4], r[5]), r[6], r[7],
                               r[8]) for r in rows}


def scanned_photos(conn: psycopg.Connection, pack_id: int) -> dict[int, PhotoRow]:
    """Image id → size and format of every photo the pack has scanned."""
    rows = conn.execute(
        """
        SELECT i.id, i.width, i.height, i.format, i.orientation FROM images i
        JOIN face_scans s ON s.image_id = i.id AND s.pack_id = %s AND s.status = 'done'
        WHERE i.width > 0 AND i.height > 0
        """,
        (pack_id,),
    ).fetchall()
    return {int(r[0]): PhotoRow(int(r[0]), int(r[1]), int(r[2]), r[3], int(r[4] or 1))
            for r in rows}

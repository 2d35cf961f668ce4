"""Persons' birthdays (``persons.born``, schema 25) and the dates of the photos their
ages are read at (``images.taken_at``: EXIF DateTimeOriginal, camera local time)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date, datetime

import psycopg


def born_of(conn: psycopg.Connection, person: uuid.UUID) -> date | None:
    row = conn.execute("SELECT born FROM persons WHERE id = %s", (person,)).fetchone()
    return None if row is None else row[0]


def set_born(conn: psycopg.Connection, person: uuid.UUID, born: date | None) -> None:
    conn.execute("UPDATE persons SET born = %s, updated_at = now() WHERE id = %s",
                 (born, person))


def born_persons(conn: psycopg.Connection, pack_id: int) -> set[uuid.UUID]:
    """The pack's persons that have a birthday."""
    return {p for (p,) in conn.execute(
        "SELECT id FROM persons WHERE pack_id = %s AND born IS NOT NULL", (pack_id,))}


def births(conn: psycopg.Connection, persons: Sequence[uuid.UUID]) -> dict[uuid.UUID, date]:
    """The birthdays of those of ``persons`` that have one."""
    return {p: b for p, b in conn.execute(
        "SELECT id, born FROM persons WHERE id = ANY(%s) AND born IS NOT NULL",
        (list(persons),))}


def taken_of_faces(conn: psycopg.Connection, face_ids: Sequence[int]
                   ) -> dict[int, datetime | None]:
    """When the photo of each face was taken (None: it has no date)."""
    return {int(f): t for f, t in conn.execute(
        "SELECT f.id, i.taken_at FROM face_detections f JOIN images i ON i.id = f.image_id "
        "WHERE f.id = ANY(%s)", ([int(f) for f in face_ids],))}


def undated_photos(conn: psycopg.Connection, persons: Sequence[uuid.UUID],
                   without: Sequence[uuid.UUID] = ()) -> int:
    """How many photos show every one of ``persons`` and none of ``without`` but have no
    date (what an age or a date range leaves out)."""
    row = conn.execute(
        """
        SELECT count(*) FROM (
            SELECT f.image_id FROM face_detections f
            WHERE f.person_id = ANY(%(with)s)
            GROUP BY f.image_id HAVING count(DISTINCT f.person_id) = %(n)s
        ) h JOIN images i ON i.id = h.image_id
        WHERE i.taken_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM face_detections g
                          WHERE g.image_id = i.id AND g.person_id = ANY(%(without)s))
        """,
        {"with": list(persons), "n": len(set(persons)), "without": list(without)},
    ).fetchone()
    return int(row[0]) if row else 0


def photo_taken(conn: psycopg.Connection, image_id: int) -> datetime | None:
    """When a photo was taken (None: no date, or no such photo)."""
    row = conn.execute("SELECT taken_at FROM images WHERE id = %s", (image_id,)).fetchone()
    return None if row is None else row[0]

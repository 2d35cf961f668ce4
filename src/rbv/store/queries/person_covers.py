"""The face that shows a person: the cover a user chose (``rbv persons cover``) while it is
one of its faces, else its automatic face (its best detection); as SQL for other
queries, and read and set."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import psycopg

CHOSEN_COVER = """(SELECT c.id FROM face_detections c
    WHERE c.id = {p}.cover_face_id AND c.person_id = {p}.id
      AND NOT EXISTS (SELECT 1 FROM not_faces x WHERE x.face_id = c.id))"""
"""SQL: the cover face chosen for the person ``{p}`` (a ``persons`` row's alias), while
it is still one of its faces (NULL otherwise: the face left it by a move, a "not this
person", a clustering run, or is marked not a face; the person is shown by its
automatic face then, and the choice holds again if the face comes back)."""


BEST_FACE = """(SELECT b.id FROM face_detections b WHERE b.person_id = {p}.id
    ORDER BY b.det_score DESC, b.id LIMIT 1)"""
"""SQL: the person ``{p}``'s automatic face: its best detection."""


def cover_sql(alias: str) -> str:
    """SQL for the face that shows the person ``alias`` (a ``persons`` row): its chosen
    cover while that is one of its faces, else its best detection."""
    return (f"coalesce({CHOSEN_COVER.format(p=alias)}, {BEST_FACE.format(p=alias)})")


def cover_of(conn: psycopg.Connection, person: uuid.UUID) -> int | None:
    """The face chosen as the person's cover (``rbv persons cover``), while it is one of
    its faces; None: shown by its automatic face."""
    return chosen_covers(conn, [person]).get(person)


def chosen_covers(conn: psycopg.Connection, persons: Sequence[uuid.UUID]
                  ) -> dict[uuid.UUID, int]:
    """The chosen cover of each of ``persons`` that has one still among its faces."""
    return {r[0]: int(r[1]) for r in conn.execute(
        "SELECT p.id, " + CHOSEN_COVER.format(p="p") + " FROM persons p "
        "WHERE p.id = ANY(%s) AND p.cover_face_id IS NOT NULL", (list(persons),))
        if r[1] is not None}


def chosen_cover(conn: psycopg.Connection, person: uuid.UUID) -> int | None:
    """The face stored as the person's cover, in effect or not (None: none chosen)."""
    row = conn.execute("SELECT cover_face_id FROM persons WHERE id = %s",
                       (person,)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def set_cover(conn: psycopg.Connection, person: uuid.UUID, face_id: int | None) -> int:
    """Make ``face_id`` the person's cover (None: back to the automatic face); rows
    changed (0: it was so already)."""
    return conn.execute(
        "UPDATE persons SET cover_face_id = %s, updated_at = now() "
        "WHERE id = %s AND cover_face_id IS DISTINCT FROM %s",
        (face_id, person, face_id)).rowcount

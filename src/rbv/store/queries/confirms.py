"""A person's unconfirmed faces (``rbv persons confirm``): those an automatic run put
in it, that no hand placement confirms, with how alike each is to the person."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import psycopg

_MINE = """
    WITH mine AS (
        SELECT f.id, f.image_id, f.assigned_by = 'manual' AS confirmed, e.embedding
        FROM face_detections f JOIN face_embeddings e ON e.face_id = f.id
        WHERE f.person_id = %(person)s),
    reference AS (  -- the confirmed faces' mean, else all the person's faces'
        SELECT avg(embedding) AS centre FROM mine
        WHERE confirmed OR NOT EXISTS (SELECT 1 FROM mine WHERE confirmed))
"""


def unconfirmed_faces(conn: psycopg.Connection, person: uuid.UUID, limit: int
                      ) -> list[tuple[int, int, float]]:
    """(face, image, similarity) of the person's unconfirmed faces, least alike to its
    confirmed faces (to all its faces, while none is) first; at most ``limit``."""
    return [(int(f), int(i), float(s)) for f, i, s in conn.execute(
        _MINE + "SELECT m.id, m.image_id, 1 - (m.embedding <=> r.centre) FROM mine m, "
        "reference r WHERE NOT m.confirmed ORDER BY 3, 1 LIMIT %(limit)s",
        {"person": person, "limit": limit})]


def unconfirmed_count(conn: psycopg.Connection, person: uuid.UUID) -> tuple[int, int]:
    """(unconfirmed, confirmed) faces of the person."""
    row = conn.execute(
        "SELECT count(*) FILTER (WHERE assigned_by IS DISTINCT FROM 'manual'), "
        "count(*) FILTER (WHERE assigned_by = 'manual') FROM face_detections "
        "WHERE person_id = %s", (person,)).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def not_held(conn: psycopg.Connection, person: uuid.UUID, faces: Sequence[int]) -> list[int]:
    """Those of ``faces`` the person does not hold now."""
    held = {int(f) for (f,) in conn.execute(
        "SELECT id FROM face_detections WHERE id = ANY(%s) AND person_id = %s",
        ([int(f) for f in faces], person))}
    return [f for f in faces if f not in held]


def all_unconfirmed(conn: psycopg.Connection, person: uuid.UUID) -> list[int]:
    """Every unconfirmed face of the person, by id."""
    return [int(f) for (f,) in conn.execute(
        "SELECT id FROM face_detections WHERE person_id = %s "
        "AND assigned_by IS DISTINCT FROM 'manual' ORDER BY id", (person,))]

"""Face links users make: ``must_links`` ("same person") and ``cannot_links``
("different persons"), stored as pairs with ``face_a < face_b``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql


@dataclass(frozen=True)
class LinkedFace:
    """A face about to be linked, with where it is now."""

    id: int
    image_id: int
    pack_id: int
    person_id: uuid.UUID | None
    manual: bool
    person_name: str | None
    short_edge: float  # of its box, in the photo's pixels


def linked_faces(conn: psycopg.Connection, face_ids: Sequence[int]) -> list[LinkedFace]:
    """The faces (those that exist), with their person and its name, in id order."""
    return [LinkedFace(int(r[0]), int(r[1]), int(r[2]), r[3], bool(r[4]), r[5], float(r[6]))
            for r in conn.execute(
                "SELECT f.id, f.image_id, f.pack_id, f.person_id, "
                "coalesce(f.assigned_by = 'manual', false), n.name, f.face_short "
                "FROM face_detections f LEFT JOIN person_names n ON n.person_id = f.person_id "
                "WHERE f.id = ANY(%s::bigint[]) ORDER BY f.id", ([int(f) for f in face_ids],))]


def same_person_group(conn: psycopg.Connection, face_ids: Sequence[int]) -> list[int]:
    """The faces joined to ``face_ids`` by must-links, directly or through others (the
    faces themselves included), in id order."""
    return sorted(set().union(*same_person_groups(conn, face_ids).values()))


def same_person_groups(conn: psycopg.Connection, face_ids: Sequence[int]
                       ) -> dict[int, set[int]]:
    """Each of ``face_ids`` → the faces joined to it by must-links, directly or through
    others (itself included), in one query (a grid's answer asks it for two dozen
    faces)."""
    groups: dict[int, set[int]] = {int(f): {int(f)} for f in face_ids}
    for seed, face in conn.execute(
            """
            WITH RECURSIVE g (seed, id) AS (
                SELECT s, s FROM unnest(%s::bigint[]) s
                UNION
                SELECT g.seed, CASE WHEN m.face_a = g.id THEN m.face_b ELSE m.face_a END
                FROM must_links m JOIN g ON g.id = m.face_a OR g.id = m.face_b
            )
            SELECT seed, id FROM g
            """, (list(groups),)):
        groups[int(seed)].add(int(face))
    return groups


def same_photo_pairs(conn: psycopg.Connection, face_ids: Sequence[int]) -> list[tuple[int, int]]:
    """Pairs of ``face_ids`` that are faces of one photo."""
    ids = [int(f) for f in face_ids]
    return [(int(a), int(b)) for a, b in conn.execute(
        "SELECT a.id, b.id FROM face_detections a JOIN face_detections b "
        "ON b.image_id = a.image_id AND b.id > a.id "
        "WHERE a.id = ANY(%s::bigint[]) AND b.id = ANY(%s::bigint[]) ORDER BY a.id, b.id",
        (ids, ids))]


def add_links(conn: psycopg.Connection, same: bool, pairs: Sequence[tuple[int, int]]) -> int:
    """Store the pairs as must-links (``same``) or cannot-links; returns how many were
    new."""
    table = "must_links" if same else "cannot_links"
    a = [min(p) for p in pairs]
    b = [max(p) for p in pairs]
    return conn.execute(sql.SQL(
        "INSERT INTO {} (face_a, face_b) SELECT unnest(%s::bigint[]), unnest(%s::bigint[]) "
        "ON CONFLICT DO NOTHING").format(sql.Identifier(table)), (a, b)).rowcount


def same_links_inside_persons(conn: psycopg.Connection, pack_id: int,
                              persons: Sequence[uuid.UUID] | None = None
                              ) -> list[tuple[int, int]]:
    """The pack's "same" links whose two faces are in one person (of ``persons``, when
    given): what a split of a person must keep together."""
    return [(int(a), int(b)) for a, b in conn.execute(
        "SELECT m.face_a, m.face_b FROM must_links m "
        "JOIN face_detections a ON a.id = m.face_a JOIN face_detections b ON b.id = m.face_b "
        "WHERE a.pack_id = %s AND a.person_id = b.person_id "
        "AND (%s::uuid[] IS NULL OR a.person_id = ANY(%s::uuid[])) ORDER BY 1, 2",
        (pack_id, persons and list(persons), persons and list(persons)))]

"""Queries of ``rbv audit``: what is inconsistent in persons, and its safe repairs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from rbv.formats.names import name_key


@dataclass(frozen=True)
class EmptyPerson:
    """An unmerged person without faces."""

    id: uuid.UUID
    pack_id: int | None
    name: str | None
    merge_target: bool  # other persons were merged into it (their names resolve to it)


@dataclass(frozen=True)
class ConflictFace:
    """One face of a photo that has several faces in one person."""

    id: int
    assigned_by: str | None
    similarity: float | None  # to the person's mean face over its other photos


@dataclass(frozen=True)
class SamePhotoConflict:
    """Two or more faces of one photo in one person (one of them is someone else)."""

    person_id: uuid.UUID
    pack_id: int
    image_id: int
    path: str | None  # one of the photo's paths
    faces: tuple[ConflictFace, ...]


@dataclass(frozen=True)
class DuplicateName:
    """Several unmerged persons of one pack with the same name, as names compare."""

    pack_id: int
    name: str
    persons: tuple[uuid.UUID, ...]


@dataclass(frozen=True)
class RejectedInside:
    """A face in a person it was rejected from (``rbv persons not-this-person``)."""

    face_id: int
    person_id: uuid.UUID
    pack_id: int
    assigned_by: str | None


@dataclass(frozen=True)
class ApartInside:
    """Two faces linked as different persons (a "different" link) in one person."""

    person_id: uuid.UUID
    pack_id: int
    faces: tuple[int, int]
    assigned_by: tuple[str | None, str | None]


@dataclass(frozen=True)
class SameApart:
    """Two faces linked as one person (a "same" link), each placed by hand in another
    person: two decisions that contradict, which no clustering can settle."""

    faces: tuple[int, int]
    persons: tuple[uuid.UUID, uuid.UUID]
    pack_id: int


def rejected_inside(conn: psycopg.Connection) -> list[RejectedInside]:
    return [RejectedInside(int(r[0]), r[1], int(r[2]), r[3]) for r in conn.execute(
        """
        SELECT f.id, f.person_id, f.pack_id, f.assigned_by FROM person_rejections r
        JOIN face_detections f ON f.id = r.face_id AND f.person_id = r.person_id
        ORDER BY f.person_id, f.id
        """)]


def apart_inside(conn: psycopg.Connection) -> list[ApartInside]:
    return [ApartInside(r[0], int(r[1]), (int(r[2]), int(r[3])), (r[4], r[5]))
            for r in conn.execute(
                """
                SELECT a.person_id, a.pack_id, a.id, b.id, a.assigned_by, b.assigned_by
                FROM cannot_links c
                JOIN face_detections a ON a.id = c.face_a
                JOIN face_detections b ON b.id = c.face_b AND b.person_id = a.person_id
                ORDER BY a.person_id, a.id, b.id
                """)]


def same_apart(conn: psycopg.Connection) -> list[SameApart]:
    return [SameApart((int(r[0]), int(r[1])), (r[2], r[3]), int(r[4])) for r in conn.execute(
        """
        SELECT m.face_a, m.face_b, a.person_id, b.person_id, a.pack_id FROM must_links m
        JOIN face_detections a ON a.id = m.face_a AND a.assigned_by = 'manual'
        JOIN face_detections b ON b.id = m.face_b AND b.assigned_by = 'manual'
        WHERE a.person_id <> b.person_id
        ORDER BY m.face_a, m.face_b
        """)]


def empty_persons(conn: psycopg.Connection) -> list[EmptyPerson]:
    return [EmptyPerson(r[0], r[1], r[2], bool(r[3])) for r in conn.execute(
        """
        SELECT p.id, p.pack_id, n.name,
               EXISTS (SELECT 1 FROM persons m WHERE m.merged_into = p.id)
        FROM persons p LEFT JOIN person_names n ON n.person_id = p.id
        WHERE p.merged_into IS NULL
          AND NOT EXISTS (SELECT 1 FROM face_detections f WHERE f.person_id = p.id)
        ORDER BY p.created_at, p.id
        """)]


def delete_empty_persons(conn: psycopg.Connection, ids: Sequence[uuid.UUID]) -> int:
    """Delete these persons if they are still empty, unnamed and no merge target."""
    if not ids:
        return 0
    return conn.execute(
        """
        DELETE FROM persons p WHERE p.id = ANY(%s) AND p.merged_into IS NULL
          AND NOT EXISTS (SELECT 1 FROM face_detections f WHERE f.person_id = p.id)
          AND NOT EXISTS (SELECT 1 FROM person_names n WHERE n.person_id = p.id)
          AND NOT EXISTS (SELECT 1 FROM persons m WHERE m.merged_into = p.id)
        """, (list(ids),)).rowcount


def same_photo_conflicts(conn: psycopg.Connection) -> list[SamePhotoConflict]:
    rows = conn.execute(
        """
        WITH clash AS (
            SELECT person_id, image_id FROM face_detections
            WHERE person_id IS NOT NULL
            GROUP BY person_id, image_id HAVING count(*) > 1
        )
        SELECT f.person_id, f.pack_id, f.image_id,
               (SELECT min(p.path) FROM image_paths p WHERE p.image_id = f.image_id),
               f.id, f.assigned_by,
               1 - (e.embedding <=> (
                   SELECT avg(oe.embedding) FROM face_detections o
                   JOIN face_embeddings oe ON oe.face_id = o.id
                   WHERE o.person_id = f.person_id AND o.image_id <> f.image_id))
        FROM clash c
        JOIN face_detections f ON f.person_id = c.person_id AND f.image_id = c.image_id
        JOIN face_embeddings e ON e.face_id = f.id
        ORDER BY f.person_id, f.image_id, f.id
        """).fetchall()
    groups: dict[tuple[uuid.UUID, int], list[tuple[int, str | None, ConflictFace]]] = {}
    for person, pack, image, path, face, by, sim in rows:
        groups.setdefault((person, int(image)), []).append(
            (int(pack), path,
             ConflictFace(int(face), by, None if sim is None else float(sim))))
    return [SamePhotoConflict(person, faces[0][0], image, faces[0][1],
                              tuple(f for _, _, f in faces))
            for (person, image), faces in groups.items()]


def unassign_faces(conn: psycopg.Connection, person: uuid.UUID,
                   face_ids: Sequence[int]) -> int:
    """Take these faces out of ``person`` (they become unassigned, as before clustering)."""
    return conn.execute(
        "UPDATE face_detections SET person_id = NULL, assigned_by = NULL, assigned_at = NULL "
        "WHERE person_id = %s AND id = ANY(%s)", (person, list(face_ids))).rowcount


def duplicate_names(conn: psycopg.Connection) -> list[DuplicateName]:
    """Names two or more unmerged persons of one pack hold, as names compare
    (:func:`rbv.formats.names.name_key`, the one rule: compared here, not in SQL,
    whose ``lower`` folds less), the oldest person first."""
    rows = conn.execute(
        "SELECT p.pack_id, n.name, p.id FROM persons p "
        "JOIN person_names n ON n.person_id = p.id WHERE p.merged_into IS NULL "
        "ORDER BY p.created_at, p.id").fetchall()
    groups: dict[tuple[int, str], list[tuple[str, uuid.UUID]]] = {}
    for pack_id, name, person in rows:
        groups.setdefault((int(pack_id), name_key(name)), []).append((name, person))
    found = [DuplicateName(pack_id, min(name for name, _ in held),
                           tuple(person for _, person in held))
             for (pack_id, _), held in groups.items() if len(held) > 1]
    return sorted(found, key=lambda d: d.name)


def pack_names(conn: psycopg.Connection) -> dict[int, str]:
    return {int(r[0]): str(r[1]) for r in conn.execute("SELECT id, name FROM model_packs")}

"""What clustering reads (faces, embeddings, manual constraints) and writes (persons)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import sql

from rbv.face_rows import FacePlace
from rbv.store.queries.attributes import ages_digest
from rbv.store.queries.packs import COPY_SIGNATURE, PackRow, vector_expr
from rbv.store.queries.paths import path_from_bytes
from rbv.store.server.connection import Database


@dataclass(frozen=True)
class ManualFacts:
    """Manual decisions over a pack's faces (face ids, not positions)."""

    must: list[tuple[int, int]]
    cannot: list[tuple[int, int]]
    rejections: list[tuple[int, uuid.UUID]]


def faces_by_photo(conn: psycopg.Connection, pack: PackRow, persons: Sequence[uuid.UUID]
                   ) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """The faces of ``persons`` without their vectors (narrow rows): face ids, photo ids
    and each face's index into ``persons``."""
    rows = conn.execute(
        "SELECT f.id, f.image_id, t.i - 1 FROM face_detections f "
        "JOIN unnest(%s::uuid[]) WITH ORDINALITY AS t(p, i) ON t.p = f.person_id "
        "WHERE f.pack_id = %s ORDER BY f.id", ([str(p) for p in persons], pack.id)).fetchall()
    table = np.array(rows, np.int64).reshape(-1, 3)
    return table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy()


def load_manual_facts(conn: psycopg.Connection, pack: PackRow) -> ManualFacts:
    """must_links, cannot_links and person_rejections among the pack's faces."""
    def pairs(table: str) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in conn.execute(sql.SQL(
            "SELECT t.face_a, t.face_b FROM {} t JOIN face_detections f ON f.id = t.face_a "
            "WHERE f.pack_id = %s").format(sql.Identifier(table)), (pack.id,))]

    rejections = [(int(f), p) for f, p in conn.execute(
        "SELECT r.face_id, r.person_id FROM person_rejections r "
        "JOIN face_detections f ON f.id = r.face_id WHERE f.pack_id = %s", (pack.id,))]
    return ManualFacts(pairs("must_links"), pairs("cannot_links"), rejections)


def person_images(conn: psycopg.Connection, person_ids: Sequence[uuid.UUID],
                  image_ids: Sequence[int] | None = None) -> set[tuple[uuid.UUID, int]]:
    """(person, image) pairs for these persons (in these photos only, when given): a
    person appears once per photo."""
    if image_ids is not None:  # a few photos: their faces, not every face of the persons
        return {(p, int(i)) for p, i in conn.execute(
            "SELECT DISTINCT person_id, image_id FROM face_detections "
            "WHERE image_id = ANY(%s) AND person_id = ANY(%s)",
            (sorted({int(i) for i in image_ids}), list(person_ids)))}
    return {(p, int(i)) for p, i in conn.execute(
        "SELECT DISTINCT person_id, image_id FROM face_detections WHERE person_id = ANY(%s)",
        (list(person_ids),))}


def create_persons(conn: psycopg.Connection, pack: PackRow, count: int,
                   source: str = "cluster", *,
                   ids: Sequence[uuid.UUID] | None = None) -> list[uuid.UUID]:
    """``count`` new person rows (with the given ``ids``, else fresh ones); returns their
    ids."""
    ids = list(ids) if ids is not None else [uuid.uuid4() for _ in range(count)]
    if ids:
        conn.execute("INSERT INTO persons (id, pack_id, source) "
                     "SELECT unnest(%s::uuid[]), %s, %s", (ids, pack.id, source))
    return ids


_ASSIGN_ROW = np.dtype([("fields", ">i2"), ("_face", ">i4"), ("face", ">i8"),
                        ("_person", ">i4"), ("person", "S16")])
"""A binary COPY row of (int8, uuid): the field count, then each field's length and value."""


def write_assignments(conn: psycopg.Connection, face_ids: Sequence[int],
                      person_ids: Sequence[uuid.UUID], assigned_by: str) -> int:
    """Set ``person_id`` of each face (never touching manual ones, never giving a face
    marked not a face a person); returns rows changed."""
    if len(face_ids) != len(person_ids):
        raise ValueError("a person for each face")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _assign (face_id bigint, person_id uuid) "
                 "ON COMMIT DROP")
    conn.execute("TRUNCATE _assign")
    # The binary COPY's rows made by numpy at once (a row each through psycopg: 1.5-2 s
    # of a million faces' writing), between its header and trailer.
    rows = np.empty(len(face_ids), _ASSIGN_ROW)
    rows["fields"], rows["_face"], rows["_person"] = 2, 8, 16
    rows["face"] = np.asarray(face_ids, np.int64)
    rows["person"] = np.frombuffer(b"".join(p.bytes for p in person_ids), "S16")
    with conn.cursor() as cur, cur.copy(
        "COPY _assign (face_id, person_id) FROM STDIN WITH (FORMAT BINARY)"
    ) as copy:
        copy.write(COPY_SIGNATURE + rows.tobytes() + b"\xff\xff")
    conn.execute("ANALYZE _assign")  # else the planner guesses a tiny table: nested loops
    # The join hashed in memory: at the server's 4 MB, 100k faces' hash went to disk in 4
    # batches (writes 3.56 → 3.26 s median with room for it, 8 rounds alternated).
    with local_settings(conn, {"work_mem": f"{4 + len(face_ids) // 8_000}MB"}):
        cur2 = conn.execute(
            """
            UPDATE face_detections f SET person_id = a.person_id, assigned_by = %s,
                   assigned_at = now()
            FROM _assign a
            WHERE f.id = a.face_id AND f.assigned_by IS DISTINCT FROM 'manual'
              AND f.person_id IS DISTINCT FROM a.person_id
              AND (a.person_id IS NULL
                   OR NOT EXISTS (SELECT 1 FROM not_faces m WHERE m.face_id = f.id))
            """,
            (assigned_by,),
        )
    return cur2.rowcount


@contextmanager
def local_settings(conn: psycopg.Connection, values: dict[str, str]) -> Iterator[None]:
    """The server's settings at ``values`` (``{"work_mem": "64MB"}``, planner costs) for
    the statements inside, each set back after to what it was (on an error the
    transaction's rollback sets them back)."""
    names = list(values)
    old = [v for (v,) in conn.execute(
        "SELECT current_setting(n) FROM unnest(%s::text[]) WITH ORDINALITY AS s(n, i) "
        "ORDER BY i", (names,))]
    set_them = ("SELECT set_config(n, v, true) FROM unnest(%s::text[], %s::text[]) "
                "AS s(n, v)")
    conn.execute(set_them, (names, list(values.values())))
    yield
    conn.execute(set_them, (names, old))


def delete_empty_persons(conn: psycopg.Connection, pack: PackRow, *,
                         only_if_faces_left: bool = False) -> int:
    """Remove automatic persons left with no faces (named, hidden, with a birthday,
    manual, merged-into and merged persons stay: they hold a user's decision). With
    ``only_if_faces_left`` the faces are read only when one has left a person of the
    pack since the last check (marked in ``faces_left_persons`` by a trigger): a person
    empties no other way."""
    marked = conn.execute("DELETE FROM faces_left_persons WHERE pack_id = %s RETURNING 1",
                          (pack.id,)).fetchone()
    if only_if_faces_left and marked is None:
        return 0
    _pass_covers_on(conn, pack)
    cur = conn.execute(
        "DELETE FROM persons p WHERE p.pack_id = %s AND " + _EMPTY_AUTOMATIC, (pack.id,))
    return cur.rowcount


_AUTOMATIC = """p.source = 'cluster' AND NOT p.hidden AND p.born IS NULL
    AND p.merged_into IS NULL"""
"""SQL: the person ``p`` is automatic: made by a run, not hidden, with no birthday, not
merged (its name is read apart, from ``person_names``)."""

_EMPTY_AUTOMATIC = _AUTOMATIC + """
    AND NOT EXISTS (SELECT 1 FROM face_detections f WHERE f.person_id = p.id)
    AND NOT EXISTS (SELECT 1 FROM person_names n WHERE n.person_id = p.id)
    AND NOT EXISTS (SELECT 1 FROM persons m WHERE m.merged_into = p.id)"""
"""SQL: the person ``p`` is automatic, and empty: a run deletes it."""


def _pass_covers_on(conn: psycopg.Connection, pack: PackRow) -> None:
    """A cover face chosen for a person about to be deleted (a run put all its faces
    in other persons) stays the cover of the person that holds that face now, unless
    that one has a cover of its own: the decision stays with the person's faces.

    The persons with a cover are read first, from ``persons`` alone: few or none, and
    one scan of one table whatever the statistics say. Joined in one statement, a first
    run after a large index (no statistics yet) was planned from every assigned face
    with a scan of ``persons`` per face: 32 s at 100k faces, over 15 min at 1M."""
    covered = [p for (p,) in conn.execute(
        "SELECT p.id FROM persons p WHERE p.pack_id = %s AND p.cover_face_id IS NOT NULL "
        "AND " + _AUTOMATIC, (pack.id,))]
    if not covered:
        return
    conn.execute(
        """
        UPDATE persons q SET cover_face_id = m.face, updated_at = now()
        FROM (SELECT DISTINCT ON (f.person_id) f.person_id AS holder, f.id AS face
              FROM persons p JOIN face_detections f ON f.id = p.cover_face_id
              WHERE p.id = ANY(%s) AND f.person_id IS NOT NULL
                AND NOT EXISTS (SELECT 1 FROM not_faces x WHERE x.face_id = f.id)
                AND """ + _EMPTY_AUTOMATIC + """
              ORDER BY f.person_id, p.id) m
        WHERE q.id = m.holder AND NOT EXISTS (
            SELECT 1 FROM face_detections c WHERE c.id = q.cover_face_id
            AND c.person_id = q.id)
        """, (covered,))


def faces_with_paths(conn: psycopg.Connection, pack: PackRow) -> list[FacePlace]:
    """Each face of the pack with each path of its photo."""
    return [FacePlace(int(f), path_from_bytes(p), (float(x1), float(y1), float(x2), float(y2)),
                      w, h) for f, p, x1, y1, x2, y2, w, h in conn.execute(
        """
        SELECT f.id, ip.path_bytes, f.x1, f.y1, f.x2, f.y2, i.width, i.height
        FROM face_detections f JOIN image_paths ip ON ip.image_id = f.image_id
        JOIN images i ON i.id = f.image_id
        WHERE f.pack_id = %s AND NOT EXISTS (SELECT 1 FROM not_faces m WHERE m.face_id = f.id)
        """,
        (pack.id,),
    )]


def analyze_faces(conn: psycopg.Connection) -> None:
    """ANALYZE face_detections inside a run that gave many faces a person, so that the
    run's later statements are planned on them (~0.1 s per 100k faces)."""
    conn.execute("ANALYZE face_detections")


def vacuum_faces(db: Database) -> None:
    """VACUUM (ANALYZE) face_detections after a run that rewrote many person ids: the
    dead row versions go, and the planner learns how many faces now have a person. The
    rows are narrow (vectors live in face_embeddings, untouched by assignments), so
    this takes ~0.3 s per 100k faces; it was 162 s when the vectors shared the row."""
    with db.connect(autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) face_detections")


def clustering_inputs_digest(conn: psycopg.Connection, pack: PackRow) -> str:
    """A digest of what a full clustering of the pack reads besides the vectors: faces,
    who each belongs to and how, manual links, rejections, faces marked not a face and
    estimated ages. One pass over the narrow face rows: ~0.1 s per 100k faces."""
    faces = conn.execute(
        "SELECT count(*), coalesce(max(id), 0), coalesce(sum(hashtextextended("
        "coalesce(person_id::text, '-') || coalesce(assigned_by, '-'), id)), 0) "
        "FROM face_detections WHERE pack_id = %s", (pack.id,)).fetchone()
    manual = [conn.execute(sql.SQL(
        "SELECT count(*), coalesce(sum(hashtextextended(t.{b}::text, t.face_a)), 0) "
        "FROM {t} t JOIN face_detections f ON f.id = t.face_a WHERE f.pack_id = %s"
    ).format(t=sql.Identifier(table), b=sql.Identifier(other)), (pack.id,)).fetchone()
        for table, other in (("must_links", "face_b"), ("cannot_links", "face_b"))]
    rejected = conn.execute(
        "SELECT count(*), coalesce(sum(hashtextextended(r.person_id::text, r.face_id)), 0) "
        "FROM person_rejections r JOIN face_detections f ON f.id = r.face_id "
        "WHERE f.pack_id = %s", (pack.id,)).fetchone()
    marked = conn.execute(
        "SELECT count(*), coalesce(sum(hashtextextended(m.face_id::text, 0)), 0) "
        "FROM not_faces m JOIN face_detections f ON f.id = m.face_id WHERE f.pack_id = %s",
        (pack.id,)).fetchone()
    aged = ages_digest(conn, pack.id)  # a full run centres faces by them
    text = repr([tuple(map(str, r or ())) for r in (faces, *manual, rejected, marked)] + aged)
    return hashlib.sha256(text.encode()).hexdigest()


def keep_assignments(conn: psycopg.Connection, pack: PackRow) -> None:
    """Keep the pack's face → person rows as they are now, until the transaction (or
    the savepoint this is called in) ends, for :func:`changed_assignments`."""
    conn.execute(sql.SQL(
        "CREATE TEMP TABLE _assigned_before ON COMMIT DROP AS "
        "SELECT id, person_id FROM face_detections WHERE pack_id = {}"
    ).format(sql.Literal(pack.id)))
    conn.execute("ANALYZE _assigned_before")


def changed_assignments(conn: psycopg.Connection, pack: PackRow
                        ) -> list[tuple[int, uuid.UUID | None, uuid.UUID | None]]:
    """(face, person before, person now) of the faces whose person changed since
    :func:`keep_assignments`, in face order."""
    return [(int(f), b, a) for f, b, a in conn.execute(
        "SELECT f.id, k.person_id, f.person_id FROM face_detections f "
        "JOIN _assigned_before k ON k.id = f.id "
        "WHERE f.pack_id = %s AND f.person_id IS DISTINCT FROM k.person_id ORDER BY f.id",
        (pack.id,))]


def count_faces(conn: psycopg.Connection, pack: PackRow) -> int:
    """How many faces the pack has."""
    row = conn.execute("SELECT count(*) FROM face_detections WHERE pack_id = %s",
                       (pack.id,)).fetchone()
    return int(row[0]) if row else 0


def same_photo_similarities(conn: psycopg.Connection, pack: PackRow,
                            limit: int = 100_000) -> NDArray[np.float32]:
    """Cosine similarities of face pairs that share a photo: pairs of different people
    that every library has for free (group photos), up to ``limit`` of them."""
    query = sql.SQL(
        "SELECT 1 - (ea.{vec} <=> eb.{vec}) FROM face_detections a JOIN face_detections b "
        "ON b.image_id = a.image_id AND b.id > a.id AND b.pack_id = a.pack_id "
        "JOIN face_embeddings ea ON ea.face_id = a.id "
        "JOIN face_embeddings eb ON eb.face_id = b.id "
        "WHERE a.pack_id = %s LIMIT %s"
    ).format(vec=vector_expr(pack))
    return np.array([r[0] for r in conn.execute(query, (pack.id, limit))], np.float32)


def named_faces(conn: psycopg.Connection, pack: PackRow) -> dict[uuid.UUID, list[int]]:
    """The faces of each named person of the pack (merged-away persons left out; a named
    person without faces maps to an empty list)."""
    return {p: [int(f) for f in faces if f is not None] for p, faces in conn.execute(
        """
        SELECT p.id, array_agg(f.id ORDER BY f.id)
        FROM persons p JOIN person_names n ON n.person_id = p.id
        LEFT JOIN face_detections f ON f.person_id = p.id
        WHERE p.pack_id = %s AND p.merged_into IS NULL
        GROUP BY p.id
        """,
        (pack.id,),
    )}


def named_persons(conn: psycopg.Connection, pack: PackRow) -> set[uuid.UUID]:
    """The pack's persons that have a name."""
    return {p for (p,) in conn.execute(
        "SELECT p.id FROM persons p JOIN person_names n ON n.person_id = p.id "
        "WHERE p.pack_id = %s", (pack.id,))}


def named_face_counts(conn: psycopg.Connection, pack: PackRow) -> dict[uuid.UUID, int]:
    """How many faces each named person of the pack holds (merged-away ones left out)."""
    return {p: int(n) for p, n in conn.execute(
        """
        SELECT p.id, count(f.id)
        FROM persons p JOIN person_names n ON n.person_id = p.id
        LEFT JOIN face_detections f ON f.person_id = p.id
        WHERE p.pack_id = %s AND p.merged_into IS NULL
        GROUP BY p.id
        """,
        (pack.id,),
    )}


"""Queries on ``face_attributes``: each face's estimated age and gender (schema 26)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import psycopg
from psycopg import sql

from rbv.faces.estimates import EstimatedAges, FaceEstimate
from rbv.store.queries.packs import COPY_HEADER

if TYPE_CHECKING:  # numpy is imported by the one query that returns arrays: persons
    import numpy as np  # list and the edits leave it (and the clustering stack) unloaded
    from numpy.typing import NDArray

GENDERS = ("female", "male")
MOST_YEARS = 120.0
"""The oldest age the table holds (its CHECK): an estimate above it is no estimate."""


def checked(estimate: FaceEstimate) -> FaceEstimate | None:
    """``estimate`` when every number is finite and within the table's ranges, else
    None: a model's NaN (a crop of nothing) is never stored."""
    numbers = (estimate.age, estimate.age_spread, estimate.gender_confidence)
    if not all(math.isfinite(v) for v in numbers):
        return None
    if not (0.0 <= estimate.age <= MOST_YEARS and estimate.age_spread >= 0.0
            and 0.5 <= estimate.gender_confidence <= 1.0 and estimate.gender in GENDERS):
        return None
    return estimate


def save_attributes(conn: psycopg.Connection,
                    rows: Sequence[tuple[int, FaceEstimate]]) -> int:
    """Store (or replace) each face's estimate; estimates that fail :func:`checked` are
    left out. Returns how many rows were written."""
    good = [(face_id, e) for face_id, e in rows if checked(e) is not None]
    if good:
        with conn.cursor() as cur:
            cur.executemany(
                """
                INSERT INTO face_attributes (face_id, model, model_sha256, age, age_spread,
                                             gender, gender_confidence)
                VALUES (%s, %s, %s, %s, %s, %s, %s)
                ON CONFLICT (face_id) DO UPDATE SET model = EXCLUDED.model,
                    model_sha256 = EXCLUDED.model_sha256, age = EXCLUDED.age,
                    age_spread = EXCLUDED.age_spread, gender = EXCLUDED.gender,
                    gender_confidence = EXCLUDED.gender_confidence, computed_at = now()
                """,
                [(face_id, e.model, e.model_sha256, float(e.age), float(e.age_spread),
                  e.gender, float(e.gender_confidence)) for face_id, e in good])
    return len(good)


def face_ages(conn: psycopg.Connection, face_ids: Sequence[int]) -> dict[int, float]:
    """Face id → its estimated age in years, for the faces that have one."""
    return {int(f): float(a) for f, a in conn.execute(
        "SELECT face_id, age::float8 FROM face_attributes WHERE face_id = ANY(%s)",
        (list(face_ids),))}


def pack_ages(conn: psycopg.Connection, pack_id: int
              ) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The ids of the pack's faces that have an estimated age, ascending, and their ages:
    one binary COPY (a whole library's ages, where an array of every face id would be a
    parameter of a million elements)."""
    import numpy as np

    query = sql.SQL("COPY (SELECT a.face_id::int8, a.age::float8 FROM face_attributes a "
                    "JOIN face_detections f ON f.id = a.face_id WHERE f.pack_id = {} "
                    "ORDER BY a.face_id) TO STDOUT (FORMAT BINARY)").format(
                        sql.Literal(int(pack_id)))
    data = bytearray()
    with conn.cursor() as cur, cur.copy(query) as copy:
        for block in copy:
            data += block
    row = np.dtype([("fields", ">i2"), ("_l1", ">i4"), ("id", ">i8"), ("_l2", ">i4"),
                    ("age", ">f8")])
    body = data[COPY_HEADER:len(data) - 2]  # less the header and the trailer (-1)
    if data[-2:] != b"\xff\xff" or len(body) % row.itemsize:
        raise ValueError(f"unexpected COPY data: {len(data)} bytes")
    rows = np.frombuffer(body, row, len(body) // row.itemsize)
    return rows["id"].astype(np.int64), rows["age"].astype(np.float64)


def has_ages(conn: psycopg.Connection, pack_id: int) -> bool:
    """Whether any face of the pack has an estimated age."""
    row = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM face_attributes a JOIN face_detections f "
        "ON f.id = a.face_id WHERE f.pack_id = %s)", (pack_id,)).fetchone()
    return bool(row and row[0])


def ages_stamp(conn: psycopg.Connection) -> tuple[int, str]:
    """Changes whenever an estimate is stored, replaced or dropped: how many there are
    and when the newest was made."""
    row = conn.execute("SELECT count(*), coalesce(max(computed_at)::text, '') "
                       "FROM face_attributes").fetchone()
    assert row is not None
    return int(row[0]), str(row[1])


def face_estimates(conn: psycopg.Connection,
                   face_ids: Sequence[int]) -> dict[int, FaceEstimate]:
    """Face id → its whole estimate, for the faces that have one."""
    return {int(r[0]): FaceEstimate(float(r[1]), float(r[2]), r[3], float(r[4]), r[5], r[6])
            for r in conn.execute(
                """
                SELECT face_id, age, age_spread, gender, gender_confidence, model, model_sha256
                FROM face_attributes WHERE face_id = ANY(%s)
                """, (list(face_ids),))}


@dataclass(frozen=True)
class FaceToEstimate:
    """A face of the pack without an estimate: where it is on which photo."""

    id: int
    image_id: int
    bbox: tuple[float, float, float, float]


def faces_without_attributes(conn: psycopg.Connection, pack_id: int) -> list[FaceToEstimate]:
    """The pack's faces that have no estimate yet, photo by photo."""
    return [FaceToEstimate(int(r[0]), int(r[1]), (r[2], r[3], r[4], r[5]))
            for r in conn.execute(
                """
                SELECT f.id, f.image_id, f.x1, f.y1, f.x2, f.y2 FROM face_detections f
                WHERE f.pack_id = %s
                  AND NOT EXISTS (SELECT 1 FROM face_attributes a WHERE a.face_id = f.id)
                ORDER BY f.image_id, f.id
                """, (pack_id,))]


def carry_attributes(conn: psycopg.Connection, became: Sequence[tuple[int, int]]) -> int:
    """Give each new face of ``became`` (old face id, new face id) the old face's
    estimate where it has none of its own (a photo's edited content scanned without the
    attribute model). Returns how many were given."""
    if not became:
        return 0
    cur = conn.execute(
        """
        INSERT INTO face_attributes (face_id, model, model_sha256, age, age_spread, gender,
                                     gender_confidence, computed_at)
        SELECT b.new_id, a.model, a.model_sha256, a.age, a.age_spread, a.gender,
               a.gender_confidence, a.computed_at
        FROM unnest(%s::bigint[], %s::bigint[]) AS b(old_id, new_id)
        JOIN face_attributes a ON a.face_id = b.old_id
        ON CONFLICT (face_id) DO NOTHING
        """, ([o for o, _ in became], [n for _, n in became]))
    return cur.rowcount


def estimated_ages(conn: psycopg.Connection, face_ids: Sequence[int]) -> EstimatedAges | None:
    """The estimates of ``face_ids`` (a person's faces) in a few numbers; None when none
    of them has an estimate."""
    row = conn.execute(
        """
        SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY age), min(age),
               max(age), count(*) FILTER (WHERE gender = 'female'),
               count(*) FILTER (WHERE gender = 'male')
        FROM face_attributes WHERE face_id = ANY(%s)
        """, (list(face_ids),)).fetchone()
    if row is None or not row[0]:
        return None
    return EstimatedAges(int(row[0]), float(row[1]), float(row[2]), float(row[3]),
                         int(row[4]), int(row[5]))


def person_estimated_ages(conn: psycopg.Connection, person: object) -> EstimatedAges | None:
    """:func:`estimated_ages` of every face of ``person`` (a uuid)."""
    ids = [int(r[0]) for r in conn.execute(
        "SELECT id FROM face_detections WHERE person_id = %s", (person,))]
    return estimated_ages(conn, ids)


def photo_ages(conn: psycopg.Connection, person: object,
               image_ids: Sequence[int]) -> dict[int, float]:
    """Image id → the estimated age of ``person`` (a uuid) in it (the mean over its
    faces there, which is one face but for a mirror or a photo on a wall), for the
    images where one of its faces has an estimate."""
    return {int(i): float(a) for i, a in conn.execute(
        """
        SELECT f.image_id, avg(a.age) FROM face_detections f
        JOIN face_attributes a ON a.face_id = f.id
        WHERE f.person_id = %s AND f.image_id = ANY(%s) GROUP BY f.image_id
        """, (person, list(image_ids)))}


def ages_digest(conn: psycopg.Connection, pack_id: int) -> list[tuple[str, ...]]:
    """How many of the pack's faces have an age and a sum of hashes of them, as one row;
    no row where none has (a full clustering centres faces by their ages)."""
    row = conn.execute(
        "SELECT count(*), coalesce(sum(hashtextextended(a.age::text, a.face_id)), 0) "
        "FROM face_attributes a JOIN face_detections f ON f.id = a.face_id "
        "WHERE f.pack_id = %s", (pack_id,)).fetchone()
    return [(str(row[0]), str(row[1]))] if row and row[0] else []

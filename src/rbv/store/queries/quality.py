"""Queries on ``face_quality``: what ``enrich`` computes per face, read by refine/export."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg

_COLUMNS = ("face_id", "pack_id", "method", "yaw", "pitch", "roll", "frontality", "symmetry",
            "sharpness", "face_short", "landmarks_106", "landmarks_68")
_TYPES = ("int8", "int4", "text", "float4", "float4", "float4", "float4", "float4", "float4",
          "float4", "float4[]", "float4[]")


@dataclass(frozen=True)
class FaceGeometry:
    """What detection stored about a face: enough to score it without pixels."""

    id: int
    image_id: int
    bbox: tuple[float, float, float, float]
    landmarks: list[float] | None
    blur: float | None


@dataclass(frozen=True)
class FaceQuality:
    """One ``face_quality`` row."""

    face_id: int
    pack_id: int
    method: str
    yaw: float | None
    pitch: float | None
    roll: float | None
    frontality: float
    symmetry: float
    sharpness: float | None
    face_short: float
    landmarks_106: list[float] | None = None
    landmarks_68: list[float] | None = None


def faces_to_enrich(conn: psycopg.Connection, pack_id: int, *, redo: bool = False,
                    limit: int | None = None) -> list[FaceGeometry]:
    """The pack's faces without quality rows (every face with ``redo``), by image."""
    rows = conn.execute(
        """
        SELECT f.id, f.image_id, f.x1, f.y1, f.x2, f.y2, f.landmarks, f.blur
        FROM face_detections f
        WHERE f.pack_id = %(pack)s
          AND (%(redo)s OR NOT EXISTS (SELECT 1 FROM face_quality q WHERE q.face_id = f.id))
        ORDER BY f.image_id, f.id
        LIMIT %(limit)s
        """,
        {"pack": pack_id, "redo": redo, "limit": limit},
    ).fetchall()
    return [FaceGeometry(r[0], r[1], (r[2], r[3], r[4], r[5]), r[6], r[7]) for r in rows]


def save_quality(conn: psycopg.Connection, rows: Iterable[FaceQuality]) -> int:
    """Insert or replace quality rows (COPY into a temp table, then upsert)."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _quality "
                 "(LIKE face_quality INCLUDING DEFAULTS) ON COMMIT DROP")
    conn.execute("TRUNCATE _quality")
    count = 0
    with conn.cursor() as cur, cur.copy(
        f"COPY _quality ({', '.join(_COLUMNS)}) FROM STDIN WITH (FORMAT BINARY)"  # type: ignore[arg-type]
    ) as copy:
        copy.set_types(list(_TYPES))
        for q in rows:
            copy.write_row((q.face_id, q.pack_id, q.method, q.yaw, q.pitch, q.roll,
                            q.frontality, q.symmetry, q.sharpness, q.face_short,
                            q.landmarks_106, q.landmarks_68))
            count += 1
    columns = ", ".join(_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS[1:])
    conn.execute(
        f"INSERT INTO face_quality ({columns}) SELECT {columns} FROM _quality "  # type: ignore[arg-type]
        f"ON CONFLICT (face_id) DO UPDATE SET {updates}, computed_at = now()"
    )
    return count


def quality_of(conn: psycopg.Connection, face_ids: Sequence[int]) -> dict[int, FaceQuality]:
    """Quality rows of these faces (faces not enriched yet are absent)."""
    rows = conn.execute(
        f"SELECT {', '.join(_COLUMNS)} FROM face_quality WHERE face_id = ANY(%s)",  # type: ignore[arg-type]
        (list(face_ids),),
    ).fetchall()
    return {int(r[0]): FaceQuality(*r) for r in rows}

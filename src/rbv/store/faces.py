"""Writing face rows: binary COPY, the fast path for bulk inserts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from numpy.typing import NDArray

_COLUMNS = ("image_id", "pack_id", "x1", "y1", "x2", "y2", "landmarks", "det_score", "blur",
            "embedding")
_TYPES = ("int8", "int4", "float4", "float4", "float4", "float4", "float4[]", "float4",
          "float4", "vector")


@dataclass(frozen=True)
class NewFace:
    """A detected, embedded face ready to store (pixels of the oriented original)."""

    image_id: int
    pack_id: int
    bbox: tuple[float, float, float, float]
    landmarks: list[float] | None
    det_score: float
    blur: float | None
    embedding: NDArray[np.float32]


def insert_faces(conn: psycopg.Connection, faces: Iterable[NewFace]) -> int:
    """Bulk-insert faces with binary COPY; returns how many were written."""
    count = 0
    with conn.cursor() as cur, cur.copy(
        f"COPY face_detections ({', '.join(_COLUMNS)}) FROM STDIN WITH (FORMAT BINARY)"  # type: ignore[arg-type]
    ) as copy:
        copy.set_types(list(_TYPES))
        for f in faces:
            copy.write_row(
                (f.image_id, f.pack_id, *map(float, f.bbox), f.landmarks, float(f.det_score),
                 None if f.blur is None else float(f.blur), np.asarray(f.embedding, np.float32))
            )
            count += 1
    return count


def pack_of_face(conn: psycopg.Connection, face_id: int) -> int | None:
    """The pack a face belongs to, or None when there is no such face."""
    row = conn.execute("SELECT pack_id FROM face_detections WHERE id = %s",
                       (face_id,)).fetchone()
    return int(row[0]) if row else None


def face_landmarks(conn: psycopg.Connection,
                   face_ids: Sequence[int]) -> dict[int, list[float] | None]:
    """Face id → its five detector landmarks (x, y pairs in original pixels)."""
    return {int(f): lm for f, lm in conn.execute(
        "SELECT id, landmarks FROM face_detections WHERE id = ANY(%s)", (list(face_ids),))}

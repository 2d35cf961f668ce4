"""Writing face rows: binary COPY, the fast path for bulk inserts."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from numpy.typing import NDArray

from rbv.faces.estimates import FaceEstimate

_COLUMNS = ("id", "image_id", "pack_id", "x1", "y1", "x2", "y2", "landmarks", "det_score",
            "blur", "drawn")
_TYPES = ("int8", "int8", "int4", "float4", "float4", "float4", "float4", "float4[]",
          "float4", "float4", "text")


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
    drawn: str | None = None  # a face drawn by hand: 'detector' or 'box' (its landmarks)
    estimate: FaceEstimate | None = None  # its age and gender, where a model ran


def insert_faces(conn: psycopg.Connection, faces: Iterable[NewFace]) -> int:
    """Bulk-insert faces with binary COPY (the rows into ``face_detections``, their
    vectors into ``face_embeddings``); returns how many were written."""
    return len(insert_faces_ids(conn, faces))


def insert_faces_ids(conn: psycopg.Connection, faces: Iterable[NewFace]) -> list[int]:
    """:func:`insert_faces`, returning the new faces' ids in order."""
    batch = list(faces)
    if not batch:
        return []
    # Ids are drawn first so that both tables can be filled by COPY (which returns none).
    ids = [int(r[0]) for r in conn.execute(
        "SELECT nextval(pg_get_serial_sequence('face_detections', 'id')) "
        "FROM generate_series(1, %s)", (len(batch),))]
    # A scan's faces leave ``drawn`` out (NULL: found by the detector); only faces drawn
    # by hand (schema 25) write it.
    drawn = any(f.drawn is not None for f in batch)
    columns, types = (_COLUMNS, _TYPES) if drawn else (_COLUMNS[:-1], _TYPES[:-1])
    with conn.cursor() as cur:
        with cur.copy(
            f"COPY face_detections ({', '.join(columns)}) FROM STDIN WITH (FORMAT BINARY)"  # type: ignore[arg-type]
        ) as copy:
            copy.set_types(list(types))
            for face_id, f in zip(ids, batch, strict=True):
                row = (face_id, f.image_id, f.pack_id, *map(float, f.bbox), f.landmarks,
                       float(f.det_score), None if f.blur is None else float(f.blur))
                copy.write_row((*row, f.drawn) if drawn else row)
        with cur.copy("COPY face_embeddings (face_id, pack_id, embedding) FROM STDIN "
                      "WITH (FORMAT BINARY)") as copy:
            copy.set_types(["int8", "int4", "vector"])
            for face_id, f in zip(ids, batch, strict=True):
                copy.write_row((face_id, f.pack_id, np.asarray(f.embedding, np.float32)))
    return ids


def face_landmarks(conn: psycopg.Connection,
                   face_ids: Sequence[int]) -> dict[int, list[float] | None]:
    """Face id → its five detector landmarks (x, y pairs in original pixels)."""
    return {int(f): lm for f, lm in conn.execute(
        "SELECT id, landmarks FROM face_detections WHERE id = ANY(%s)", (list(face_ids),))}

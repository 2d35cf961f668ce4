"""Queries on ``clip_embeddings``: CLIP image embeddings per image and model."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import psycopg
from numpy.typing import NDArray


def store_clip_embeddings(
    conn: psycopg.Connection, rows: Iterable[tuple[int, str, NDArray[np.float32]]]
) -> int:
    """Insert or replace ``(image_id, model, embedding)`` rows; returns how many."""
    batch = [(image_id, model, np.asarray(vector, np.float32))
             for image_id, model, vector in rows]
    if batch:
        with conn.cursor() as cur:
            cur.executemany(
                """
                INSERT INTO clip_embeddings (image_id, model, embedding) VALUES (%s, %s, %s)
                ON CONFLICT (image_id, model)
                DO UPDATE SET embedding = EXCLUDED.embedding, created_at = now()
                """,
                batch,
            )
    return len(batch)

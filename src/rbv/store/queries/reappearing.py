"""Faces of a missing photo that show again in another photo of the library (a copy
under another name, re-encoded: JPEG → PNG), found by embedding before ``prune``
deletes the missing one, so its decisions can go to them."""

from __future__ import annotations

import psycopg
from psycopg import sql

from rbv.store.queries.packs import PackRow, index_expr

NEAREST = 8
"""How many nearest faces of each decided face are looked at for the copy."""


def lookalike_images(conn: psycopg.Connection, pack: PackRow, image_id: int) -> list[int]:
    """Present images (a path not missing) holding one of the :data:`NEAREST` nearest
    faces of a face of ``image_id`` that holds a decision, nearest first."""
    conn.execute("SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true)")
    query = sql.SQL(
        """
        SELECT m.image_id FROM face_detections q
        JOIN face_embeddings qe ON qe.face_id = q.id
        CROSS JOIN LATERAL (
            SELECT f.image_id, e.{half} <=> qe.{half} AS dist
            FROM face_embeddings e JOIN face_detections f ON f.id = e.face_id
            WHERE e.pack_id = {pack} AND f.image_id <> q.image_id
              AND EXISTS (SELECT 1 FROM image_paths p
                          WHERE p.image_id = f.image_id AND p.missing_since IS NULL)
            ORDER BY e.{half} <=> qe.{half} LIMIT {k}
        ) m
        WHERE q.image_id = %s AND q.pack_id = {pack}
          AND (q.person_id IS NOT NULL
               OR EXISTS (SELECT 1 FROM person_rejections r WHERE r.face_id = q.id)
               OR EXISTS (SELECT 1 FROM must_links l WHERE q.id IN (l.face_a, l.face_b))
               OR EXISTS (SELECT 1 FROM cannot_links l WHERE q.id IN (l.face_a, l.face_b))
               OR EXISTS (SELECT 1 FROM not_faces m WHERE m.face_id = q.id))
        GROUP BY m.image_id ORDER BY min(m.dist), m.image_id
        """
    ).format(half=index_expr(pack), pack=sql.Literal(pack.id), k=sql.Literal(NEAREST))
    return [int(r[0]) for r in conn.execute(query, (image_id,))]

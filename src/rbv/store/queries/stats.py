"""Read-only overview queries for ``rbv stats``."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row


def library_stats(conn: psycopg.Connection) -> dict[str, Any]:
    """Counts of images, paths, faces and persons (per pack) and the last runs."""
    cur = conn.cursor(row_factory=dict_row)
    images = cur.execute(
        """
        SELECT count(*) AS images,
               count(*) FILTER (WHERE status = 'ok') AS catalogued,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               (SELECT count(*) FROM image_paths) AS paths,
               (SELECT count(*) FROM image_paths
                  WHERE missing_since IS NOT NULL) AS missing_paths,
               (SELECT count(*) FROM images i WHERE EXISTS (
                   SELECT 1 FROM image_paths m WHERE m.image_id = i.id
                     AND m.missing_since IS NOT NULL) AND NOT EXISTS (
                   SELECT 1 FROM image_paths p WHERE p.image_id = i.id
                     AND p.missing_since IS NULL)) AS missing_images,
               coalesce(sum(size_bytes), 0)::bigint AS bytes
        FROM images
        """
    ).fetchone()
    packs = cur.execute(
        """
        SELECT p.name AS pack, p.embedding_dim,
               (SELECT count(*) FROM face_scans s WHERE s.pack_id = p.id
                  AND s.status = 'done') AS images_scanned,
               (SELECT count(*) FROM face_scans s WHERE s.pack_id = p.id
                  AND s.status = 'failed') AS scan_failures,
               (SELECT count(*) FROM face_detections f WHERE f.pack_id = p.id) AS faces,
               (SELECT count(*) FROM face_detections f WHERE f.pack_id = p.id
                  AND f.person_id IS NULL AND NOT EXISTS (SELECT 1 FROM not_faces m
                  WHERE m.face_id = f.id)) AS unassigned_faces,
               (SELECT count(*) FROM persons q WHERE q.pack_id = p.id
                  AND q.merged_into IS NULL) AS persons,
               (SELECT count(*) FROM persons q JOIN person_names n ON n.person_id = q.id
                  WHERE q.pack_id = p.id) AS named_persons
        FROM model_packs p ORDER BY p.id
        """
    ).fetchall()
    runs = cur.execute(
        """
        SELECT command, status, started_at, finished_at, counts
        FROM runs ORDER BY started_at DESC LIMIT 5
        """
    ).fetchall()
    return {"images": images, "packs": packs, "last_runs": runs}

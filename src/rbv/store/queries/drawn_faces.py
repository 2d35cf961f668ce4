"""What drawing a face by hand reads (``rbv faces add``): the photo a path shows, its
size, whether the pack scanned it, and the faces found in it already."""

from __future__ import annotations

import psycopg


def image_at(conn: psycopg.Connection, stored_path: bytes) -> int | None:
    """The image a catalogued (not missing) path shows, by its stored bytes."""
    row = conn.execute(
        "SELECT image_id FROM image_paths WHERE path_bytes = %s AND missing_since IS NULL",
        (stored_path,)).fetchone()
    return None if row is None else int(row[0])


def image_with_content(conn: psycopg.Connection, sha256: str) -> int | None:
    """The catalogued image of these bytes, when one of its paths is not missing."""
    row = conn.execute(
        "SELECT i.id FROM images i WHERE i.sha256 = %s AND EXISTS (SELECT 1 FROM "
        "image_paths p WHERE p.image_id = i.id AND p.missing_since IS NULL)",
        (sha256,)).fetchone()
    return None if row is None else int(row[0])


def readable_size(conn: psycopg.Connection, image_id: int) -> tuple[int, int] | None:
    """(width, height) of an image catalogued and readable (as shown, after its EXIF
    orientation); None when it is not."""
    row = conn.execute("SELECT width, height, status FROM images WHERE id = %s",
                       (image_id,)).fetchone()
    if row is None or row[2] != "ok" or not row[0] or not row[1]:
        return None
    return int(row[0]), int(row[1])


def scan_status(conn: psycopg.Connection, image_id: int, pack_id: int) -> str | None:
    """The pack's scan of the image: pending, running, done, failed (None: none)."""
    row = conn.execute("SELECT status FROM face_scans WHERE image_id = %s AND pack_id = %s",
                       (image_id, pack_id)).fetchone()
    return None if row is None else str(row[0])


def found_faces(conn: psycopg.Connection, image_id: int, pack_id: int
                ) -> list[tuple[int, float, float, float, float, bool]]:
    """(face, x1, y1, x2, y2, marked not a face) of each face of the image and pack."""
    return [(int(f), float(x1), float(y1), float(x2), float(y2), bool(m))
            for f, x1, y1, x2, y2, m in conn.execute(
                "SELECT f.id, f.x1, f.y1, f.x2, f.y2, m.face_id IS NOT NULL "
                "FROM face_detections f LEFT JOIN not_faces m ON m.face_id = f.id "
                "WHERE f.image_id = %s AND f.pack_id = %s ORDER BY f.id", (image_id, pack_id))]


def moved_by_hand(face: str) -> str:
    """SQL that is true for the face aliased ``face`` when its box is one the user moved
    (``rbv faces box``): it is drawn, and the edit log holds a move of it from a box the
    detector found. A face drawn by hand (``rbv faces add``) is not, moved or not; a move
    undone leaves the face undrawn."""
    return (f"({face}.drawn IS NOT NULL AND EXISTS (SELECT 1 FROM person_edit_rows r "
            f"WHERE r.table_name = 'face_boxes' AND r.row_key = jsonb_build_object('id', "
            f"{face}.id) AND r.before ->> 'drawn' IS NULL))")

"""A face's box moved by hand (``rbv faces box``): the face as it is, and the face
written again at the box the user set (schema 27 logs both for undo)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import psycopg

from rbv.store.queries.faces import NewFace


@dataclass(frozen=True)
class BoxedFace:
    """A face whose box is to move: its photo, pack, box (x1, y1, x2, y2), person and
    whether it is marked not a face."""

    id: int
    image_id: int
    pack_id: int
    box: tuple[float, float, float, float]
    person: uuid.UUID | None
    marked: bool


def face_to_box(conn: psycopg.Connection, face_id: int) -> BoxedFace | None:
    """The face, or None when there is no such face."""
    row = conn.execute(
        "SELECT f.id, f.image_id, f.pack_id, f.x1, f.y1, f.x2, f.y2, f.person_id, "
        "m.face_id IS NOT NULL FROM face_detections f "
        "LEFT JOIN not_faces m ON m.face_id = f.id WHERE f.id = %s", (face_id,)).fetchone()
    if row is None:
        return None
    return BoxedFace(int(row[0]), int(row[1]), int(row[2]),
                     (float(row[3]), float(row[4]), float(row[5]), float(row[6])), row[7],
                     bool(row[8]))


def set_face_box(conn: psycopg.Connection, face_id: int, face: NewFace) -> None:
    """Write ``face`` (drawn and embedded at its new box) over the face's box, landmarks,
    score, blur and embedding. Its quality and estimated age and gender, measured at the
    old box, are dropped (``rbv enrich`` measures them again)."""
    conn.execute(
        "UPDATE face_detections SET x1 = %s, y1 = %s, x2 = %s, y2 = %s, landmarks = %s, "
        "det_score = %s, blur = %s, drawn = %s WHERE id = %s",
        (*map(float, face.bbox), face.landmarks, float(face.det_score),
         None if face.blur is None else float(face.blur), face.drawn, face_id))
    conn.execute("UPDATE face_embeddings SET embedding = %s WHERE face_id = %s",
                 (np.asarray(face.embedding, np.float32), face_id))
    conn.execute("DELETE FROM face_quality WHERE face_id = %s", (face_id,))
    conn.execute("DELETE FROM face_attributes WHERE face_id = %s", (face_id,))

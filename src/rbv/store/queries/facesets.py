"""Queries on ``facesets`` / ``faceset_faces`` and what ``refine`` reads about faces."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from numpy.typing import NDArray

from rbv.store.queries.face_reads import load_faces
from rbv.store.queries.packs import PackRow
from rbv.store.queries.paths import path_from_bytes


@dataclass(frozen=True)
class FaceFacts:
    """Per-face columns refine and export need, row-aligned with ``ids``."""

    ids: NDArray[np.int64]
    image_ids: NDArray[np.int64]
    person_ids: list[uuid.UUID | None]
    embeddings: NDArray[np.float32]
    boxes: NDArray[np.float32]  # (n, 4)
    face_short: NDArray[np.float32]
    blur: NDArray[np.float32]  # NaN where not measured
    det_score: NDArray[np.float32]

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, rows: NDArray[np.int64]) -> FaceFacts:
        return FaceFacts(self.ids[rows], self.image_ids[rows],
                         [self.person_ids[i] for i in rows.tolist()], self.embeddings[rows],
                         self.boxes[rows], self.face_short[rows], self.blur[rows],
                         self.det_score[rows])


def load_face_facts(conn: psycopg.Connection, pack: PackRow, *,
                    face_ids: Sequence[int] | None = None,
                    skip_hidden: bool = True) -> FaceFacts:
    """Faces of the pack (or just ``face_ids``) with embeddings, boxes and scores;
    faces of hidden persons are left out unless ``skip_hidden`` is False."""
    faces = load_faces(conn, pack)
    rows = conn.execute(
        """
        SELECT f.id, f.x1, f.y1, f.x2, f.y2, f.face_short, f.blur, f.det_score,
               coalesce(p.hidden, false)
        FROM face_detections f LEFT JOIN persons p ON p.id = f.person_id
        WHERE f.pack_id = %s ORDER BY f.id
        """,
        (pack.id,),
    ).fetchall()
    by_id = {int(r[0]): r for r in rows}
    wanted = None if face_ids is None else {int(f) for f in face_ids}
    keep = [i for i, f in enumerate(faces.ids.tolist())
            if f in by_id and (wanted is None or f in wanted)
            and not (skip_hidden and by_id[f][8])]
    sel = np.array(keep, np.int64)
    meta = [by_id[int(f)] for f in faces.ids[sel].tolist()]
    return FaceFacts(
        ids=faces.ids[sel],
        image_ids=faces.image_ids[sel],
        person_ids=[faces.person_ids[i] for i in keep],
        embeddings=faces.embeddings[sel] if len(sel) else faces.embeddings[:0],
        boxes=np.array([r[1:5] for r in meta], np.float32).reshape(-1, 4),
        face_short=np.array([r[5] for r in meta], np.float32),
        blur=np.array([np.nan if r[6] is None else r[6] for r in meta], np.float32),
        det_score=np.array([r[7] for r in meta], np.float32),
    )


def known_facesets(conn: psycopg.Connection, pack_id: int
                   ) -> tuple[dict[int, set[int]], set[int]]:
    """(number → face ids of every faceset the pack ever had, numbers of the active
    ones). Retired facesets keep their last faces, so one that comes back (say after a
    run with stricter thresholds) gets its old number again."""
    out: dict[int, set[int]] = {}
    for number, face in conn.execute(
        "SELECT s.number, m.face_id FROM facesets s JOIN faceset_faces m ON m.faceset_id = s.id "
        "WHERE s.pack_id = %s", (pack_id,)):
        out.setdefault(int(number), set()).add(int(face))
    active = {int(r[0]) for r in conn.execute(
        "SELECT number FROM facesets WHERE pack_id = %s AND active", (pack_id,))}
    return out, active


def next_faceset_number(conn: psycopg.Connection, pack_id: int) -> int:
    """One past the highest number the pack ever used (numbers are never reused)."""
    row = conn.execute("SELECT coalesce(max(number), 0) FROM facesets WHERE pack_id = %s",
                       (pack_id,)).fetchone()
    return int(row[0]) + 1 if row else 1


def save_facesets(conn: psycopg.Connection, pack_id: int, run_id: int | None,
                  sets: Sequence[tuple[int, uuid.UUID | None, Sequence[int]]]) -> None:
    """Make exactly ``sets`` (number, person, face ids) the pack's active facesets;
    facesets not among them stay, inactive, so their numbers are never reused."""
    conn.execute("UPDATE facesets SET active = false, updated_at = now() "
                 "WHERE pack_id = %s AND active AND NOT number = ANY(%s)",
                 (pack_id, [n for n, _, _ in sets]))
    for number, person, faces in sets:
        row = conn.execute(
            """
            INSERT INTO facesets (pack_id, number, person_id, run_id) VALUES (%s, %s, %s, %s)
            ON CONFLICT (pack_id, number) DO UPDATE SET person_id = excluded.person_id,
                active = true, run_id = excluded.run_id, updated_at = now()
            RETURNING id
            """,
            (pack_id, number, person, run_id),
        ).fetchone()
        assert row is not None
        conn.execute("DELETE FROM faceset_faces WHERE faceset_id = %s", (row[0],))
        conn.execute("INSERT INTO faceset_faces (faceset_id, face_id) "
                     "SELECT %s, unnest(%s::bigint[])", (row[0], list(faces)))


def named_faceset_owners(conn: psycopg.Connection, pack_id: int) -> set[uuid.UUID]:
    """Named persons that own an active faceset of the pack."""
    return {r[0] for r in conn.execute(
        "SELECT DISTINCT s.person_id FROM facesets s JOIN person_names n "
        "ON n.person_id = s.person_id WHERE s.pack_id = %s AND s.active", (pack_id,))}


def add_facesets(conn: psycopg.Connection, pack_id: int, run_id: int | None,
                 sets: Sequence[tuple[int, uuid.UUID | None, Sequence[int]]],
                 discovered_from: str) -> None:
    """Add new active facesets (number, person, face ids) beside the pack's others, which
    stay as they are, marked as discovered in the folder ``discovered_from``."""
    for number, person, faces in sets:
        row = conn.execute(
            "INSERT INTO facesets (pack_id, number, person_id, run_id, discovered_from) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (pack_id, number, person, run_id, discovered_from)).fetchone()
        assert row is not None
        conn.execute("INSERT INTO faceset_faces (faceset_id, face_id) "
                     "SELECT %s, unnest(%s::bigint[])", (row[0], list(faces)))


def faceset_faces(conn: psycopg.Connection, pack_id: int, number: int) -> list[int] | None:
    """Face ids of faceset ``number`` (None: no such faceset)."""
    row = conn.execute("SELECT id FROM facesets WHERE pack_id = %s AND number = %s",
                       (pack_id, number)).fetchone()
    if row is None:
        return None
    return [int(r[0]) for r in conn.execute(
        "SELECT face_id FROM faceset_faces WHERE faceset_id = %s ORDER BY face_id", (row[0],))]


def rejected_pairs(conn: psycopg.Connection, pack_id: int) -> set[tuple[int, uuid.UUID]]:
    """(face id, person) of every "not this person" among the pack's faces."""
    return {(int(f), p) for f, p in conn.execute(
        "SELECT r.face_id, r.person_id FROM person_rejections r "
        "JOIN face_detections f ON f.id = r.face_id WHERE f.pack_id = %s", (pack_id,))}


def person_names(conn: psycopg.Connection, persons: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    return {p: n for p, n in conn.execute(
        "SELECT person_id, name FROM person_names WHERE person_id = ANY(%s)", (list(persons),))}


def first_paths(conn: psycopg.Connection, image_ids: Sequence[int]) -> dict[int, str]:
    """One path per image (the first discovered)."""
    return {int(i): path_from_bytes(p) for i, p in conn.execute(
        "SELECT DISTINCT ON (image_id) image_id, path_bytes FROM image_paths "
        "WHERE image_id = ANY(%s) ORDER BY image_id, id", (list(image_ids),))}


def face_boxes(conn: psycopg.Connection, face_ids: Sequence[int]
               ) -> list[tuple[int, int, tuple[float, float, float, float]]]:
    """(face id, image id, box) of these faces, in the order given."""
    rows = {int(r[0]): (int(r[1]), (r[2], r[3], r[4], r[5])) for r in conn.execute(
        "SELECT id, image_id, x1, y1, x2, y2 FROM face_detections WHERE id = ANY(%s)",
        (list(face_ids),))}
    return [(f, *rows[f]) for f in face_ids if f in rows]


def pack_of_faceset(conn: psycopg.Connection, number: int) -> list[int]:
    """Packs that have a faceset with this number."""
    return [int(r[0]) for r in conn.execute(
        "SELECT pack_id FROM facesets WHERE number = %s ORDER BY pack_id", (number,))]

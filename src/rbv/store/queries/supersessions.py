"""A photo whose pixels changed: its old content waits in ``image_supersessions`` (with
no path, its faces and decisions intact) until a model pack has found the new content's
faces; then each old face's person and decisions go to the new face that is the same
face, the pack's old faces are dropped, and what they still held is said."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import sql

from rbv.store.queries.dropped import decisions_on_faces
from rbv.store.queries.not_faces import carry_marks

_OTHER_LINKS = {"must_links": "cannot_links", "cannot_links": "must_links"}


@dataclass(frozen=True)
class ImageFaceRows:
    """One pack's faces of one image, as the matcher takes them."""

    ids: list[int]
    frame: tuple[int, int]  # width, height after EXIF orientation
    boxes: NDArray[np.float64]  # (n, 4)
    landmarks: NDArray[np.float64] | None  # (n, 5, 2); None unless every face has them
    embeddings: NDArray[np.float32]  # (n, d)


def supersede_image(conn: psycopg.Connection, old_id: int, new_id: int) -> bool:
    """The only path of image ``old_id`` now shows image ``new_id``. An old image with
    faces is kept for the carry (True); one without is deleted (False). Chains collapse:
    what waited for the old image now waits for the new one, and an image shown again
    (an edit undone) waits for nothing."""
    conn.execute("DELETE FROM image_supersessions WHERE old_image_id = %s", (new_id,))
    conn.execute("UPDATE image_supersessions SET new_image_id = %s WHERE new_image_id = %s",
                 (new_id, old_id))
    if _drop_if_faceless(conn, old_id):
        return False
    # No pack scans content that no path shows; what it scanned is kept for the carry.
    conn.execute("DELETE FROM face_scans WHERE image_id = %s AND status <> 'done'", (old_id,))
    conn.execute(
        """
        INSERT INTO image_supersessions (old_image_id, new_image_id) VALUES (%s, %s)
        ON CONFLICT (old_image_id) DO UPDATE SET new_image_id = EXCLUDED.new_image_id,
            since = now()
        """,
        (old_id, new_id))
    return True


def shown_again(conn: psycopg.Connection, image_id: int) -> None:
    """A path shows the image (again): it is a photo of the library, not old content."""
    conn.execute("DELETE FROM image_supersessions WHERE old_image_id = %s", (image_id,))


def carries_ready(conn: psycopg.Connection, pack_id: int) -> list[tuple[int, int]]:
    """(old image, new image) whose old content has faces of the pack and whose new
    content the pack has scanned. Old contents left with no face at all (a pack was
    deleted) are deleted first."""
    conn.execute(
        """
        DELETE FROM images i USING image_supersessions s
        WHERE i.id = s.old_image_id
          AND NOT EXISTS (SELECT 1 FROM face_detections f WHERE f.image_id = i.id)
        """)
    return [(int(o), int(n)) for o, n in conn.execute(
        """
        SELECT s.old_image_id, s.new_image_id FROM image_supersessions s
        JOIN face_scans n ON n.image_id = s.new_image_id AND n.pack_id = %s
                         AND n.status = 'done'
        WHERE EXISTS (SELECT 1 FROM face_detections f
                      WHERE f.image_id = s.old_image_id AND f.pack_id = %s)
        ORDER BY s.old_image_id
        """,
        (pack_id, pack_id))]


def claim_carry(conn: psycopg.Connection, old_id: int, new_id: int) -> bool:
    """Lock the supersession for this transaction; False when another worker holds it
    or it changed (the old content is shown again, or waits for other content now)."""
    return conn.execute(
        """
        SELECT 1 FROM image_supersessions s WHERE s.old_image_id = %s AND s.new_image_id = %s
          AND NOT EXISTS (SELECT 1 FROM image_paths p WHERE p.image_id = s.old_image_id)
        FOR UPDATE SKIP LOCKED
        """,
        (old_id, new_id)).fetchone() is not None


def image_faces(conn: psycopg.Connection, image_id: int, pack_id: int) -> ImageFaceRows:
    """The pack's faces of the image with their boxes, landmarks and embeddings."""
    size = conn.execute("SELECT width, height FROM images WHERE id = %s",
                        (image_id,)).fetchone()
    rows = conn.execute(
        """
        SELECT f.id, f.x1, f.y1, f.x2, f.y2, f.landmarks, e.embedding::real[]
        FROM face_detections f JOIN face_embeddings e ON e.face_id = f.id
        WHERE f.image_id = %s AND f.pack_id = %s ORDER BY f.id
        """,
        (image_id, pack_id)).fetchall()
    frame = (int(size[0] or 0), int(size[1] or 0)) if size else (0, 0)
    boxes = np.array([r[1:5] for r in rows], np.float64).reshape(-1, 4)
    marks = [r[5] for r in rows]
    landmarks = (np.array(marks, np.float64).reshape(-1, 5, 2)
                 if rows and all(m is not None and len(m) == 10 for m in marks) else None)
    embeddings = (np.array([r[6] for r in rows], np.float32) if rows
                  else np.zeros((0, 0), np.float32))
    return ImageFaceRows([int(r[0]) for r in rows], frame, boxes, landmarks, embeddings)


def carry_decisions(conn: psycopg.Connection, pack_id: int, old_id: int,
                    pairs: Sequence[tuple[int, int]]) -> list[tuple[int, str]]:
    """Give each new face of ``pairs`` (old face id, new face id) the old face's person
    (with how it was placed), rejections, same/different links and "not a face" mark,
    where that breaks no rule; then drop the pack's old faces and scan of image
    ``old_id`` (and the image with its last face). Returns (face id, what it held) of
    each dropped face that still held a decision: not the same face as a new one, or a
    decision the new face could not take. Call inside a transaction."""
    mapping = dict(pairs)
    for old_face, new_face in pairs:
        _carry_person(conn, old_face, new_face)
    _carry_rejections(conn, mapping)
    _carry_covers(conn, mapping)
    for table in _OTHER_LINKS:
        _carry_links(conn, table, mapping)
    carry_marks(conn, mapping)
    old_faces = [int(r[0]) for r in conn.execute(
        "SELECT id FROM face_detections WHERE image_id = %s AND pack_id = %s ORDER BY id",
        (old_id, pack_id))]
    left = decisions_on_faces(conn, old_faces, carried=mapping)
    conn.execute("DELETE FROM face_detections WHERE image_id = %s AND pack_id = %s",
                 (old_id, pack_id))
    conn.execute("DELETE FROM face_scans WHERE image_id = %s AND pack_id = %s",
                 (old_id, pack_id))
    _drop_if_faceless(conn, old_id)
    return left


def drawn_faces(conn: psycopg.Connection, image_id: int, pack_id: int) -> list[int]:
    """The pack's faces of the image that were drawn by hand."""
    return [int(r[0]) for r in conn.execute(
        "SELECT id FROM face_detections WHERE image_id = %s AND pack_id = %s "
        "AND drawn IS NOT NULL ORDER BY id", (image_id, pack_id))]


def _drop_if_faceless(conn: psycopg.Connection, image_id: int) -> bool:
    """Delete the (old) image if no face of any pack is left on it."""
    if conn.execute("SELECT 1 FROM face_detections WHERE image_id = %s LIMIT 1",
                    (image_id,)).fetchone():
        return False
    conn.execute("DELETE FROM images WHERE id = %s", (image_id,))
    return True


def _carry_person(conn: psycopg.Connection, old_face: int, new_face: int) -> None:
    """The old face's person goes to the new face unless the new face holds a decision
    of its own, another face of its photo is that person, or it was rejected from it."""
    row = conn.execute(
        """
        SELECT o.person_id, o.assigned_by, o.assigned_at, n.person_id, n.assigned_by,
               EXISTS (SELECT 1 FROM face_detections s WHERE s.image_id = n.image_id
                       AND s.id <> n.id AND s.person_id = o.person_id),
               EXISTS (SELECT 1 FROM person_rejections r WHERE r.face_id = n.id
                       AND r.person_id = o.person_id)
        FROM face_detections o, face_detections n WHERE o.id = %s AND n.id = %s
        """,
        (old_face, new_face)).fetchone()
    if row is None or row[0] is None:
        return
    person, how, when, holds, held_how, photo_has_it, rejected = row
    stronger = how == "manual" and held_how != "manual"
    if holds is not None and holds != person and not stronger:
        return  # the new face's own decision stands; the old one is said
    if holds != person and (photo_has_it or rejected):
        return
    if holds != person or stronger:
        conn.execute("UPDATE face_detections SET person_id = %s, assigned_by = %s, "
                     "assigned_at = %s WHERE id = %s", (person, how, when, new_face))
    conn.execute("UPDATE face_detections SET person_id = NULL WHERE id = %s", (old_face,))


def _carry_rejections(conn: psycopg.Connection, mapping: Mapping[int, int]) -> None:
    rows = conn.execute(
        "SELECT r.face_id, r.person_id, r.created_at FROM person_rejections r "
        "WHERE r.face_id = ANY(%s)", (list(mapping),)).fetchall()
    for old_face, person, created in rows:
        new_face = mapping[int(old_face)]
        now_in = conn.execute("SELECT person_id FROM face_detections WHERE id = %s",
                              (new_face,)).fetchone()
        if now_in is not None and now_in[0] == person:
            continue  # the new face is in that person by its own decision: said
        conn.execute("INSERT INTO person_rejections (face_id, person_id, created_at) "
                     "VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                     (new_face, person, created))
        conn.execute("DELETE FROM person_rejections WHERE face_id = %s AND person_id = %s",
                     (old_face, person))


def _carry_covers(conn: psycopg.Connection, mapping: Mapping[int, int]) -> None:
    """A person's cover (`rbv persons cover`) goes to the same face in the new content
    when that face took the person; otherwise it stays on the old face, which is said
    as it is dropped (:func:`rbv.store.queries.dropped.decisions_on_faces`)."""
    if mapping:
        conn.execute(
            "UPDATE persons p SET cover_face_id = m.new FROM unnest(%s::bigint[], "
            "%s::bigint[]) AS m (old, new) WHERE p.cover_face_id = m.old AND EXISTS "
            "(SELECT 1 FROM face_detections n WHERE n.id = m.new AND n.person_id = p.id)",
            (list(mapping), list(mapping.values())))


def _carry_links(conn: psycopg.Connection, table: str, mapping: Mapping[int, int]) -> None:
    """Move ``table``'s links (must_links or cannot_links) from old faces to new ones;
    a link that would join a face with itself or contradict the other kind stays on
    the old face (and is said when it is dropped). So does a `different` link of a
    rejection that stays behind (the new face is in that person now, with the link's
    other face): a rejection and its links go together or not at all, and links left
    without their rejection would pull the person apart."""
    name, other = sql.Identifier(table), sql.Identifier(_OTHER_LINKS[table])
    rows = conn.execute(
        sql.SQL("SELECT face_a, face_b, created_at FROM {} "
                "WHERE face_a = ANY(%s) OR face_b = ANY(%s)").format(name),
        (list(mapping), list(mapping))).fetchall()
    for a, b, created in rows:
        lo, hi = sorted((mapping.get(int(a), int(a)), mapping.get(int(b), int(b))))
        if lo == hi or conn.execute(
                sql.SQL("SELECT 1 FROM {} WHERE face_a = %s AND face_b = %s").format(other),
                (lo, hi)).fetchone():
            continue
        if table == "cannot_links" and _rejection_stays(conn, int(a), int(b), mapping):
            continue
        conn.execute(sql.SQL("INSERT INTO {} (face_a, face_b, created_at) VALUES (%s, %s, %s) "
                             "ON CONFLICT DO NOTHING").format(name), (lo, hi, created))
        conn.execute(sql.SQL("DELETE FROM {} WHERE face_a = %s AND face_b = %s").format(name),
                     (a, b))


def _rejection_stays(conn: psycopg.Connection, a: int, b: int,
                     mapping: Mapping[int, int]) -> bool:
    """Whether the `different` link (a, b) belongs to a rejection that stays on its old
    face: one of the two was rejected from the person both new faces are in now."""
    new_a, new_b = mapping.get(a, a), mapping.get(b, b)
    return conn.execute(
        """
        SELECT 1 FROM face_detections x JOIN face_detections y ON y.person_id = x.person_id
        JOIN person_rejections r ON r.person_id = x.person_id AND r.face_id IN (%s, %s)
        WHERE x.id = %s AND y.id = %s
        """,
        (a, b, new_a, new_b)).fetchone() is not None


def record_losses(conn: psycopg.Connection, pack_id: int, lines: Sequence[str]) -> None:
    """Keep what a carry could not keep, in the carry's own transaction, until a run has
    said it (a killed run's lines are said by the next)."""
    with conn.cursor() as cur:
        cur.executemany("INSERT INTO carry_losses (pack_id, line) VALUES (%s, %s)",
                        [(pack_id, line) for line in lines])


def unsaid_losses(conn: psycopg.Connection, pack_id: int) -> list[tuple[int, str]]:
    """(id, line) of each loss of the pack's carries not yet said, oldest first."""
    return [(int(i), str(line)) for i, line in conn.execute(
        "SELECT id, line FROM carry_losses WHERE pack_id = %s ORDER BY id", (pack_id,))]


def forget_losses(conn: psycopg.Connection, ids: Sequence[int]) -> None:
    """These losses were said."""
    conn.execute("DELETE FROM carry_losses WHERE id = ANY(%s)", (list(ids),))

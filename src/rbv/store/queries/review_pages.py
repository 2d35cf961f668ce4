"""What the web review (``rbv serve``) reads: a page of the persons grid, names for
type-ahead, the faces of one photo, and one face's box."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import psycopg

from rbv.store.queries.drawn_faces import moved_by_hand
from rbv.store.queries.person_covers import cover_sql


class PeopleFilter(StrEnum):
    all = "all"
    named = "named"
    unnamed = "unnamed"
    hidden = "hidden"


@dataclass(frozen=True)
class PersonTile:
    """A person as the grid shows it: the cover is the face chosen for it (`rbv persons
    cover`) while it is one of its faces, else its best detected face."""

    id: uuid.UUID
    name: str | None
    faces: int
    photos: int
    hidden: bool
    cover: int | None  # face id


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def people_page(conn: psycopg.Connection, *, search: str = "",
                which: PeopleFilter = PeopleFilter.all, offset: int = 0,
                limit: int = 60) -> tuple[list[PersonTile], int]:
    """One page of persons with faces (named ones and those with a birthday even
    without), named and largest first (the persons a user has named are on the first
    page), and how many match in all. Hidden persons show only under ``hidden``."""
    params = {"q": f"%{_escape_like(search.strip())}%" if search.strip() else None,
              "hidden": which is PeopleFilter.hidden,
              "named": {PeopleFilter.named: True, PeopleFilter.unnamed: False}.get(which),
              "offset": offset, "limit": limit}
    # Faces are counted per person once (one pass over the assigned faces, no join);
    # photos and the cover only for the page's rows.
    rows = conn.execute(
        """
        WITH counts AS (
            SELECT person_id, count(*) AS faces FROM face_detections
            WHERE person_id IS NOT NULL GROUP BY person_id
        ), matching AS (
            SELECT p.id, n.name, p.hidden, coalesce(c.faces, 0) AS faces,
                   count(*) OVER () AS total
            FROM persons p
            LEFT JOIN counts c ON c.person_id = p.id
            LEFT JOIN person_names n ON n.person_id = p.id
            WHERE p.merged_into IS NULL AND p.hidden = %(hidden)s
              AND (c.faces > 0 OR n.name IS NOT NULL OR p.born IS NOT NULL)
              AND (%(q)s::text IS NULL OR n.name ILIKE %(q)s)
              AND (%(named)s::boolean IS NULL OR (n.name IS NOT NULL) = %(named)s)
            ORDER BY n.name IS NULL, coalesce(c.faces, 0) DESC, n.name, p.id
            OFFSET %(offset)s LIMIT %(limit)s
        )
        SELECT m.id, m.name, m.faces,
               (SELECT count(DISTINCT f.image_id) FROM face_detections f
                WHERE f.person_id = m.id),
               m.hidden,
               """ + cover_sql("p") + """,
               m.total
        FROM matching m JOIN persons p ON p.id = m.id
        ORDER BY m.name IS NULL, m.faces DESC, m.name, m.id
        """, params).fetchall()
    tiles = [PersonTile(r[0], r[1], int(r[2]), int(r[3]), bool(r[4]),
                        None if r[5] is None else int(r[5])) for r in rows]
    if rows:
        return tiles, int(rows[0][6])
    if offset == 0:
        return [], 0
    _, total = people_page(conn, search=search, which=which, offset=0, limit=1)
    return [], total


def names_starting(conn: psycopg.Connection, text: str, limit: int = 10
                   ) -> list[tuple[uuid.UUID, str]]:
    """Named, unmerged persons whose name contains ``text`` (those starting with it
    first), for type-ahead."""
    pattern = _escape_like(text.strip())
    return [(r[0], str(r[1])) for r in conn.execute(
        """
        SELECT p.id, n.name FROM person_names n JOIN persons p ON p.id = n.person_id
        WHERE p.merged_into IS NULL AND n.name ILIKE %(any)s
        ORDER BY n.name NOT ILIKE %(start)s, lower(n.name), p.id LIMIT %(limit)s
        """, {"any": f"%{pattern}%", "start": f"{pattern}%", "limit": limit})]


@dataclass(frozen=True)
class PhotoFace:
    id: int
    bbox: tuple[float, float, float, float]
    person: uuid.UUID | None
    name: str | None
    not_face: bool = False  # marked not a face (`rbv faces not-a-face`)
    drawn: str | None = None  # a face drawn by hand: 'detector' or 'box'
    moved: bool = False  # drawn because the user moved the detector's box (faces box)


@dataclass(frozen=True)
class Photo:
    id: int
    width: int | None
    height: int | None
    path: str | None
    faces: list[PhotoFace]


def photo_of(conn: psycopg.Connection, image_id: int) -> Photo | None:
    """A catalogued photo with every face on it (of every pack), or None."""
    row = conn.execute(
        "SELECT i.id, i.width, i.height, (SELECT p.path FROM image_paths p "
        "WHERE p.image_id = i.id ORDER BY p.id LIMIT 1) FROM images i WHERE i.id = %s",
        (image_id,)).fetchone()
    if row is None:
        return None
    faces = [PhotoFace(int(r[0]), (r[1], r[2], r[3], r[4]), r[5], r[6], bool(r[7]), r[8],
                       bool(r[9])) for r in conn.execute(
        """
        SELECT f.id, f.x1, f.y1, f.x2, f.y2, f.person_id, n.name,
               EXISTS (SELECT 1 FROM not_faces m WHERE m.face_id = f.id), f.drawn,
               """ + moved_by_hand("f") + """
        FROM face_detections f LEFT JOIN person_names n ON n.person_id = f.person_id
        WHERE f.image_id = %s ORDER BY f.x1, f.id
        """, (image_id,))]
    return Photo(int(row[0]), row[1], row[2], row[3], faces)


def library_stamp(conn: psycopg.Connection) -> tuple[int, int]:
    """Changes whenever persons change: the newest edit and the newest finished run
    (a ``rbv cluster`` run from cron changes persons without an edit)."""
    row = conn.execute(
        "SELECT coalesce((SELECT max(id) FROM person_edits), 0), "
        "coalesce((SELECT max(id) FROM runs WHERE finished_at IS NOT NULL), 0)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def changes_since(conn: psycopg.Connection, stamp: tuple[int, int], now: tuple[int, int]
                  ) -> tuple[list[int], int]:
    """What changed persons between two :func:`library_stamp` readings: the ids of the
    edits made between them, in order, and how many runs finished between them that are
    no edit's own (an edit is recorded as a run too)."""
    row = conn.execute(
        "SELECT (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM person_edits "
        "        WHERE id > %(e0)s AND id <= %(e1)s), "
        "       (SELECT count(*) FROM runs r WHERE r.id > %(r0)s AND r.id <= %(r1)s "
        "        AND r.finished_at IS NOT NULL "
        "        AND NOT EXISTS (SELECT 1 FROM person_edits e WHERE e.run_id = r.id))",
        {"e0": stamp[0], "e1": now[0], "r0": stamp[1], "r1": now[1]}).fetchone()
    assert row is not None
    return [int(e) for e in row[0]], int(row[1])


def newest_run(conn: psycopg.Connection, command: str) -> tuple[int, datetime] | None:
    """The id and end of the newest finished run of ``command`` (e.g. ``cluster``)."""
    row = conn.execute(
        "SELECT id, finished_at FROM runs WHERE command = %s AND finished_at IS NOT NULL "
        "AND status IN ('ok', 'partial') ORDER BY id DESC LIMIT 1", (command,)).fetchone()
    return None if row is None else (int(row[0]), row[1])


def live_persons(conn: psycopg.Connection, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Which of ``ids`` are still persons a suggestion may name: not merged, not
    hidden, with faces."""
    return {r[0] for r in conn.execute(
        "SELECT p.id FROM persons p WHERE p.id = ANY(%s) AND p.merged_into IS NULL "
        "AND NOT p.hidden AND EXISTS (SELECT 1 FROM face_detections f "
        "WHERE f.person_id = p.id)", (ids,))}


def image_digest(conn: psycopg.Connection, image_id: int) -> str | None:
    """The sha256 of a catalogued photo's content (None: no such photo)."""
    row = conn.execute("SELECT sha256 FROM images WHERE id = %s", (image_id,)).fetchone()
    return None if row is None else str(row[0])

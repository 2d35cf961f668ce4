"""What a page of ``rbv serve`` shows of persons and faces, read now, and the newest
logged edit of a row: an answer made on a page is checked against these (see
:mod:`rbv.jobs.persons.shown`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from rbv.store.queries.person_covers import CHOSEN_COVER


@dataclass(frozen=True)
class PersonNow:
    """A person as its page shows it: name (None: unnamed), hidden, birthday, the cover
    face chosen while it is one of its faces (None: its automatic face), and the person
    it was merged into (None: it stands on its own)."""

    name: str | None
    hidden: bool
    born: date | None
    cover: int | None
    merged_into: uuid.UUID | None


@dataclass(frozen=True)
class FaceNow:
    """A face as a page shows it: its person (None: none) and who placed it there
    (``assigned_by``: 'manual' for a hand placement, None for none); ``at``: when it
    was placed so (not shown: said in a refusal); ``box``: x1, y1, x2, y2 in pixels of
    the photo."""

    person: uuid.UUID | None
    by: str | None
    at: datetime | None = None
    box: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class LastEdit:
    """The newest logged edit that changed a row, for a refusal that says when."""

    id: int
    at: datetime
    command: str


def persons_now(conn: psycopg.Connection, persons: Sequence[uuid.UUID]
                ) -> dict[uuid.UUID, PersonNow]:
    """Each of ``persons`` that exists, as its page shows it now."""
    return {r[0]: PersonNow(r[1], bool(r[2]), r[3], None if r[4] is None else int(r[4]), r[5])
            for r in conn.execute(
                "SELECT p.id, n.name, p.hidden, p.born, " + CHOSEN_COVER.format(p="p")
                + ", p.merged_into FROM persons p "
                "LEFT JOIN person_names n ON n.person_id = p.id WHERE p.id = ANY(%s)",
                (list(persons),))}


def faces_now(conn: psycopg.Connection, face_ids: Sequence[int]) -> dict[int, FaceNow]:
    """Each of ``face_ids`` that exists, with its person and who placed it."""
    return {int(r[0]): FaceNow(r[1], r[2], r[3], (r[4], r[5], r[6], r[7])) for r in conn.execute(
        "SELECT id, person_id, assigned_by, assigned_at, x1, y1, x2, y2 FROM face_detections "
        "WHERE id = ANY(%s::bigint[])",
        ([int(f) for f in face_ids],))}


def last_edit(conn: psycopg.Connection, table: str, key: dict[str, Any]) -> LastEdit | None:
    """The newest logged edit (an undo included) that changed the row of ``table`` with
    ``key`` (as the edit log keys it); None when no edit did."""
    row = conn.execute(
        "SELECT e.id, e.created_at, e.command FROM person_edit_rows r "
        "JOIN person_edits e ON e.id = r.edit_id "
        "WHERE r.table_name = %s AND r.row_key = %s ORDER BY r.seq DESC LIMIT 1",
        (table, Jsonb(key))).fetchone()
    return None if row is None else LastEdit(int(row[0]), row[1], str(row[2]))

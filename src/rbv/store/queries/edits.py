"""The persons edit log (``person_edits``, ``person_edit_rows``): record, list, undo.

An edit is opened with :func:`begin_edit` inside its transaction; from then on the
triggers of migration 0011 record every row it inserts, updates or deletes in the
tables below, before and after, as JSON. :func:`revert_edit` writes the "before"
images back, newest change first, so the rows are restored exactly (timestamps too).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

LOGGED_TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...] | None]] = {
    "persons": (("id",), None),
    "person_names": (("person_id",), None),
    "person_rejections": (("face_id", "person_id"), None),
    "must_links": (("face_a", "face_b"), None),
    "cannot_links": (("face_a", "face_b"), None),
    "face_detections": (("id",), ("person_id", "assigned_by", "assigned_at")),
    "not_faces": (("face_id",), None),
    # a box moved by hand (schema 27): the face row's box columns, through a view
    "face_boxes": (("id",), ("x1", "y1", "x2", "y2", "landmarks", "det_score", "blur",
                             "drawn")),
    "face_embeddings": (("face_id",), None),
}
"""Table (or view) → (key columns, the only other columns logged; None: all of them)."""


@dataclass(frozen=True)
class EditRow:
    """One logged edit, as ``rbv persons history`` lists it."""

    id: int
    command: str
    summary: str
    created_at: datetime
    rows: int
    undoes: list[int]
    undone_by: int | None
    run_id: int | None
    pack_id: int | None

    def as_dict(self) -> dict[str, object]:
        return {"id": self.id, "command": self.command, "summary": self.summary,
                "at": self.created_at.isoformat(), "rows": self.rows, "undoes": self.undoes,
                "undone_by": self.undone_by, "run": self.run_id}


@dataclass(frozen=True)
class Conflict:
    """A row an edit changed that is no longer as the edit left it."""

    table: str
    key: dict[str, Any]
    later_edit: int | None  # the logged edit that changed it since, if one did
    gone: bool = False  # ``key`` is a person the rows pointed to, deleted since


def begin_edit(conn: psycopg.Connection, command: str, pack_id: int | None,
               run_id: int | None = None) -> int:
    """Open an edit in ``conn``'s transaction: what the transaction changes from now on
    is logged under the id returned."""
    row = conn.execute(
        "INSERT INTO person_edits (command, pack_id, run_id) VALUES (%s, %s, %s) RETURNING id",
        (command, pack_id, run_id)).fetchone()
    assert row is not None
    edit_id = int(row[0])
    # Timestamps are logged as text: one time zone, so a row compares equal to its image.
    conn.execute("SELECT set_config('rbv.edit_id', %s, true), "
                 "set_config('TimeZone', 'UTC', true)", (str(edit_id),))
    return edit_id


def pause_logging(conn: psycopg.Connection) -> None:
    """Stop logging the changes of ``conn``'s transaction as the open edit's until the
    savepoint this is called in ends (the setting is transaction-local, so rolling back
    to that savepoint restores it): for running another command inside an edit as a
    preview, as that command runs on its own."""
    conn.execute("SELECT set_config('rbv.edit_id', '', true)")


def end_edit(conn: psycopg.Connection, edit_id: int, summary: str) -> bool:
    """Give the edit its summary and stop logging in this transaction. An edit that
    changed nothing is dropped from the log (False)."""
    conn.execute("SELECT set_config('rbv.edit_id', '', true)")
    changed = conn.execute("SELECT EXISTS (SELECT 1 FROM person_edit_rows WHERE edit_id = %s)",
                           (edit_id,)).fetchone()
    if not changed or not changed[0]:
        conn.execute("DELETE FROM person_edits WHERE id = %s", (edit_id,))
        return False
    conn.execute("UPDATE person_edits SET summary = %s WHERE id = %s", (summary, edit_id))
    return True


_EDIT_COLUMNS = """
    SELECT e.id, e.command, e.summary, e.created_at,
           (SELECT count(*) FROM person_edit_rows r WHERE r.edit_id = e.id),
           coalesce(e.undoes, '{}'), e.undone_by, e.run_id, e.pack_id
    FROM person_edits e
"""


def _edit_rows(rows: list[tuple[Any, ...]]) -> list[EditRow]:
    return [EditRow(int(r[0]), r[1], r[2], r[3], int(r[4]), [int(u) for u in r[5]], r[6],
                    r[7], r[8]) for r in rows]


def list_edits(conn: psycopg.Connection, limit: int = 50) -> list[EditRow]:
    """The latest edits, newest first (all of them when ``limit`` is 0)."""
    return _edit_rows(conn.execute(_EDIT_COLUMNS + " ORDER BY e.id DESC LIMIT %s",
                                   (limit or None,)).fetchall())


def undoable_edits(conn: psycopg.Connection, count: int, *,
                   undo: int | None = None) -> list[EditRow]:
    """The last ``count`` edits still in effect (not undone, not undos), newest first.
    Given the ``undo`` edit being made, those before it, locked until it ends."""
    return _edit_rows(conn.execute(
        _EDIT_COLUMNS + " WHERE e.undone_by IS NULL AND e.undoes IS NULL "
        "AND e.id < coalesce(%s, 'Infinity'::numeric) ORDER BY e.id DESC LIMIT %s"
        + (" FOR UPDATE OF e" if undo is not None else ""), (undo, count)).fetchall())


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    """The table's stored columns (generated ones left out), in order."""
    return [str(r[0]) for r in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 "
        "AND NOT attisdropped AND attgenerated = '' ORDER BY attnum", (table,))]


def conflicts(conn: psycopg.Connection, edit_id: int) -> list[Conflict]:
    """Rows the edit changed that were changed again since (by a later edit, a
    clustering run or SQL): undoing it would overwrite that change."""
    found: list[Conflict] = []
    for table, (keys, kept) in LOGGED_TABLES.items():
        # The row as logged: all of it, or its key and kept columns (as the trigger).
        now = (sql.SQL("to_jsonb(t)") if kept is None else sql.SQL(
            "jsonb_build_object({})").format(sql.SQL(", ").join(
                sql.SQL("{}, t.{}").format(sql.Literal(c), sql.Identifier(c))
                for c in (*keys, *kept))))
        query = sql.SQL(
            """
            SELECT r.row_key, r.seq
            FROM (SELECT DISTINCT ON (row_key) row_key, after, seq FROM person_edit_rows
                  WHERE edit_id = %s AND table_name = %s ORDER BY row_key, seq DESC) r
            CROSS JOIN LATERAL jsonb_populate_record(NULL::{t}, r.row_key) k
            LEFT JOIN {t} t ON {match}
            WHERE r.after IS DISTINCT FROM (CASE WHEN t.{key} IS NULL THEN NULL ELSE {now} END)
            ORDER BY r.seq LIMIT 100
            """).format(t=sql.Identifier(table), match=_key_match(keys), now=now,
                        key=sql.Identifier(keys[0]))
        for key, seq in conn.execute(query, (edit_id, table)):
            found.append(Conflict(table, key, _later_edit(conn, table, key, seq)))
    # Faces placed since in a person the edit created: undoing deletes that person.
    for (face,) in conn.execute(
            """
            SELECT f.id FROM person_edit_rows r
            JOIN face_detections f ON f.person_id = (r.row_key ->> 'id')::uuid
            WHERE r.edit_id = %s AND r.table_name = 'persons' AND r.before IS NULL
              AND NOT EXISTS (SELECT 1 FROM person_edit_rows d
                              WHERE d.edit_id = r.edit_id AND d.table_name = 'face_detections'
                                AND d.row_key = jsonb_build_object('id', f.id))
            ORDER BY f.id LIMIT 100
            """, (edit_id,)):
        found.append(Conflict("face_detections", {"id": int(face)}, None))
    # Marks the edit took back, on faces given a person since (a clustering run places a
    # face again once it is one): putting the mark back would leave a marked face in it.
    for (face,) in conn.execute(
            """
            SELECT f.id FROM person_edit_rows r
            JOIN face_detections f ON f.id = (r.row_key ->> 'face_id')::bigint
            WHERE r.edit_id = %s AND r.table_name = 'not_faces' AND r.before IS NOT NULL
              AND f.person_id IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM person_edit_rows d
                              WHERE d.edit_id = r.edit_id AND d.table_name = 'face_detections'
                                AND d.row_key = jsonb_build_object('id', f.id))
            ORDER BY f.id LIMIT 100
            """, (edit_id,)):
        found.append(Conflict("face_detections", {"id": int(face)}, None))
    # Rows pointing to a person deleted since (``rbv cluster`` removes persons left
    # without faces) cannot be written back.
    for (person,) in conn.execute(
            """
            SELECT DISTINCT (r.before ->> col)::uuid
            FROM person_edit_rows r
            CROSS JOIN LATERAL (VALUES ('person_id'), ('merged_into')) c (col)
            WHERE r.edit_id = %s AND r.before ->> col IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM persons p WHERE p.id = (r.before ->> col)::uuid)
              AND NOT EXISTS (SELECT 1 FROM person_edit_rows d
                              WHERE d.edit_id = r.edit_id AND d.table_name = 'persons'
                                AND d.row_key ->> 'id' = r.before ->> col)
            """, (edit_id,)):
        found.append(Conflict("persons", {"id": str(person)}, None, gone=True))
    return found


def _later_edit(conn: psycopg.Connection, table: str, key: dict[str, Any],
                seq: int) -> int | None:
    row = conn.execute(
        "SELECT r.edit_id FROM person_edit_rows r JOIN person_edits e ON e.id = r.edit_id "
        "WHERE r.table_name = %s AND r.row_key = %s AND r.seq > %s AND e.undoes IS NULL "
        # An edit undone since put the row back as it found it: it is not to blame.
        "AND e.undone_by IS NULL "
        "ORDER BY r.seq DESC LIMIT 1", (table, Jsonb(key), seq)).fetchone()
    return int(row[0]) if row else None


def embeddings_changed(conn: psycopg.Connection, since: int) -> tuple[list[int], int]:
    """The faces an edit (a box moved by hand, or its undo) embedded again after the
    edit log's row ``since``, and the log's last such row (``since`` when none)."""
    rows = conn.execute(
        "SELECT (row_key ->> 'face_id')::bigint, seq FROM person_edit_rows "
        "WHERE table_name = 'face_embeddings' AND seq > %s", (since,)).fetchall()
    return sorted({int(f) for f, _ in rows}), max([since, *(int(s) for _, s in rows)])


def revert_edit(conn: psycopg.Connection, edit_id: int) -> int:
    """Write back the rows as they were before the edit; returns rows restored.

    Each row the edit touched goes back to its image before the edit's first change to
    it. Tables are written parents first (persons before the rows that point to them)
    and rows the edit inserted are deleted children first, so foreign keys hold at
    every step whatever order the edit (or its cascades) changed them in. The images
    never leave the server."""
    order = list(LOGGED_TABLES)  # parents first
    restored = sum(_write_back(conn, edit_id, table) for table in order)
    return restored + sum(_delete_inserted(conn, edit_id, table) for table in reversed(order))


def _key_match(keys: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(" AND ").join(
        sql.SQL("t.{c} = k.{c}").format(c=sql.Identifier(c)) for c in keys)


def _oldest(edit_id: int, table: str) -> sql.Composable:
    """Each row's image before the edit first changed it, as ``r (row_key, before)``."""
    return sql.SQL(
        "(SELECT DISTINCT ON (row_key) row_key, before FROM person_edit_rows "
        "WHERE edit_id = {e} AND table_name = {t} ORDER BY row_key, seq) r"
    ).format(e=sql.Literal(edit_id), t=sql.Literal(table))


def _delete_inserted(conn: psycopg.Connection, edit_id: int, table: str) -> int:
    keys, _ = LOGGED_TABLES[table]
    return conn.execute(sql.SQL(
        "DELETE FROM {t} t USING {oldest} "
        "CROSS JOIN LATERAL jsonb_populate_record(NULL::{t}, r.row_key) k "
        "WHERE r.before IS NULL AND {m}"
    ).format(t=sql.Identifier(table), oldest=_oldest(edit_id, table),
             m=_key_match(keys))).rowcount


def _write_back(conn: psycopg.Connection, edit_id: int, table: str) -> int:
    keys, kept = LOGGED_TABLES[table]
    t = sql.Identifier(table)
    oldest = _oldest(edit_id, table)
    if kept is not None:
        return conn.execute(sql.SQL(
            "UPDATE {t} t SET ({cols}) = ROW({vals}) FROM {oldest} "
            "CROSS JOIN LATERAL jsonb_populate_record(NULL::{t}, r.before) k "
            "WHERE r.before IS NOT NULL AND {m}"
        ).format(t=t, oldest=oldest, m=_key_match(keys),
                 cols=sql.SQL(", ").join(map(sql.Identifier, kept)),
                 vals=sql.SQL(", ").join(sql.SQL("k.{}").format(sql.Identifier(c))
                                         for c in kept))).rowcount
    columns = _columns(conn, table)
    rest = [c for c in columns if c not in keys]
    return conn.execute(sql.SQL(
        "INSERT INTO {t} ({cols}) SELECT {k_cols} FROM {oldest} "
        "CROSS JOIN LATERAL jsonb_populate_record(NULL::{t}, r.before) k "
        "WHERE r.before IS NOT NULL "
        "ON CONFLICT ({keys}) DO UPDATE SET ({rest}) = ROW({excluded})"
    ).format(t=t, oldest=oldest, cols=sql.SQL(", ").join(map(sql.Identifier, columns)),
             k_cols=sql.SQL(", ").join(sql.SQL("k.{}").format(sql.Identifier(c))
                                       for c in columns),
             keys=sql.SQL(", ").join(map(sql.Identifier, keys)),
             rest=sql.SQL(", ").join(map(sql.Identifier, rest)),
             excluded=sql.SQL(", ").join(sql.SQL("excluded.{}").format(sql.Identifier(c))
                                         for c in rest))).rowcount


def mark_undone(conn: psycopg.Connection, edit_ids: list[int], undo_id: int) -> None:
    """Record that ``undo_id`` reverted ``edit_ids``."""
    conn.execute("UPDATE person_edits SET undone_by = %s WHERE id = ANY(%s)",
                 (undo_id, edit_ids))
    conn.execute("UPDATE person_edits SET undoes = %s WHERE id = %s", (edit_ids, undo_id))

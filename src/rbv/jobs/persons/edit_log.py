"""The edit log of manual person and face edits: how an edit is logged, ``rbv persons
history`` and ``rbv persons undo``.

Every edit is one transaction under the lock of its pack, recorded as a run, whose row
changes (persons, names, assignments, rejections, face links) are logged by the
database (migration 0011). Undo writes back the rows as they were before the edit,
newest edit first. It is refused, changing nothing, when a row the edit changed is no
longer as the edit left it (a later ``rbv cluster`` run placed a face it had taken out,
SQL changed it, or a person it pointed to is gone): undoing would silently throw that
later change away. An undo is logged too (it shows in the history) but is not itself
undone by ``undo``: a second ``undo`` reverts the edit before; redo an edit by running
it again. An undo of a given edit (``rbv serve``'s Undo) checks that it is still the
newest in effect under the locks the undo holds, so an edit made meanwhile elsewhere is
never undone in its place.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg

from rbv.errors import ConfigError, EditConflict
from rbv.jobs.persons.shown import Shown, refuse_changed
from rbv.jobs.recording import recorded_run
from rbv.store.queries import edits
from rbv.store.queries.edits import EditRow as EditRow  # what history() lists
from rbv.store.queries.pack_lookup import pack_row
from rbv.store.queries.person_lookup import SHORT_ID
from rbv.store.server.connection import Database
from rbv.store.server.locks import person_lock
from rbv.words import counted


@dataclass
class Edit:
    """An edit being made: its log id and what it did, in words (set by the edit).
    ``logged_id`` is set as it ends: its id when it is in the log, None when it was not
    kept (a dry run, or it changed nothing). Callers take it from here, never as the
    newest id in the log, which may be another's edit made meanwhile."""

    id: int
    summary: str = ""
    logged_id: int | None = None
    counts: dict[str, Any] = field(default_factory=dict)  # the run's counts, beside its id
    status: str = "ok"  # the run's status: "partial" when the edit met problems


@contextmanager
def logged_edit(db: Database, pack_ids: int | Sequence[int], command: str,
                parameters: dict[str, Any], *, dry_run: bool = False,
                shown: Shown | None = None) -> Iterator[tuple[psycopg.Connection, Edit]]:
    """A transaction under the packs' locks whose changes are logged as one edit (and
    recorded as a run); with ``dry_run`` it is rolled back, whatever it did. ``shown``:
    what the page the edit was asked on showed; refused, changing nothing, when that is
    no longer so (:func:`rbv.jobs.persons.shown.refuse_changed`)."""
    packs = sorted({pack_ids} if isinstance(pack_ids, int) else set(pack_ids))
    with db.connect() as conn:  # a refusal names the pack as users know it
        names = {p: pack_row(conn, p).name for p in packs}
    with ExitStack() as stack:
        for pack_id in packs:
            stack.enter_context(person_lock(db, pack_id, names[pack_id]))
        run = stack.enter_context(recorded_run(db, command, parameters, dry_run=dry_run))
        conn = stack.enter_context(db.transaction())
        stack.enter_context(conn.transaction(force_rollback=dry_run))
        edit = Edit(edits.begin_edit(conn, command, packs[0] if len(packs) == 1 else None,
                                     run.id))
        refuse_changed(conn, shown)
        yield conn, edit
        kept = edits.end_edit(conn, edit.id, edit.summary)
        run.counts = {**edit.counts, "edit": edit.id if kept else None}
        run.status = edit.status
        edit.logged_id = edit.id if kept and not dry_run else None


def history(db: Database, limit: int = 50) -> list[edits.EditRow]:
    """The latest edits, newest first (undone ones and undos included)."""
    with db.connect() as conn:
        return edits.list_edits(conn, limit)


@dataclass
class UndoResult:
    undone: list[edits.EditRow] = field(default_factory=list)
    rows: int = 0
    edit_id: int | None = None  # the undo's own entry in the log (None: dry run)


def undo(db: Database, count: int = 1, *, dry_run: bool = False,
         expected: int | None = None) -> UndoResult:
    """Revert the last ``count`` edits still in effect, newest first, all or nothing.
    With ``expected``, only when the oldest of them is that edit (the one a window
    offered to undo): checked under the locks the undo holds, so an edit made meanwhile
    is refused, never undone in its place."""
    with db.connect() as conn:
        pending = edits.undoable_edits(conn, count)
    _refuse_unexpected(pending, expected)
    if not pending:
        raise ConfigError("nothing to undo: every logged edit is undone already")
    packs = [e.pack_id for e in pending if e.pack_id is not None]
    result = UndoResult()
    with logged_edit(db, packs, "persons undo", {"count": count},
                     dry_run=dry_run) as (conn, edit):
        # Read again under the locks: an edit made in between is the newest now.
        targets = edits.undoable_edits(conn, count, undo=edit.id)
        _refuse_unexpected(targets, expected)
        for target in targets:
            _refuse_conflicts(conn, target)
            result.rows += edits.revert_edit(conn, target.id)
            result.undone.append(target)
        edits.mark_undone(conn, [e.id for e in result.undone], edit.id)
        edit.summary = "undid " + ", ".join(f"#{e.id} ({e.command})" for e in result.undone)
        result.edit_id = None if dry_run else edit.id
    return result


def _refuse_unexpected(targets: list[edits.EditRow], expected: int | None) -> None:
    """With ``expected``, refuse unless it is the oldest of the edits to undo: an edit
    made since (another window, a command) would be undone in its place."""
    if expected is None or (targets and targets[-1].id == expected):
        return
    newer = [e for e in targets if e.id > expected]
    since = (f": edit #{newer[-1].id} ({newer[-1].summary or newer[-1].command}) was made "
             "since" if newer else "")
    raise EditConflict(f"edit #{expected} is not the newest edit in effect any more{since} "
                       "(see the history); nothing was undone")


def _refuse_conflicts(conn: psycopg.Connection, target: edits.EditRow) -> None:
    found = edits.conflicts(conn, target.id)
    if not found:
        return
    first = found[0]
    if first.gone:
        what = (f"person {_short(first.key.get('id'))}, which it changed, was deleted since (a "
                "clustering run deletes persons left without faces)")
    elif first.later_edit is not None:
        what = (f"{_row_words(first)} was changed since by edit #{first.later_edit} (undo "
                "that first)")
    else:
        what = f"{_row_words(first)} was changed since by a clustering run, an import or SQL"
    more = f" (and {counted(len(found) - 1, 'more row')})" if len(found) > 1 else ""
    raise EditConflict(
        f"edit #{target.id} ({target.summary or target.command}) cannot be undone: {what}"
        f"{more}; nothing was undone. Fix it with a new edit instead")


def _short(person: object) -> str:
    """A person id as users read it (any unique prefix is accepted)."""
    return str(person)[:SHORT_ID]


def _row_words(c: edits.Conflict) -> str:
    if c.table == "face_detections":
        return f"face {c.key.get('id')}"
    if c.table in ("face_boxes", "face_embeddings"):
        return f"the box of face {c.key.get('id', c.key.get('face_id'))}"
    if c.table in ("persons", "person_names"):
        return f"person {_short(c.key.get('id', c.key.get('person_id')))}"
    if c.table == "person_rejections":
        return f"the rejection of face {c.key.get('face_id')}"
    kind = "same" if c.table == "must_links" else "different"
    return f"the '{kind}' link of faces {c.key.get('face_a')}, {c.key.get('face_b')}"

"""What every manual person edit (``rbv persons …``) runs in and returns: one
transaction under the pack's lock, logged in the edit log so that ``rbv persons undo``
can revert it (:mod:`rbv.jobs.persons.edit_log`). The edits themselves:
:mod:`~rbv.jobs.persons.merges`, :mod:`~rbv.jobs.persons.face_moves`,
:mod:`~rbv.jobs.persons.person_details` and :mod:`~rbv.jobs.persons.splits`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg

from rbv.errors import Refused, Remedy
from rbv.jobs.persons.edit_log import Edit, logged_edit
from rbv.jobs.persons.shown import Shown
from rbv.store.queries import persons as store
from rbv.store.queries.person_lookup import existing_person
from rbv.store.server.connection import Database


@contextmanager
def editing(db: Database, person: uuid.UUID, command: str,
            parameters: dict[str, Any] | None = None, *, dry_run: bool = False,
            shown: Shown | None = None
            ) -> Iterator[tuple[psycopg.Connection, uuid.UUID, Edit]]:
    """:func:`logged_edit` on ``person`` (or the person it was merged into) and its
    pack; ``shown``: what the page asking for it showed, refused when changed since."""
    with db.connect() as conn:
        person = existing_person(conn, person)
        pack_id = store.pack_of(conn, person)
    with logged_edit(db, pack_id, command, {"person": str(person), **(parameters or {})},
                     dry_run=dry_run, shown=shown) as (conn, edit):
        yield conn, person, edit


def refuse_photo_clashes(conn: psycopg.Connection, target: uuid.UUID | None,
                          incoming: Sequence[int]) -> None:
    """A person has at most one face per photo: an edit that would give it two is
    refused, naming the faces, before anything changes."""
    refuse_clashes(store.photo_clashes(conn, target, incoming), target)


def refuse_clashes(clashes: list[list[int]], target: uuid.UUID | None) -> None:
    """:func:`refuse_photo_clashes` of ``clashes`` found (groups of face ids of one
    photo)."""
    if clashes:
        shown = "; ".join(", ".join(map(str, c)) for c in clashes[:5])
        raise Refused(
            f"faces {shown} would be in one person but are of one photo (a person has one "
            "face per photo); first move the wrong face of each photo elsewhere",
            kind="photo_clash", persons=[target] if target else [],
            faces=[f for c in clashes for f in c],
            remedies=[Remedy("move", {"faces": [f]}, f"move face {f} to a new person")
                      for f in clashes[0]])


@dataclass(frozen=True)
class Edited:
    """What a person edit did: the person, the faces it moved (would move, with
    ``dry_run``), the earlier decisions it overrode, in words ("" when none), and its
    entry in the edit log (None: a dry run, or it changed nothing)."""

    person: uuid.UUID | None
    faces: int
    overrides: str = ""
    edit_id: int | None = None


def overriding(words: str) -> str:
    """The earlier decisions an edit overrode, as the end of its summary ("" when none)."""
    return f"; overrides {words}" if words else ""

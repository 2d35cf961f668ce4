"""What a page showed when its answer was made (``rbv serve``): an edit given it checks,
under the pack's lock and in its own transaction, that each thing shown is still so,
and is refused, changing nothing, with one line naming what changed and when, where it
is not. A page loaded before a command (or another page) named a person or placed a
face by hand can so never undo that decision without a word."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import psycopg

from rbv.errors import ShownChanged
from rbv.store.queries import shown as store
from rbv.store.queries.person_lookup import labels, short_id


@dataclass(frozen=True)
class PersonShown:
    """A person as a page showed it: its name (None: unnamed), whether hidden, and, where
    the page showed them (``details``), its birthday and chosen cover face (None: none,
    its automatic face)."""

    id: uuid.UUID
    name: str | None
    hidden: bool
    details: tuple[date | None, int | None] | None = None


@dataclass(frozen=True)
class FaceShown:
    """A face as a page showed it: its person (None: none) and who placed it there
    ('manual': by hand; None: no one); where the page showed it, its box (x1, y1, x2,
    y2 in whole pixels of the photo)."""

    id: int
    person: uuid.UUID | None
    by: str | None
    box: tuple[int, int, int, int] | None = None


@dataclass(frozen=True)
class Shown:
    """Everything an answer's page showed that the answer depends on."""

    persons: tuple[PersonShown, ...] = ()
    faces: tuple[FaceShown, ...] = ()


def refuse_changed(conn: psycopg.Connection, shown: Shown | None) -> None:
    """Raise :class:`ShownChanged` naming the first thing ``shown`` showed that is no
    longer so, and when it changed (the edit log's time, or the face's placement)."""
    if shown is None:
        return
    persons = store.persons_now(conn, [p.id for p in shown.persons])
    for person in shown.persons:
        change = _person_change(conn, person, persons.get(person.id))
        if change is not None:
            what, table, key = change
            _refuse(what, store.last_edit(conn, table, key), None)
    faces = store.faces_now(conn, [f.id for f in shown.faces])
    for face in shown.faces:
        now = faces.get(face.id)
        if now is None:
            _refuse(f"face {face.id} is gone", None, None)
        elif (now.person, now.by) != (face.person, face.by):
            _refuse(f"face {face.id} is {_place(conn, now.person, now.by)} now; the page "
                    f"showed it {_place(conn, face.person, face.by)}",
                    store.last_edit(conn, "face_detections", {"id": face.id}), now.at)
        elif face.box is not None and whole_box(now.box) != face.box:
            _refuse(f"face {face.id}'s box is at {_corners(whole_box(now.box))} now; the page "
                    f"showed it "
                    f"at {_corners(face.box)}",
                    store.last_edit(conn, "face_boxes", {"id": face.id}), None)


def _person_change(conn: psycopg.Connection, shown: PersonShown, now: store.PersonNow | None
                   ) -> tuple[str, str, dict[str, Any]] | None:
    """What changed of the person, in words, and the edit log's row that holds it."""
    who = f"person {short_id(shown.id)}" + (f" ({shown.name!r})" if shown.name else "")
    row = ("persons", {"id": str(shown.id)})
    if now is None:
        return f"{who} is gone", *row
    if now.merged_into is not None:
        return f"{who} was merged into {labels(conn, [now.merged_into])[now.merged_into]}", *row
    if now.name != shown.name:
        words = f"named {now.name!r}" if now.name else "unnamed"
        was = f"named {shown.name!r}" if shown.name else "unnamed"
        return (f"{who} is {words} now; the page showed it {was}", "person_names",
                {"person_id": str(shown.id)})
    if now.hidden != shown.hidden:
        return f"{who} is {'hidden' if now.hidden else 'shown again'} now", *row
    if shown.details is not None and now.born != shown.details[0]:
        born = now.born.isoformat() if now.born else "no birthday"
        was = shown.details[0].isoformat() if shown.details[0] else "none"
        return f"{who} has {born} as birthday now; the page showed {was}", *row
    if shown.details is not None and now.cover != shown.details[1]:
        cover = f"face {now.cover}" if now.cover is not None else "its automatic face"
        return f"{who} is shown by {cover} now", *row
    return None


def whole_box(box: Sequence[float] | None) -> tuple[int, int, int, int] | None:
    """A face's box (x1, y1, x2, y2) in whole pixels, as a page shows it."""
    if box is None:
        return None
    x1, y1, x2, y2 = (math.floor(float(v) + 0.5) for v in box)
    return x1, y1, x2, y2


def _corners(box: tuple[int, int, int, int] | None) -> str:
    return "none" if box is None else "{},{}–{},{}".format(*box)


def _place(conn: psycopg.Connection, person: uuid.UUID | None, by: str | None) -> str:
    if person is None:
        return "in no person"
    how = "by hand" if by == "manual" else "automatically"
    return f"in {labels(conn, [person])[person]}, placed {how}"


def _refuse(what: str, edit: store.LastEdit | None, placed: datetime | None) -> None:
    if placed is not None and (edit is None or placed > edit.at):
        when = f"at {_time(placed)}, by a clustering run, an import or SQL"
    elif edit is not None:
        when = f"at {_time(edit.at)}, by edit #{edit.id} ({edit.command})"
    else:
        when = "since the page was shown"
    raise ShownChanged(f"this page is out of date: {what} (changed {when}); nothing was "
                       "changed: reload the page to see it as it is")


def _time(at: datetime) -> str:
    return at.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def placed_by(conn: psycopg.Connection, face_ids: list[int]) -> dict[int, str | None]:
    """Who placed each face where it is ('manual': by hand), as a page shows it with the
    face, to send back with an answer."""
    return {face: now.by for face, now in store.faces_now(conn, face_ids).items()}

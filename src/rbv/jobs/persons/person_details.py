"""What a person is shown as, without moving a face: its name (``rbv persons name``),
whether it is hidden (``rbv persons hide``/``unhide``) and its cover face
(``rbv persons cover``), each one logged edit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg

from rbv.errors import ConfigError, PersonNotFound, Refused, Remedy
from rbv.jobs.persons.edit_log import logged_edit
from rbv.jobs.persons.person_edit import Edited, editing
from rbv.jobs.persons.shown import Shown
from rbv.store.queries import persons as store
from rbv.store.queries.person_covers import chosen_cover, set_cover
from rbv.store.queries.person_lookup import existing_person, labels, name_of, person_named
from rbv.store.server.connection import Database
from rbv.words import counted


def name(db: Database, person: uuid.UUID, new_name: str, *, force: bool = False,
         shown: Shown | None = None) -> Edited:
    """Name a person (no face moves). A name another person of the pack has already is
    refused (the two are probably one person: the message gives the merge) unless
    ``force``. The name it has already changes nothing, and logs no edit (``edit_id``
    None). A name :func:`~rbv.store.queries.persons.checked_name` refuses changes
    nothing."""
    new_name = store.checked_name(new_name)  # stripped of its surrounding spaces
    with editing(db, person, "persons name", {"name": new_name},
                 shown=shown) as (conn, person, edit):
        other = person_named(conn, store.pack_of(conn, person), new_name,
                             other_than=person)
        if other is not None and not force:
            raise Refused(
                f"person {other} is already named {name_of(conn, other)!r}; merge "
                "them if they are one person, or give both the name",
                kind="duplicate_name", persons=[other, person],
                remedies=[Remedy("merge", {"persons": [other, person]}, "merge them"),
                          Remedy("name", {"person": person, "name": new_name, "force": True},
                                 "give both the name")])
        was = name_of(conn, person)
        if was != new_name:
            store.set_name(conn, person, new_name)
        edit.summary = (f"named {person} {new_name!r}"
                        + (f" (was {was!r})" if was else ""))
    return Edited(person, 0, edit_id=edit.logged_id)


@dataclass(frozen=True)
class HideResult:
    """What hiding (showing again) did: the persons changed (would change, with
    ``dry_run``) and its entry in the edit log (empty: a dry run, or nothing changed)."""

    persons: int
    edit_ids: list[int]


def hide(db: Database, person_ids: Sequence[uuid.UUID], hidden: bool, *,
         dry_run: bool = False, shown: Shown | None = None) -> HideResult:
    """Hide (or show again) persons, as one logged edit (one undo shows them all again,
    whatever their packs)."""
    with db.connect() as conn:
        persons = list(dict.fromkeys(existing_person(conn, p) for p in person_ids))
        packs = {store.pack_of(conn, p) for p in persons}
    if not persons:
        return HideResult(0, [])
    command = "persons hide" if hidden else "persons unhide"
    with logged_edit(db, sorted(packs), command, {"persons": [str(p) for p in persons]},
                     dry_run=dry_run, shown=shown) as (conn, edit):
        count = store.set_hidden(conn, persons, hidden)
        edit.summary = f"{'hid' if hidden else 'unhid'} {', '.join(map(str, persons))}"
    return HideResult(count, [] if edit.logged_id is None else [edit.logged_id])


@dataclass(frozen=True)
class BulkHidden:
    """What ``rbv persons hide --unnamed --max-faces N`` did (would do, with
    ``dry_run``): each person hidden with its face count, fewest faces first, and its
    entry in the edit log (None: a dry run, or none to hide)."""

    persons: list[tuple[uuid.UUID, int]]
    max_faces: int
    edit_id: int | None = None

    @property
    def faces(self) -> int:
        return sum(n for _, n in self.persons)


def hide_unnamed(db: Database, max_faces: int, pack_name: str | None = None, *,
                 dry_run: bool = False) -> BulkHidden:
    """Hide every visible unnamed person with at most ``max_faces`` faces (of the pack
    ``pack_name`` names, else of every pack), as one logged edit: one undo shows them
    all again. The persons are chosen under the packs' locks, so the edit hides what
    it says."""
    from rbv.store.queries.pack_lookup import find_pack, pack_ids

    if max_faces < 1:
        raise ConfigError("the size to hide up to must be 1 face or more (a person shown has "
                          "a face)")
    with db.connect() as conn:
        packs = ([find_pack(conn, pack_name).id] if pack_name else
                 pack_ids(conn))
    if not packs:
        return BulkHidden([], max_faces)
    with logged_edit(db, packs, "persons hide",
                     {"unnamed": True, "max_faces": max_faces, "model_pack": pack_name},
                     dry_run=dry_run) as (conn, edit):
        found = store.unnamed_up_to(conn, packs, max_faces)
        store.set_hidden(conn, [p for p, _ in found], True)
        edit.summary = (f"hid {counted(len(found), 'unnamed person')} with at most "
                        f"{counted(max_faces, 'face')} "
                        f"({counted(sum(n for _, n in found), 'face')})")
    return BulkHidden(found, max_faces, edit.logged_id)


@dataclass(frozen=True)
class Covered:
    """What ``rbv persons cover`` did: the person, the face chosen (None: back to the
    automatic face), the one chosen before (None: none) and its entry in the edit log
    (None: a dry run, or it was so already)."""

    person: uuid.UUID
    face: int | None
    was: int | None
    edit_id: int | None = None


def cover(db: Database, person: uuid.UUID, face_id: int | None, *, dry_run: bool = False,
          shown: Shown | None = None) -> Covered:
    """Show the person by ``face_id`` wherever it is shown by one face (None: by its
    automatic face again). The face must be one of the person's; a refusal names where
    it is. Logged, so ``rbv persons undo`` puts the earlier choice back."""
    with editing(db, person, "persons cover", {"face": face_id},
                 dry_run=dry_run, shown=shown) as (conn, person, edit):
        if face_id is not None:
            _refuse_foreign_cover(conn, person, face_id)
        was = chosen_cover(conn, person)
        set_cover(conn, person, face_id)
        edit.summary = (f"cover of {person}: face {face_id}" if face_id is not None
                        else f"cover of {person}: automatic again")
    return Covered(person, face_id, was, edit.logged_id)


def _refuse_foreign_cover(conn: psycopg.Connection, person: uuid.UUID, face_id: int) -> None:
    """A cover is one of the person's faces: any other is refused, saying where it is."""
    place = store.face_place(conn, face_id)
    if place is None:
        raise PersonNotFound(f"no face with id {face_id} in this database")
    whose = labels(conn, [person])[person]
    if place.not_a_face:
        where = "it is marked not a face"
    elif place.person is None:
        where = "it is in no person"
    elif place.person == person:
        return
    else:
        other = labels(conn, [place.person])[place.person]
        raise Refused(
            f"face {face_id} is not a face of {whose}: it is {other}'s; make it that "
            "person's cover, or move it here first", kind="not_its_face",
            persons=[person, place.person], faces=[face_id],
            remedies=[Remedy("cover", {"person": place.person, "face": face_id},
                             f"make it {other}'s cover"),
                      Remedy("move", {"faces": [face_id], "to": person}, "move it here")])
    raise Refused(f"face {face_id} is not a face of {whose}: {where}", kind="not_its_face",
                  persons=[person], faces=[face_id])

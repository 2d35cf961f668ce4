"""Moving faces by hand (``rbv persons move``) and taking them out of a person for good
(``rbv persons not-this-person``), each one logged edit."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import psycopg

from rbv.errors import PersonNotFound
from rbv.jobs.persons.edit_log import logged_edit
from rbv.jobs.persons.not_faces import refuse_marked
from rbv.jobs.persons.overrides import overridden
from rbv.jobs.persons.person_edit import Edited, editing, overriding, refuse_photo_clashes
from rbv.jobs.persons.shown import Shown
from rbv.store.queries import contradictions
from rbv.store.queries import persons as store
from rbv.store.server.connection import Database


def move(db: Database, face_ids: Sequence[int], target: uuid.UUID | None,
         pack_name: str | None = None, *, dry_run: bool = False,
         shown: Shown | None = None) -> Edited:
    """Move faces to a person, or to a new person when ``target`` is None (with
    ``dry_run``, none is created: the person returned is None). Refused when two faces
    would share a photo. Naming the faces is explicit: the move overrides, and says,
    their rejections from the person, "different" links with its faces and "same"
    links with faces placed by hand elsewhere."""
    with db.connect() as conn:
        _require_faces(conn, face_ids)
    parameters = {"faces": [int(f) for f in face_ids],
                  "to": None if target is None else str(target)}
    if target is None:
        with db.connect() as conn:
            pack_id = store.pack_of_face(conn, face_ids[0])
        if pack_id is None:
            raise PersonNotFound(f"no face with id {face_ids[0]}")
        with logged_edit(db, pack_id, "persons move", parameters,
                         dry_run=dry_run, shown=shown) as (conn, edit):
            refuse_marked(conn, face_ids, "be put in a person")
            refuse_photo_clashes(conn, None, face_ids)
            overrides = overridden(conn, contradictions.placing(conn, face_ids, None))
            person = store.new_person(conn, pack_id)
            moved = store.move_faces(conn, face_ids, person)
            edit.summary = (f"moved {_faces(face_ids)} to a new person {person}"
                            + overriding(overrides))
        return Edited(None if dry_run else person, moved, overrides, edit.logged_id)
    with editing(db, target, "persons move", parameters,
                 dry_run=dry_run, shown=shown) as (conn, person, edit):
        refuse_marked(conn, face_ids, "be put in a person")
        refuse_photo_clashes(conn, person, face_ids)
        overrides = overridden(conn, contradictions.placing(conn, face_ids, person))
        moved = store.move_faces(conn, face_ids, person)
        edit.summary = f"moved {_faces(face_ids)} to {person}" + overriding(overrides)
    return Edited(person, moved, overrides, edit.logged_id)


def _faces(face_ids: Sequence[int]) -> str:
    """Face ids in words, a long list shortened."""
    shown = ", ".join(map(str, face_ids[:8])) + (", …" if len(face_ids) > 8 else "")
    return f"face{'s' if len(face_ids) > 1 else ''} {shown}"


def reject(db: Database, person: uuid.UUID, face_ids: Sequence[int], *,
           dry_run: bool = False, shown: Shown | None = None) -> Edited:
    """"Not this person": the faces leave the person and never return to it (and, said,
    their "same" links with its faces go). Returns the person and the faces taken out
    (would be, with ``dry_run``)."""
    with editing(db, person, "persons not-this-person", {"faces": [int(f) for f in face_ids]},
                 dry_run=dry_run, shown=shown) as (conn, person, edit):
        _require_faces(conn, face_ids)
        refuse_marked(conn, face_ids, "be rejected from a person (it is in none)")
        overrides = overridden(conn, contradictions.rejecting(conn, person, face_ids))
        count = store.reject_faces(conn, person, face_ids)
        edit.summary = (f"{_faces(face_ids)} {'is' if len(face_ids) == 1 else 'are'} not "
                        f"{person} ({count} taken out)"
                        + overriding(overrides))
    return Edited(person, count, overrides, edit.logged_id)


def _require_faces(conn: psycopg.Connection, face_ids: Sequence[int]) -> None:
    """Nothing is changed when a face id is unknown (a typo must not half-apply)."""
    missing = store.missing_faces(conn, face_ids)
    if missing:
        raise PersonNotFound(f"no face with id {', '.join(map(str, missing[:5]))} in this "
                             "database")

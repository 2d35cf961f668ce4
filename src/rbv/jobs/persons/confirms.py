"""Confirming a person's faces (``rbv persons confirm``, the person's "to confirm"
screen in ``rbv serve``), as digiKam's "Unconfirmed" and Apple Photos' "review
suggested photos" do.

A face an automatic run put in a person is *unconfirmed* until a decision confirms it;
confirming places it there by hand (so no automatic run moves it again), rejecting it
takes it out for good (:func:`rbv.jobs.persons.face_moves.reject`). The faces are
listed least alike to the person first: the wrong ones gather at the start, so a
screen shows the faces to reject where they are few and cheap to find, and once a
screen shows only right ones, "confirm all shown" settles them in one click (the
likeliest faces, confirmed last, are those a user would confirm blind anyway)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from rbv.errors import Refused, Remedy
from rbv.jobs.persons.person_edit import editing
from rbv.jobs.persons.shown import Shown
from rbv.store.queries import confirms as store
from rbv.store.queries import persons as persons_store
from rbv.store.queries.person_lookup import existing_person, name_of
from rbv.store.server.connection import Database


@dataclass(frozen=True)
class UnconfirmedFace:
    id: int
    image_id: int
    similarity: float  # cosine similarity to the person's confirmed faces' mean


@dataclass(frozen=True)
class Unconfirmed:
    """A person's unconfirmed faces, least alike first (``faces``: at most the limit),
    how many are left in all and how many are confirmed; its name, and whether it is
    hidden."""

    person: uuid.UUID
    name: str | None
    faces: list[UnconfirmedFace]
    left: int
    confirmed: int
    hidden: bool = False

    def as_dict(self) -> dict[str, object]:
        return {"person": str(self.person), "name": self.name, "left": self.left,
                "confirmed": self.confirmed,
                "faces": [{"face": f.id, "image": f.image_id,
                           "similarity": round(f.similarity, 4)} for f in self.faces]}


@dataclass(frozen=True)
class Confirmed:
    """What a confirmation did (would do, with ``dry_run``): the faces confirmed, those
    left unconfirmed, and its edit (None: a dry run, or none was left to confirm)."""

    person: uuid.UUID
    confirmed: int
    left: int
    edit_id: int | None

    def as_dict(self) -> dict[str, object]:
        return {"person": str(self.person), "confirmed": self.confirmed, "left": self.left,
                "edit": self.edit_id}


def unconfirmed(db: Database, person: uuid.UUID, limit: int) -> Unconfirmed:
    """The person's unconfirmed faces, least alike to it first (at most ``limit``)."""
    with db.connect() as conn:
        person = existing_person(conn, person)
        left, confirmed = store.unconfirmed_count(conn, person)
        faces = [UnconfirmedFace(*row) for row in store.unconfirmed_faces(conn, person, limit)]
        return Unconfirmed(person, name_of(conn, person), faces, left, confirmed,
                           persons_store.is_hidden(conn, person))


def left_to_confirm(db: Database, person: uuid.UUID) -> int:
    """How many of the person's faces are unconfirmed."""
    with db.connect() as conn:
        return store.unconfirmed_count(conn, person)[0]


def confirm(db: Database, person: uuid.UUID, faces: Sequence[int] | None, *,
            dry_run: bool = False, shown: Shown | None = None) -> Confirmed:
    """Confirm ``faces`` of the person (None: every unconfirmed one): each is placed in
    it by hand, as one logged edit. Refused, changing nothing, when one of them is not
    the person's (now)."""
    params = {"faces": None if faces is None else [int(f) for f in faces]}
    with editing(db, person, "persons confirm", params, dry_run=dry_run,
                 shown=shown) as (conn, person, edit):
        chosen = (store.all_unconfirmed(conn, person) if faces is None
                  else list(dict.fromkeys(int(f) for f in faces)))  # a face given twice: once
        missing = store.not_held(conn, person, chosen)
        if missing:
            raise Refused(
                f"face {missing[0]} is not in this person (now): a face is confirmed where "
                "it is; put it in the person instead", kind="not_its_face",
                persons=[person], faces=missing,
                remedies=[Remedy("move", {"faces": missing, "to": person},
                                 "put it in this person")])
        already = set(store.all_unconfirmed(conn, person))
        newly = [f for f in chosen if f in already]
        if newly:
            persons_store.move_faces(conn, newly, person)
        left, _ = store.unconfirmed_count(conn, person)
        edit.summary = (f"confirmed {len(newly)} face{'s' if len(newly) != 1 else ''} of "
                        f"{person} ({left} left to confirm)")
    return Confirmed(person, len(newly), left, edit.logged_id)

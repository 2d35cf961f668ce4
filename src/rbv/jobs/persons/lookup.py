"""Persons as the commands find and show them: by uuid, uuid prefix or name, listed with
their face counts, called by their label in messages. Reads only, and no clustering
stack: ``rbv persons`` edits start without numpy (``scripts/bench_startup.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from rbv.store import Database
from rbv.store.queries import persons as queries
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.queries.persons import SHORT_ID, PersonFace, PersonRow, short_id

__all__ = ["SHORT_ID", "PersonFace", "PersonRow", "faces", "labels", "list_persons", "name",
           "resolve", "resolve_all", "short_id"]


def resolve(db: Database, ref: str) -> uuid.UUID:
    """The person ``ref`` names: a uuid, a unique uuid prefix, a name or a unique part
    of one (:class:`rbv.errors.PersonNotFound` otherwise)."""
    with db.connect() as conn:
        return queries.resolve_person(conn, ref)


def resolve_all(db: Database, refs: Sequence[str]) -> list[uuid.UUID]:
    """Each person of ``refs``, in their order (repeats kept)."""
    with db.connect() as conn:
        return [queries.resolve_person(conn, r) for r in refs]


def labels(db: Database, persons: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """How each person is called in a message: its name, or "person" and its short id."""
    if not persons:
        return {}
    with db.connect() as conn:
        return queries.labels(conn, persons)


def list_persons(db: Database, model_pack: str | None, *, include_hidden: bool,
                 min_faces: int) -> list[PersonRow]:
    """Persons with their face and photo counts, most faces first (of one pack when
    ``model_pack`` names one)."""
    with db.connect() as conn:
        pack_id = find_pack(conn, model_pack).id if model_pack else None
        return queries.list_persons(conn, pack_id, include_hidden=include_hidden,
                                    min_faces=min_faces)


def faces(db: Database, ref: str, limit: int) -> tuple[uuid.UUID, str, list[PersonFace]]:
    """The person ``ref`` names, its label and up to ``limit`` of its faces."""
    with db.connect() as conn:
        person = queries.resolve_person(conn, ref)
        return person, queries.labels(conn, [person])[person], queries.faces_of(
            conn, person, limit)


def name(db: Database, person: uuid.UUID) -> str | None:
    """The person's name (None: unnamed)."""
    with db.connect() as conn:
        return queries.name_of(conn, person)

"""Persons as the commands find and show them: by uuid, uuid prefix or name, listed with
their face counts, called by their label in messages (and in the edit log's summaries,
the CLI's and ``rbv serve``'s history alike). Reads only, and no clustering
stack: ``rbv persons`` edits start without numpy (``scripts/bench/bench_startup.py``)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from rbv.errors import PersonNotFound, Remedy
from rbv.faces.estimates import EstimatedAges, FaceEstimate
from rbv.store import Database
from rbv.store.queries import attributes as attribute_queries
from rbv.store.queries import person_covers, person_lookup
from rbv.store.queries import persons as queries
from rbv.store.queries.attributes import person_estimated_ages
from rbv.store.queries.birthdays import births
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.queries.person_lookup import SHORT_ID, short_id
from rbv.store.queries.persons import PersonFace, PersonRow

__all__ = ["SHORT_ID", "PersonFace", "PersonFaces", "PersonRow", "cover", "faces", "labels",
           "list_persons", "name", "person", "relabel", "resolve", "resolve_all", "short_id"]

_UUID = re.compile(r"(person )?\b([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
                   r"\b( ')?")


def resolve(db: Database, ref: str) -> uuid.UUID:
    """The person ``ref`` names: a uuid, a unique uuid prefix, a name or a unique part
    of one (:class:`rbv.errors.PersonNotFound` otherwise)."""
    with db.connect() as conn:
        return person_lookup.resolve_person(conn, ref)


def resolve_all(db: Database, refs: Sequence[str]) -> list[uuid.UUID]:
    """Each person of ``refs``, in their order (repeats kept)."""
    with db.connect() as conn:
        return [person_lookup.resolve_person(conn, r) for r in refs]


def labels(db: Database, persons: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """How each person is called in a message: its name, or "person" and its short id."""
    if not persons:
        return {}
    with db.connect() as conn:
        return person_lookup.labels(conn, persons)


def pack_name(db: Database, name_or_path: str, *, sole_fallback: bool) -> str:
    """The registered pack ``name_or_path`` names (with ``sole_fallback``, the library's
    only pack where it names none of them): its name."""
    with db.connect() as conn:
        return find_pack(conn, name_or_path, sole_fallback=sole_fallback).name


def list_persons(db: Database, model_pack: str | None, *, include_hidden: bool,
                 min_faces: int) -> list[PersonRow]:
    """Persons with their face and photo counts, most faces first (of one pack when
    ``model_pack`` names one)."""
    with db.connect() as conn:
        pack_id = find_pack(conn, model_pack).id if model_pack else None
        return queries.list_persons(conn, pack_id, include_hidden=include_hidden,
                                    min_faces=min_faces)


def person(db: Database, person: uuid.UUID) -> PersonRow:
    """One person as :func:`list_persons` lists it, hidden or not, whatever its faces
    (:class:`rbv.errors.PersonNotFound` for an id no person has, or one merged into
    another)."""
    with db.connect() as conn:
        rows = queries.list_persons(conn, include_hidden=True, min_faces=0, persons=[person])
    if not rows:
        raise PersonNotFound(f"no person with id {person} (merged into another, or deleted "
                             "by a clustering run)", [Remedy("list", {}, "the persons")])
    return rows[0]


@dataclass(frozen=True)
class PersonFaces:
    """A person's faces as ``persons show`` lists them: its label, cover face, birthday
    (None: not given) and faces, the cover first, then best detections first."""

    person: uuid.UUID
    label: str
    cover: int | None
    born: date | None
    faces: list[PersonFace]
    estimated: EstimatedAges | None = None  # what its faces' estimates say (all of them)


def faces(db: Database, person: uuid.UUID, limit: int | None) -> PersonFaces:
    """The person's label, cover, birthday and up to ``limit`` of its faces (None:
    all); :class:`rbv.errors.PersonNotFound` when no person has that id (a merged
    person's id is its survivor's, as a front end resolving it is given)."""
    with db.connect() as conn:
        person = person_lookup.existing_person(conn, person)
        return PersonFaces(person, person_lookup.labels(conn, [person])[person],
                           person_covers.cover_of(conn, person),
                           births(conn, [person]).get(person),
                           queries.faces_of(conn, person, limit),
                           person_estimated_ages(conn, person))


def cover(db: Database, person: uuid.UUID) -> int | None:
    """The face chosen to show the person (`rbv persons cover`), while it is one of its
    faces; None: it is shown by its automatic face."""
    with db.connect() as conn:
        return person_covers.cover_of(conn, person)


def name(db: Database, person: uuid.UUID) -> str | None:
    """The person's name (None: unnamed)."""
    with db.connect() as conn:
        return person_lookup.name_of(conn, person)


def relabel(db: Database, texts: Sequence[str]) -> list[str]:
    """``texts`` with every uuid in them replaced by its person's label (edit log
    summaries name persons by uuid); by its short id where the text gives a name right
    after it ("named 3f2a9c12 'Ada'")."""
    ids = list(dict.fromkeys(uuid.UUID(m[1]) for t in texts for m in _UUID.findall(t)))
    if not ids:
        return list(texts)
    named = labels(db, ids)

    def label(match: re.Match[str]) -> str:
        person, quoted = uuid.UUID(match[2]), match[3] or ""
        said = named[person]
        if quoted:
            said = short_id(person) + quoted
        elif match[1] and said.startswith("person "):
            return said  # "person 3f2a9c12", not "person person 3f2a9c12"
        return (match[1] or "") + said

    return [_UUID.sub(label, t) for t in texts]


def face_estimates(db: Database, face_ids: Sequence[int]) -> dict[int, FaceEstimate]:
    """Face id → the age and gender an attribute model estimated, for the faces that
    have an estimate."""
    with db.connect() as conn:
        return attribute_queries.face_estimates(conn, face_ids)


def estimated_ages(db: Database, person: uuid.UUID) -> EstimatedAges | None:
    """What the estimates of the person's faces say (None: no face has one)."""
    with db.connect() as conn:
        return person_estimated_ages(conn, person)


def estimate_words(estimate: FaceEstimate) -> str:
    """A face's estimate, said as one: "~34, male (estimated)"."""
    return f"~{estimate.age:.0f}, {estimate.gender} (estimated)"


def estimated_words(estimated: EstimatedAges) -> str:
    """A person's estimated ages, said as estimates: "estimated age 34 (28–41) from 12
    faces, most read as male"."""
    ages = (f"{estimated.median:.0f} ({estimated.youngest:.0f}–{estimated.oldest:.0f})"
            if estimated.faces > 1 else f"{estimated.median:.0f}")
    reads = f", most read as {estimated.gender}" if estimated.gender else ""
    faces = f"{estimated.faces} face" + ("" if estimated.faces == 1 else "s")
    return f"estimated age {ages} from {faces}{reads}"

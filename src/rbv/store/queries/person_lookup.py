"""Finding a person: by the text a user typed (:func:`resolve_person`: an id, a unique id
prefix, a name or a unique part of one), by id through its merges
(:func:`existing_person`), by name within a pack (:func:`person_named`); and what users
read for a person (its name, or its short id)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

import psycopg

from rbv.errors import PersonNotFound, Remedy
from rbv.formats.names import name_key, shown_name, unfit_text

_SHORTEST_PREFIX = 4
"""Characters of an id's start taken as that id: fewer would often name several persons."""
_UUID_PREFIX = re.compile(rf"^[0-9a-f-]{{{_SHORTEST_PREFIX},36}}$")


def _named_like(rows: list[tuple[uuid.UUID, str]], ref: str, *, part: bool = False
                ) -> list[uuid.UUID]:
    """The persons of ``rows`` (person, name) whose name is ``ref`` by
    :func:`~rbv.formats.names.name_key` (``part``: holds it), in their order. Names are
    compared here, not in SQL: PostgreSQL's ``lower`` is not Unicode case folding, and
    under the C locale folds no letter beyond ASCII."""
    key = name_key(ref)
    return [p for p, name in rows if (key in name_key(name) if part else name_key(name) == key)]


def resolve_person(conn: psycopg.Connection, ref: str) -> uuid.UUID:
    """A person by uuid, unique uuid prefix (≥ 4 characters: ``_SHORTEST_PREFIX``),
    name (any case, ``_`` as a space) or unique part of a name ("Obama" for "Barack Obama").

    A merged person resolves to the person it was merged into. Several matches are
    refused, naming each candidate (name and short id)."""
    problem = unfit_text(ref)
    if problem is not None:  # no person is called so: said before PostgreSQL sees it
        raise PersonNotFound(f"no person's name {problem}: {shown_name(ref)}")
    ref = ref.strip()
    found: list[uuid.UUID] = []
    if _UUID_PREFIX.match(ref.lower()):
        found = [r[0] for r in conn.execute(
            "SELECT id FROM persons WHERE id::text LIKE %s LIMIT 10", (ref.lower() + "%",))]
    if not found:
        names = conn.execute("SELECT person_id, name FROM person_names ORDER BY name").fetchall()
        found = _named_like(names, ref)[:10] or (_named_like(names, ref, part=True)[:10]
                                                 if ref else [])
    if not found:
        raise PersonNotFound(f"no person matches {ref!r}{_too_short(conn, ref)}",
                             [Remedy("list", {}, "the persons")])
    # A name kept by a person merged into another names that other person.
    survivors = list(dict.fromkeys(_surviving(conn, p) for p in found))
    if len(survivors) > 1:
        named = labels(conn, survivors)
        shown = ", ".join(named[p] if named[p].startswith("person ") else
                          f"{named[p]} ({short_id(p)})" for p in survivors[:5])
        more = ", …" if len(survivors) > 5 or len(found) == 10 else ""
        raise PersonNotFound(f"{ref!r} matches several persons: {shown}{more}; give more of "
                             "the name or of the id")
    return survivors[0]


def existing_person(conn: psycopg.Connection, person: uuid.UUID) -> uuid.UUID:
    """The person with the id ``person``, or the one it was merged into
    (:class:`~rbv.errors.PersonNotFound` when no person has that id)."""
    if conn.execute("SELECT 1 FROM persons WHERE id = %s", (person,)).fetchone() is None:
        raise PersonNotFound(f"no person with id {person} (merged into another, or deleted "
                             "by a clustering run)", [Remedy("list", {}, "the persons")])
    return _surviving(conn, person)


def _too_short(conn: psycopg.Connection, ref: str) -> str:
    """Why ``ref`` found no id when it is an id's start too short to be taken as one
    (under 4 characters, which would often name several persons), with the persons
    whose ids start so; "" otherwise."""
    ref = ref.lower()
    if not ref or _UUID_PREFIX.match(ref) or not _UUID_PREFIX.match(ref + "0" * 4):
        return ""
    starting = [r[0] for r in conn.execute(
        "SELECT id FROM persons WHERE merged_into IS NULL AND id::text LIKE %s "
        "ORDER BY id LIMIT 4", (ref + "%",))]
    least = f": give at least {_SHORTEST_PREFIX} characters of an id"
    if not starting:
        return least
    shown = ", ".join(short_id(p) for p in starting[:3]) + (", …" if len(starting) > 3 else "")
    return f"{least} ({shown} start{'s' if len(starting) == 1 else ''} so)"


SHORT_ID = 8
"""Characters of a uuid shown for an unnamed person; any unique prefix is accepted back."""


def short_id(person: uuid.UUID) -> str:
    """The person's id as shown to users: its first :data:`SHORT_ID` characters."""
    return str(person)[:SHORT_ID]


def labels(conn: psycopg.Connection, persons: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """What users read for each person: its name, or "person " and its short id when
    unnamed."""
    names = {r[0]: str(r[1]) for r in conn.execute(
        "SELECT person_id, name FROM person_names WHERE person_id = ANY(%s)",
        (list(persons),))}
    return {p: names.get(p, f"person {short_id(p)}") for p in persons}


def names_of(conn: psycopg.Connection, persons: Sequence[uuid.UUID]) -> dict[uuid.UUID, str]:
    """The names of those of ``persons`` that have one."""
    return {r[0]: str(r[1]) for r in conn.execute(
        "SELECT person_id, name FROM person_names WHERE person_id = ANY(%s)",
        (list(persons),))}


def _surviving(conn: psycopg.Connection, person: uuid.UUID) -> uuid.UUID:
    """The person ``person`` was merged into, following merges; itself when unmerged."""
    for _ in range(100):
        row = conn.execute("SELECT merged_into FROM persons WHERE id = %s", (person,)).fetchone()
        if not row or row[0] is None:
            break
        person = row[0]
    return person


def name_of(conn: psycopg.Connection, person: uuid.UUID) -> str | None:
    """The person's name, or None when unnamed."""
    row = conn.execute("SELECT name FROM person_names WHERE person_id = %s",
                       (person,)).fetchone()
    return str(row[0]) if row else None


def person_named(conn: psycopg.Connection, pack_id: int, name: str, *,
                 other_than: uuid.UUID | None = None) -> uuid.UUID | None:
    """The pack's oldest unmerged person with that name (any case, ``_`` as space),
    leaving out ``other_than``; or None."""
    rows = conn.execute(
        "SELECT p.id, n.name FROM persons p JOIN person_names n ON n.person_id = p.id "
        "WHERE p.pack_id = %s AND p.merged_into IS NULL AND p.id IS DISTINCT FROM %s "
        "ORDER BY p.created_at, p.id", (pack_id, other_than)).fetchall()
    found = _named_like(rows, name)
    return found[0] if found else None

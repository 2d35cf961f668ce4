"""Persons as users read them: a name, or "person" and a short id when unnamed (any
unique id prefix or part of a name is accepted back, see ``resolve_person``)."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence

from rbv.jobs.persons.lookup import SHORT_ID, labels, short_id
from rbv.store import Database

_UUID = re.compile(r"(person )?\b([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
                   r"\b( ')?")


def who(db: Database, *persons: uuid.UUID | None) -> list[str]:
    """The label of each person (None, a person not created yet: "a new person")."""
    named = labels(db, [p for p in persons if p is not None])
    return [named[p] if p is not None else "a new person" for p in persons]


def named_list(db: Database, persons: Sequence[uuid.UUID]) -> str:
    """Persons' labels joined with commas."""
    return ", ".join(who(db, *persons))


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


def short_ids(persons: Sequence[uuid.UUID]) -> list[str]:
    """The persons' ids shortened alike, to :data:`SHORT_ID` characters or as many more
    as keep them apart."""
    texts = [str(p) for p in persons]
    for length in range(SHORT_ID, 37):
        if len({t[:length] for t in texts}) == len(set(texts)):
            return [t[:length] for t in texts]
    return texts

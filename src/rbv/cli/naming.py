"""Persons as users read them: a name, or "person" and a short id when unnamed (any
unique id prefix or part of a name is accepted back, see :meth:`Library.find`)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from rbv.jobs.persons.lookup import SHORT_ID

if TYPE_CHECKING:
    from rbv.library import Library


def who(lib: Library, *persons: uuid.UUID | None) -> list[str]:
    """The label of each person (None, a person not created yet: "a new person")."""
    named = lib.labels([p for p in persons if p is not None])
    return [named[p] if p is not None else "a new person" for p in persons]


def named_list(lib: Library, persons: Sequence[uuid.UUID]) -> str:
    """Persons' labels joined with commas."""
    return ", ".join(who(lib, *persons))


def short_ids(persons: Sequence[uuid.UUID]) -> list[str]:
    """The persons' ids shortened alike, to :data:`SHORT_ID` characters or as many more
    as keep them apart."""
    texts = [str(p) for p in persons]
    for length in range(SHORT_ID, 37):
        if len({t[:length] for t in texts}) == len(set(texts)):
            return [t[:length] for t in texts]
    return texts

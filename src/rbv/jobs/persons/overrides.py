"""A later manual decision wins over the earlier one it contradicts, but never silently.

Each edit finds the earlier decisions it contradicts (:mod:`rbv.store.queries.contradictions`)
and either refuses, naming them (when the user did not ask for it explicitly), or lifts
them in its own logged edit and says so (undoing the edit puts them back).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import psycopg

from rbv.errors import Refused, Remedy
from rbv.store.queries.contradictions import Contradictions, lift
from rbv.words import counted

SHOWN = 4
"""Links named in words; the rest are counted."""


def _faces(ids: Sequence[int]) -> str:
    return (f"face{'s' if len(ids) > 1 else ''} {', '.join(map(str, ids[:8]))}"
            + (", …" if len(ids) > 8 else ""))


def _links(pairs: Sequence[tuple[int, int]], kind: str) -> str:
    shown = ", ".join(f"{a}-{b}" for a, b in pairs[:SHOWN]) + (", …" if len(pairs) > SHOWN
                                                                else "")
    links = counted(len(pairs), f"'{kind}' link")
    return f"{links} (faces {shown})"


def in_words(found: Contradictions) -> str:
    """The earlier decisions, in words: "the earlier decision that face 38 is not P; 19
    'different' links (faces 1-38, 2-38, …)"."""
    parts: list[str] = []
    by_person: dict[uuid.UUID, list[int]] = {}
    for face, person in found.rejections:
        by_person.setdefault(person, []).append(face)
    for person, faces in by_person.items():
        verb = "are" if len(faces) > 1 else "is"
        parts.append(f"the earlier decision that {_faces(faces)} {verb} not {person}")
    if found.cannot:
        parts.append(_links(found.cannot, "different"))
    if found.must:
        parts.append(_links(found.must, "same"))
    return "; ".join(parts)


def overridden(conn: psycopg.Connection, found: Contradictions) -> str:
    """Lift ``found`` (an edit the user asked for explicitly) and return it in words ("":
    nothing was contradicted)."""
    if not found:
        return ""
    lift(conn, found)
    return in_words(found)


def settle(conn: psycopg.Connection, found: Contradictions, *, override: bool,
           refusal: str, overridable: bool = True) -> str:
    """With ``override``, :func:`overridden`; otherwise refuse when there is something
    to override, with ``refusal`` and the decisions, offering to override them where
    the edit can (``overridable``)."""
    if found and not override:
        faces = sorted({f for f, _ in found.rejections} | {f for p in found.cannot for f in p}
                       | {f for p in found.must for f in p})
        raise Refused(f"{refusal}: {in_words(found)}", kind="decisions_contradict",
                      persons=list(dict.fromkeys(p for _, p in found.rejections)),
                      faces=faces,
                      remedies=[Remedy("override", {}, "Override")] if overridable else [])
    return overridden(conn, found)

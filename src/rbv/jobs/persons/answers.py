"""The rules of an answer to a merge suggestion ("same person?", "which of these are X?",
"which of these pairs are one person?"): which answers are refused, changing nothing,
and what one that is not does (the persons it merges, each group's keeper first; the
faces it keeps apart; the pairs it leaves unmergeable). Functions over a connection and
plain values: ``rbv serve``'s review queue asks them before it makes an answer's edit
(:mod:`rbv.jobs.persons.merges`), and a command answering suggestions can ask the same."""

from __future__ import annotations

import uuid
from collections.abc import Collection, Hashable, Sequence
from dataclasses import dataclass

import psycopg

from rbv.cluster.union_find import groups
from rbv.errors import ConfigError
from rbv.jobs.persons.evidence import Suggestion
from rbv.store.queries.persons import PersonRow, list_persons, persons_of_faces
from rbv.store.queries.review import conflicts_of, photo_mates_of


def side(person: PersonRow) -> str:
    """A person as a refusal names it: its name, else the start of its id."""
    return repr(person.name) if person.name else str(person.id)[:8]


def refuse_unshown(ticked: Collection[Hashable], shown: Collection[Hashable],
                   what: str) -> None:
    """Refuse ticks of a ``what`` (a person, a pair) that was not among those shown."""
    if not set(ticked) <= set(shown):
        raise ConfigError(f"a {what} ticked was not among those shown")


def still_current(conn: psycopg.Connection, asked: Sequence[Suggestion]) -> None:
    """Refuse, changing nothing, when the two faces a pair shows are no longer in
    its two persons: persons changed elsewhere since it was ranked (`rbv persons
    merge` in a terminal made the pair one person, whose faces an answer "different"
    would then pull apart)."""
    now = persons_of_faces(conn, [f for s in asked for f in s.best_faces])
    for s in asked:
        (a, b), (keep, other) = s.best_faces, (s.keep.id, s.other.id)
        if now.get(a) != keep or now.get(b) != other:
            raise ConfigError(f"{side(s.keep)} and {side(s.other)} changed since "
                              "this pair was shown (persons were edited elsewhere); "
                              "reload the page")


def persons_now(conn: psycopg.Connection, rows: list[PersonRow]) -> list[PersonRow]:
    """Persons as they are now (names, counts), in one query; as given where gone."""
    found = {p.id: p for p in list_persons(conn, include_hidden=True,
                                           persons=[r.id for r in rows])}
    return [found.get(r.id, r) for r in rows]


def joined(pairs: list[tuple[PersonRow, PersonRow]]) -> list[list[uuid.UUID]]:
    """The persons the pairs join, each group's keeper first: a named person, else the
    one with most faces (as ranking keeps)."""
    rows = {row.id: row for pair in pairs for row in pair}
    return [[r.id for r in sorted((rows[p] for p in members),
                                  key=lambda r: (not r.name, -r.faces))]
            for members in groups((one.id, two.id) for one, two in pairs)]


@dataclass(frozen=True)
class PairsAnswer:
    """What ticking some of the pairs shown does."""

    groups: list[list[uuid.UUID]]  # the persons joined, each group's keeper first
    different: list[tuple[int, int]]  # each pair left unticked: its two faces shown

    @property
    def merges(self) -> list[tuple[uuid.UUID, list[uuid.UUID]]]:
        """Each group as :func:`rbv.jobs.persons.merges.answer_pairs` takes it."""
        return [(members[0], members[1:]) for members in self.groups]

    @property
    def keepers(self) -> list[uuid.UUID]:
        return [members[0] for members in self.groups]

    @property
    def merged(self) -> list[uuid.UUID]:
        """The persons merged into a keeper."""
        return [p for members in self.groups for p in members[1:]]


def pairs_answer(conn: psycopg.Connection, asked: list[tuple[Suggestion, bool]]
                 ) -> PairsAnswer:
    """The pairs ticked (``True``) are one person each: the persons they join are
    merged (into the named one, else the one with most faces, as they are now); the
    others are other people. Refused, changing nothing, when the ticks join two persons
    of a pair left unticked."""
    ticked = [p for s, yes in asked if yes for p in (s.keep, s.other)]
    rows = {r.id: r for r in persons_now(conn, ticked)} if ticked else {}
    joins = joined([(rows[s.keep.id], rows[s.other.id]) for s, yes in asked if yes])
    group_of = {p: i for i, members in enumerate(joins) for p in members}
    for s, yes in asked:
        g = group_of.get(s.keep.id)
        if not yes and g is not None and g == group_of.get(s.other.id):
            raise ConfigError(
                f"the pairs ticked make {side(s.keep)} and {side(s.other)} one "
                "person, but that pair is not ticked; tick it, or untick a pair "
                "that joins them")
    return PairsAnswer(joins, [s.best_faces for s, yes in asked if not yes])


def kept_apart(conn: psycopg.Connection, keepers: list[uuid.UUID], moved: list[int]
               ) -> set[frozenset[int]]:
    """The pairs (UUIDs' ints) of ``keepers`` (persons an answer merged others into:
    their faces ``moved``) that can no longer be merged: the merge gave them faces that
    earlier decisions keep apart from another person's, or faces of a photo another
    person is in, so a pair of theirs ranked before it would be refused."""
    if not keepers:
        return set()
    found = conflicts_of(conn, moved, keepers) | photo_mates_of(conn, moved)
    return {frozenset((a.int, b.int)) for a, b in found}

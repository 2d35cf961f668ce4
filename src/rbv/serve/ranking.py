"""A ranking of merge suggestions as the review queue holds it: made from the pack (the
whole one, or on a library never ranked a first one of the persons with the most faces),
its pairs still open found by person, and those still to ask about."""

from __future__ import annotations

import bisect
import itertools
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rbv.jobs.persons.evidence import Suggestion, load_evidence, merge_suggestions
from rbv.store.queries.review import person_conflicts
from rbv.store.queries.review_pages import library_stamp

if TYPE_CHECKING:
    import psycopg

FIRST_PASS_FACES = 5_000
"""Faces a first ranking reads on a library never ranked: the persons with the most faces
that hold this many, ``FIRST_PASS_PERSONS`` at least, the largest of them read as a
repeatable sample of their faces where they hold more (photos shared between them are
read whole: such persons are never paired). At 100,000 faces in 5,500 persons on two cores
the first ranking (25 persons, 5,000 faces) read in 0.20 s and ranked in 0.26 s, against
1.6 s + 7.0 s for the whole pack at load 2-3 (its cost is the products of large persons'
faces); pairs of large persons are also the ones an answer is most worth
(``faces_put_right``)."""
FIRST_PASS_PERSONS = 25
"""Persons a first ranking holds at least: a full grid ("which of these are X?" shows
``GRID`` = 24 others). The two largest persons alone, often a couple or a parent and
child who share most photos, had no pair to show."""


MIN_WORTH = 0.2
"""The faces an answer to a pair is expected to put right (its worth: probability × the
faces a "yes" puts right) below which the pair is unlikely: the review pages show the
pairs worth more alone, then say that nothing likely is left and offer the rest (two
lone faces at probability 0.2; a lone face and a person of 9 at 0.11). Measured with
``scripts/bench/review_effort.py`` (faces shown)."""


def worth_a_look(s: Suggestion) -> bool:
    """Whether a pair's answer is expected to put right ``MIN_WORTH`` faces or more."""
    return s.worth >= MIN_WORTH


def pair_of(s: Suggestion) -> tuple[uuid.UUID, uuid.UUID]:
    """The suggestion's two persons as ``person_conflicts`` lists them (lower id first)."""
    return min(s.keep.id, s.other.id), max(s.keep.id, s.other.id)


PIECE = 2_000
"""Pairs a ranking made in another process is delivered in (read back and indexed), the
answers going first between pieces (:mod:`rbv.serve.ranking_process`)."""


class OpenPairs:
    """A ranking's pairs still open, found by person: an answer drops the pairs it
    settled by looking at its persons' pairs alone, and the next prompt is the first pair
    not dropped (at 100,000 faces some 70,000 pairs: a pass over them all per request,
    in Python, took longer than the rest of the answer)."""

    def __init__(self, suggestions: list[Suggestion],
                 pause: Callable[[], object] | None = None) -> None:
        """``pause``: called every ``PIECE`` pairs (a ranking delivered behind the
        answers waits there while one is being made)."""
        self.made = suggestions  # as ranked
        self._gone = bytearray(len(suggestions))
        self.left = len(suggestions)
        self._first = 0  # no open pair before this position
        # ints: a UUID's == and hash are Python code, and this is every pair
        self._of: dict[int, list[int]] = {}
        for at, sg in enumerate(suggestions):
            if pause is not None and at % PIECE == 0:
                pause()
            self._of.setdefault(sg.keep.id.int, []).append(at)
            self._of.setdefault(sg.other.id.int, []).append(at)
        self._worth_up = [sg.worth for sg in reversed(suggestions)]  # ranked by worth

    def open_worth(self, floor: float) -> int:
        """How many open pairs are worth ``floor`` or more: those before the first
        worth less (the ranking is by worth), less those gone, counted at C speed (a
        Python pass over 70,000 pairs per request doubled an answer's time)."""
        n = len(self.made) - bisect.bisect_left(self._worth_up, floor)
        return n - self._gone[:n].count(1)

    def __iter__(self) -> Iterator[Suggestion]:
        """The open pairs, strongest first."""
        gone, made = self._gone, self.made
        return (made[at] for at in range(self._first, len(made)) if not gone[at])

    def of(self, person: int) -> list[Suggestion]:
        """The open pairs of ``person`` (its UUID's int), strongest first."""
        return list(self.iter_of(person))

    def iter_of(self, person: int) -> Iterator[Suggestion]:
        """:meth:`of`, as they are read (a screen reads a person's first few)."""
        gone, made = self._gone, self.made
        return (made[at] for at in self._of.get(person, ()) if not gone[at])

    def drop(self, persons: set[int], settled: Callable[[Suggestion], bool]) -> None:
        """Drop the open pairs ``settled`` says an answer settled, all of them pairs of
        ``persons``."""
        for person in persons:
            for at in self._of.get(person, ()):
                if not self._gone[at] and settled(self.made[at]):
                    self._gone[at] = 1
                    self.left -= 1
        while self._first < len(self.made) and self._gone[self._first]:
            self._first += 1


@dataclass(frozen=True)
class Waiting:
    """The pairs still to ask about: a ranking's open pairs less those skipped."""

    pairs: OpenPairs
    skipped: set[frozenset[uuid.UUID]]

    def _asked(self, s: Suggestion) -> bool:
        return not self.skipped or frozenset((s.keep.id, s.other.id)) not in self.skipped

    def __iter__(self) -> Iterator[Suggestion]:
        """The pairs to ask about, strongest first."""
        return (s for s in self.pairs if self._asked(s))

    def likely(self) -> Iterator[Suggestion]:
        """The pairs worth a look (:func:`worth_a_look`), strongest first: those before
        the first that is not (the ranking is by worth)."""
        return itertools.takewhile(worth_a_look, self)

    def iter_of(self, person: int) -> Iterator[Suggestion]:
        """``person``'s (its UUID's int), strongest first, as they are read."""
        return (s for s in self.pairs.iter_of(person) if self._asked(s))

    def __len__(self) -> int:
        return self.pairs.left - len(self._skipped_open())

    def likely_left(self) -> int:
        """How many pairs worth a look are left (:meth:`likely`, counted)."""
        return self.pairs.open_worth(MIN_WORTH) - sum(
            worth_a_look(s) for s in self._skipped_open())

    def _skipped_open(self) -> list[Suggestion]:
        """The open pairs skipped."""
        found = []
        for pair in self.skipped:
            one, two = tuple(pair)
            found += [s for s in self.pairs.of(one.int)
                      if two.int in (s.keep.id.int, s.other.id.int)][:1]
        return found


@dataclass(frozen=True)
class Ranking:
    pack: int
    stamp: tuple[int, int]  # the library as it was ranked (library_stamp)
    pairs: OpenPairs
    covered: int | None = None  # a first ranking: of the persons with most faces, so many
    sampled: bool = False  # a first ranking read a sample of the largest persons' faces

    @property
    def suggestions(self) -> list[Suggestion]:
        """The open pairs, strongest first."""
        return list(self.pairs)


def rank(conn: psycopg.Connection, pack_name: str | None, min_score: float, *,
         first: bool = False) -> Ranking:
    """The pack's merge suggestions less the pairs decisions keep apart, as the library
    is now (the largest persons alone, a sample of their faces, when ``first``:
    ``FIRST_PASS_FACES``); ``covered`` is None when it holds the whole pack."""
    stamp = library_stamp(conn)
    evidence = load_evidence(conn, pack_name, first=(
        (FIRST_PASS_FACES, FIRST_PASS_PERSONS) if first else None))
    conflicted = set(person_conflicts(conn, evidence.pack.id))
    ranked = [s for s in merge_suggestions(conn, evidence, None, min_score)
              if pair_of(s) not in conflicted]
    opened = OpenPairs(ranked)  # (its index made before the lock an answer waits on)
    return Ranking(evidence.pack.id, stamp, opened,
                   None if evidence.complete else len(evidence.persons), evidence.sampled)

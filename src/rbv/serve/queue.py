"""The "is this the same person?" queue of ``rbv serve``: merge suggestions (the ones
``rbv persons suggest`` ranks) one pair, one grid or one page of pairs at a time, and the
answers to them.

The ranking is made in the background and kept (``rbv.serve.ranker``). While a fresh
ranking is being made after persons changed elsewhere (a command, ``rbv cluster`` from
cron), the kept one is shown, less the pairs whose persons are gone, merged, hidden or
marked as different people since, and the page says so. Pairs a user marked as
different people are never offered again; skipped pairs are left out for the life of
the server.

Every answer ("which of these are X?", "same person?") is refused or made by the rules
of ``rbv.jobs.persons.answers``, kept with the edit it makes, with the features its pairs
had when shown, and teaches the scores (``rbv.jobs.persons.evidence.learned_odds``):
after an answer the ranking is made again in the background, and the kept one, less the
pairs the answer settled, shows meanwhile (so the next prompt shows at once).

On a library never ranked, a first ranking of the persons with the most faces
(``rbv.serve.ranking.FIRST_PASS_FACES``) comes before the whole one, so the first prompt
does not wait for the whole pack (scripts/bench/bench_serve.py); the page says the ranking is
not finished until the whole one replaces it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from rbv.errors import ConfigError
from rbv.jobs.persons import answers as rules
from rbv.jobs.persons import faces as face_links
from rbv.jobs.persons import merges
from rbv.jobs.persons.evidence import Suggestion, answers_kept
from rbv.serve import screens
from rbv.serve.ranker import Ranker
from rbv.serve.ranking import OpenPairs, Ranking, Waiting, pair_of
from rbv.serve.screens import SIDE_FACES
from rbv.store.queries.persons import PersonRow, faces_of, faces_of_persons
from rbv.store.queries.review import person_conflicts
from rbv.store.queries.review_pages import live_persons
from rbv.store.server.connection import Database
from rbv.words import counted

if TYPE_CHECKING:
    import psycopg


@dataclass(frozen=True)
class Left:
    """The pairs still waiting, those on the screen included: worth a look
    (:func:`rbv.serve.ranking.worth_a_look`) and not."""

    likely: int
    unlikely: int


@dataclass(frozen=True)
class Pair:
    """A suggestion as shown: faces of each side, its best-matching face first."""

    suggestion: Suggestion
    keep_faces: list[int]
    other_faces: list[int]
    left: Left


@dataclass(frozen=True)
class Candidate:
    """A person shown in a grid: its face most like the grid's person, and that one."""

    person: PersonRow
    probability: float
    face: int
    anchor_face: int


@dataclass(frozen=True)
class Grid:
    """"Which of these are KEEP?": KEEP's faces and its likeliest other persons."""

    keep: PersonRow
    keep_faces: list[int]
    candidates: list[Candidate]
    left: Left
    rate: float  # faces it is expected to put right per second (rbv.serve.screens)


@dataclass(frozen=True)
class PairsPage:
    """"Which of these pairs are one person?": the strongest pairs still to ask about."""

    pairs: list[Suggestion]
    left: Left
    rate: float  # faces it is expected to put right per second (rbv.serve.screens)


class SuggestionQueue:
    """What a review page asks about next, from the ranking ``ranker`` holds, and the
    answers to it. ``behind``: what each background ranking is made within (``rbv
    serve`` passes :func:`rbv.serve.interpreter.behind_the_answers`); ``apart``: whole
    rankings are made in a process of their own (see :class:`Ranker`)."""

    def __init__(self, db: Database, pack_name: str | None, cache: Path | None = None,
                 min_score: float = 0.0,
                 behind: Callable[[], AbstractContextManager[None]] = nullcontext,
                 apart: Callable[[], object] | None = None) -> None:
        self.db = db
        self.skipped: set[frozenset[uuid.UUID]] = set()
        self.ranker = Ranker(db, pack_name, cache, min_score, behind, apart)

    def warm(self) -> threading.Thread:
        """Rank in the background (see :meth:`Ranker.warm`)."""
        return self.ranker.warm()

    def close(self) -> None:
        """Stop the ranking process, if any."""
        self.ranker.close()

    def _current(self, *, wait: bool) -> tuple[Ranking | None, bool]:
        return self.ranker.current(wait=wait)

    # --- what the page shows -----------------------------------------------------------
    def left(self) -> Left:
        """The pairs still waiting, worth a look and not (what a page says when it has
        none worth a look to show)."""
        return _left(self._waiting()[0])

    def next_or_waiting(self, *, unlikely: bool = False) -> tuple[Pair | None, str]:
        """The strongest suggestion worth a look (any with ``unlikely``: the person
        asked to go on) not skipped, or None (:meth:`left` says what is left), and a
        note when the ranking shown is older than the latest changes or not made yet."""
        waiting, note, fresh = self._waiting()
        left = _left(waiting)
        s = next(iter(waiting) if unlikely else waiting.likely(), None)
        if s is None:
            return None, note
        with self.db.connect() as conn:
            if not fresh:
                s = _refreshed(conn, [s])[0]
            sides = []
            for person, best in ((s.keep, s.best_faces[0]), (s.other, s.best_faces[1])):
                rest = [f.id for f in faces_of(conn, person.id, SIDE_FACES) if f.id != best]
                sides.append([best, *rest][:SIDE_FACES])
        return Pair(s, sides[0], sides[1], left), note

    def next(self, *, unlikely: bool = False) -> Pair | None:
        return self.next_or_waiting(unlikely=unlikely)[0]

    def _waiting(self) -> tuple[Waiting, str, bool]:
        """The pairs still to ask about, the note on the ranking, and whether it is
        fresh."""
        ranking, fresh = self._current(wait=False)
        if ranking is None and self.ranker.wait_first():
            ranking, fresh = self._current(wait=False)  # the first ranking, just made
        if ranking is None:
            return Waiting(OpenPairs([]), set()), (
                "Ranking the merge suggestions (1-5 s at 100,000 faces); "
                "this page reloads by itself."), False
        pairs = ranking.pairs if fresh else OpenPairs(self._still_open(ranking.pack,
                                                                       list(ranking.pairs)))
        waiting = Waiting(pairs, self.skipped)
        if ranking.covered is not None:
            note = (f"Ranking not finished: these are the likeliest among the "
                    f"{ranking.covered:,} persons with the most faces"
                    f"{' (from a sample of the largest ones’ faces)' if ranking.sampled else ''}"
                    "; the whole library "
                    "is being ranked (the next prompt comes from it once it is done).")
        else:
            note = "" if fresh else ("Persons changed since these suggestions were "
                                     "ranked; a fresh ranking is being made.")
        return waiting, note, fresh

    def next_grid(self, *, unlikely: bool = False) -> tuple[Grid | None, str]:
        """The grid that asks what is worth most per second of looking
        (:func:`rbv.serve.screens.grid_choice`: a person and its likeliest other
        persons, those worth a look alone unless ``unlikely``), or None, and a note as
        :meth:`next_or_waiting`'s."""
        waiting, note, fresh = self._waiting()
        chosen = screens.grid_choice(waiting, unlikely)
        return (None if chosen is None else self._grid(waiting, fresh, chosen)), note

    def _grid(self, waiting: Waiting, fresh: bool, chosen: screens.GridChoice) -> Grid:
        """The grid ``chosen`` as the page shows it (persons as they are now when the
        ranking is stale, the person's faces its best-matching one first)."""
        anchor = chosen.person
        candidates: list[Candidate] = []
        a = anchor.id.int
        for s in chosen.pairs:
            mine = s.keep.id.int == a
            candidates.append(Candidate(s.other if mine else s.keep, s.probability,
                                        s.best_faces[1] if mine else s.best_faces[0],
                                        s.best_faces[0] if mine else s.best_faces[1]))
        with self.db.connect() as conn:
            if not fresh:
                anchor, *rows = rules.persons_now(conn, [anchor, *(c.person for c in candidates)])
                candidates = [replace(c, person=r) for c, r in zip(candidates, rows, strict=True)]
            best = candidates[0].anchor_face
            rest = [f.id for f in faces_of(conn, anchor.id, SIDE_FACES) if f.id != best]
        return Grid(anchor, [best, *rest][:SIDE_FACES], candidates, _left(waiting),
                    chosen.rate)

    def answer_grid(self, keep: uuid.UUID, same: list[uuid.UUID], shown: list[uuid.UUID]
                    ) -> tuple[str, int | None]:
        """The persons ticked (``same``, of those ``shown``) are KEEP: they and KEEP are
        merged into the named one, else the one with most faces (as a page of pairs
        merges; a grid may be of a lone face); the others are other people (a
        "different" link between the two faces shown), so never suggested with KEEP
        again; one logged edit. The next grid comes from a fresh ranking (made in the
        background): a merged person is matched by all its faces."""
        rules.refuse_unshown(same, shown, "person")
        ranking, fresh = self._current(wait=False)
        asked: dict[uuid.UUID, tuple[Suggestion, tuple[int, int]]] = {}  # as shown
        k = keep.int
        for s in reversed(self.ranker.shown(ranking, k)):  # the current ranking's win
            other, shown_faces = (s.other.id, s.best_faces) if s.keep.id == keep \
                else (s.keep.id, s.best_faces[::-1])
            asked[other] = (s, shown_faces)
        missing = [p for p in shown if p not in asked]
        if missing:
            raise ConfigError("those suggestions are no longer current (persons changed "
                              "since); look at the next ones")
        different = [asked[p][1] for p in shown if p not in same]
        target, sources, label = keep, [], ""
        if same:
            rows = [p for s, _ in (asked[p] for p in same) for p in (s.keep, s.other)]
            if not fresh:  # persons as they are now (names, counts), as the grid shows
                with self.db.connect() as conn:
                    rows = rules.persons_now(conn, rows)
            group = rules.joined(list(zip(rows[::2], rows[1::2], strict=True)))[0]
            target, sources = group[0], group[1:]
            label = next(rules.side(r) for r in rows if r.id == target)
        moved = self._faces_of(sources)
        done = merges.answer_grid(self.db, target, list(sources),
                                  different,
                                  answers_kept([(asked[p][0], p in same) for p in shown]))
        # settled: the pairs of keep with each person shown, and every pair of the merged
        shown_ints, merged_ints = {p.int for p in shown}, {p.int for p in sources}
        apart = self._kept_apart([target] if same else [], moved)

        def settled(t: Suggestion) -> bool:
            one, two = t.keep.id.int, t.other.id.int
            return ((one == k and two in shown_ints) or (two == k and one in shown_ints)
                    or one in merged_ints or two in merged_ints
                    or frozenset((one, two)) in apart)

        self.ranker.forget({k} | merged_ints | {target.int}, settled, done.edit_id)
        merged = f"{len(sources)} merged into {label}" if same else "none merged"
        return (f"{merged}; {len(shown) - len(same)} marked as other people",
                done.edit_id)

    def next_screen(self, *, unlikely: bool = False) -> tuple[Grid | PairsPage | None, str]:
        """What the review page (``/review``) shows next: of the grid and the page of
        pairs, the one worth more per second (:mod:`rbv.serve.screens`) while likely
        pairs are left; past them (``unlikely``), grids, which show one face per pair
        asked (measured: scripts/README.md, review_effort.py). None when there is
        neither; a note as :meth:`next_or_waiting`'s. Both are chosen from one ranking;
        only the one shown is read from the database."""
        waiting, note, fresh = self._waiting()
        chosen = screens.grid_choice(waiting, unlikely)
        if chosen is not None and unlikely:
            return self._grid(waiting, fresh, chosen), note
        shown, rate = screens.pairs_page(waiting, unlikely)
        if shown and (chosen is None or rate > chosen.rate):
            return self._page(waiting, fresh, shown, rate), note
        return (None if chosen is None else self._grid(waiting, fresh, chosen)), note

    def next_pairs(self, *, unlikely: bool = False) -> tuple[PairsPage | None, str]:
        """The strongest suggestions not skipped, worth a look unless ``unlikely``, as
        many as are worth most per second of looking
        (:func:`rbv.serve.screens.pairs_page`), or None, and a note as
        :meth:`next_or_waiting`'s."""
        waiting, note, fresh = self._waiting()
        shown, rate = screens.pairs_page(waiting, unlikely)
        return (self._page(waiting, fresh, shown, rate) if shown else None), note

    def _page(self, waiting: Waiting, fresh: bool, shown: list[Suggestion], rate: float
              ) -> PairsPage:
        """The pairs ``shown`` as the page shows them (persons as they are now when the
        ranking is stale)."""
        if not fresh:
            with self.db.connect() as conn:
                shown = _refreshed(conn, shown)
        return PairsPage(shown, _left(waiting), rate)

    def answer_pairs(self, shown: list[tuple[uuid.UUID, uuid.UUID]],
                     same: list[tuple[uuid.UUID, uuid.UUID]]) -> tuple[str, int | None]:
        """The pairs ticked (``same``, of those ``shown``) are one person each: the
        persons they join are merged (into the named one, else the one with most
        faces); the others are other people (a "different" link between the two faces
        shown); one logged edit. Refused, changing nothing, when the ticks join two
        persons of a pair left unticked."""
        shown = list({frozenset(p): p for p in shown}.values())  # each pair once
        key = {frozenset(p) for p in same}
        rules.refuse_unshown(key, {frozenset(p) for p in shown}, "pair")
        ranking, _ = self._current(wait=False)
        asked: list[tuple[Suggestion, bool]] = []
        for one, two in shown:
            s = self._shown_pair(ranking, one, two)
            if s is None:
                raise ConfigError("those suggestions are no longer current (persons "
                                  "changed since); look at the next ones")
            asked.append((s, frozenset((one, two)) in key))
        with self.db.connect() as conn:
            rules.still_current(conn, [s for s, _ in asked])
            answer = rules.pairs_answer(conn, asked)
        moved = self._faces_of(answer.merged)
        done = merges.answer_pairs(self.db, answer.merges, answer.different,
                                   answers_kept(asked))
        shown_pairs = {frozenset((one.int, two.int)) for one, two in shown}
        merged = {p.int for p in answer.merged}
        apart = self._kept_apart(answer.keepers, moved)

        def settled(t: Suggestion) -> bool:
            one, two = t.keep.id.int, t.other.id.int
            return (frozenset((one, two)) in shown_pairs or one in merged
                    or two in merged or frozenset((one, two)) in apart)

        # a pair is found from either of its persons: one side of each is enough
        self.ranker.forget({min(pair) for pair in shown_pairs} | merged
                           | {p.int for p in answer.keepers}, settled, done.edit_id)
        return (f"{len(answer.merged)} merged; {len(answer.different)} marked as other "
                "people", done.edit_id)

    def _still_open(self, pack: int, waiting: list[Suggestion]) -> list[Suggestion]:
        """Of a stale ranking's pairs, those whose persons are still there to merge and
        not marked as different people since."""
        ids = list({p for s in waiting for p in (s.keep.id, s.other.id)})
        with self.db.connect() as conn:
            alive = live_persons(conn, ids)
            conflicted = set(person_conflicts(conn, pack))
        return [s for s in waiting if s.keep.id in alive and s.other.id in alive
                and pair_of(s) not in conflicted]

    # --- actions -----------------------------------------------------------------------
    def _kept_apart(self, keepers: list[uuid.UUID], moved: list[int]
                    ) -> set[frozenset[int]]:
        """:func:`rbv.jobs.persons.answers.kept_apart`, as the library is now."""
        if not keepers:
            return set()
        with self.db.connect() as conn:
            return rules.kept_apart(conn, keepers, moved)

    def _faces_of(self, persons: list[uuid.UUID]) -> list[int]:
        """The faces of ``persons`` now (those a merge of them will move)."""
        if not persons:
            return []
        with self.db.connect() as conn:
            return faces_of_persons(conn, persons)

    def _shown_pair(self, ranking: Ranking | None, keep: uuid.UUID, other: uuid.UUID
                    ) -> Suggestion | None:
        """The open pair of ``keep`` and ``other`` a page may show (either way round),
        or None."""
        both = {keep.int, other.int}  # one person twice is no pair: never found
        return next((s for s in self.ranker.shown(ranking, keep.int)
                     if {s.keep.id.int, s.other.id.int} == both), None)

    def _find(self, ranking: Ranking | None, keep: uuid.UUID, other: uuid.UUID
              ) -> Suggestion:
        s = self._shown_pair(ranking, keep, other)
        if s is None:
            raise ConfigError("that suggestion is no longer current (persons changed "
                              "since); look at the next one")
        with self.db.connect() as conn:
            rules.still_current(conn, [s])
        return s

    def accept(self, keep: uuid.UUID, other: uuid.UUID) -> tuple[str, int | None]:
        """Merge the pair (a logged edit, as `rbv persons merge KEEP OTHER`); returns
        what it did, in words, and its entry in the edit log."""
        s = self._find(self._current(wait=False)[0], keep, other)
        moved = self._faces_of([other])
        done = merges.merge(self.db, keep, [other],
                            answers=answers_kept([(s, True)]))
        o = other.int
        apart = self._kept_apart([keep], moved)
        self.ranker.forget({o, keep.int}, lambda t: o in (t.keep.id.int, t.other.id.int)
                           or frozenset((t.keep.id.int, t.other.id.int)) in apart, done.edit_id)
        message = (f"Merged: {counted(done.faces, 'face')} moved into "
                   f"{s.keep.name or str(done.person)[:8]}")
        return (f"{message}. {done.overrides}" if done.overrides else message), done.edit_id

    def dismiss(self, keep: uuid.UUID, other: uuid.UUID) -> tuple[str, int | None]:
        """Not the same person: their best-matching faces become a cannot-link (as
        `rbv faces different A B`), so clustering keeps them apart and the pair is not
        suggested again. Returns the message and the link's entry in the edit log."""
        s = self._find(self._current(wait=False)[0], keep, other)
        linked = face_links.link(self.db, list(s.best_faces), same=False,
                                 answers=answers_kept([(s, False)]))
        pair = (keep.int, other.int)
        self.ranker.forget({pair[0]}, lambda t: (t.keep.id.int, t.other.id.int) == pair,
                           linked.edit_id)
        return ("Marked as different people; this pair will not be suggested again",
                linked.edit_id)

    def skip(self, keep: uuid.UUID, other: uuid.UUID) -> str:
        self.skipped.add(frozenset((keep, other)))
        return "Skipped"


def _left(waiting: Waiting) -> Left:
    likely = waiting.likely_left()
    return Left(likely, len(waiting) - likely)


def _refreshed(conn: psycopg.Connection, suggestions: list[Suggestion]) -> list[Suggestion]:
    """Kept suggestions with their persons as they are now (names, counts), in one
    query; the merge keeps the named one, as ranking does."""
    rows = iter(rules.persons_now(conn, [p for s in suggestions for p in (s.keep, s.other)]))
    out = []
    for s in suggestions:
        keep, other, faces = next(rows), next(rows), s.best_faces
        if other.name and not keep.name:
            keep, other, faces = other, keep, (faces[1], faces[0])
        out.append(replace(s, keep=keep, other=other, best_faces=faces))
    return out

"""The "is this the same person?" queue of ``rbv serve``: merge suggestions (the ones
``rbv persons suggest`` ranks) one pair at a time.

Ranking reads the whole pack (1-5 s at 100k faces on two busy cores), so it runs
in the background and is kept: across this server's own edits (the pairs an edit
settles are dropped, the rest keep their place) and across restarts (in the cache
folder). While a fresh ranking is being made after persons changed elsewhere (a
command, ``rbv cluster`` from cron), the kept one is shown, less the pairs whose
persons are gone, merged, hidden or marked as different people since, and the page
says so. Pairs a user marked as different people are never offered again; skipped
pairs are left out for the life of the server.

Every answer ("which of these are X?", "same person?") is kept with the edit it makes,
with the features its pairs had when shown, and teaches the scores
(``rbv.jobs.persons.evidence.learned_odds``): after an answer the ranking is made again
in the background, and the kept one, less the pairs the answer settled, shows meanwhile
(so the next prompt shows at once); a ranking made from the library as it was before
this queue's latest answers is brought up to date by dropping the pairs they settled.

On a library never ranked, a first ranking of the persons with the most faces
(``FIRST_PASS_FACES``, a sample of the largest ones' faces) comes before the whole one, so
the first prompt does not wait for the whole pack (scripts/bench_serve.py); the page says
the ranking is not finished until the whole one replaces it.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import itertools
import json
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from rbv.cluster.joined import groups
from rbv.errors import ConfigError, RbvError
from rbv.jobs.persons import edits as editing
from rbv.jobs.persons import faces as face_links
from rbv.jobs.persons.evidence import (
    REVIEW_CANDIDATES,
    Suggestion,
    answers_kept,
    load_evidence,
    merge_suggestions,
)
from rbv.serve.private_files import private_file
from rbv.store.queries.persons import (
    PersonRow,
    faces_of,
    faces_of_persons,
    list_persons,
    persons_of_faces,
)
from rbv.store.queries.review import conflicts_of, person_conflicts, photo_mates_of
from rbv.store.queries.review_pages import changes_since, library_stamp, live_persons
from rbv.store.server.connection import Database

SIDE_FACES = 6
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
FIRST_PASS_WAIT_S = 30.0
"""How long a page waits for that first ranking before it says it is still being made (a
bound against a stuck database, not a delay: the first ranking takes a fraction of a
second)."""
CACHE_VERSION = 4
GRID = REVIEW_CANDIDATES
"""Persons asked about at once in "which of these are X?" (24): a truthful simulated
user on data/family reaches pairwise F 0.95 after 263 clicks with 16, 218 with 24 (each
person left unticked costs nothing; measured by simulation of the same ranking)."""
PAIRS_PAGE = 24
"""Pairs asked about at once in "which of these pairs are one person?" (see
scripts/README.md, review_effort.py)."""


@dataclass(frozen=True)
class Pair:
    """A suggestion as shown: faces of each side, its best-matching face first."""

    suggestion: Suggestion
    keep_faces: list[int]
    other_faces: list[int]
    left: int  # suggestions still waiting, this one included


def _pair(s: Suggestion) -> tuple[uuid.UUID, uuid.UUID]:
    """The suggestion's two persons as ``person_conflicts`` lists them (lower id first)."""
    return min(s.keep.id, s.other.id), max(s.keep.id, s.other.id)


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
    left: int  # suggestions still waiting, these included


@dataclass(frozen=True)
class PairsPage:
    """"Which of these pairs are one person?": the strongest pairs still to ask about."""

    pairs: list[Suggestion]
    left: int  # suggestions still waiting, these included


class _Open:
    """A ranking's pairs still open, found by person: an answer drops the pairs it
    settled by looking at its persons' pairs alone, and the next prompt is the first pair
    not dropped (at 100,000 faces some 70,000 pairs: a pass over them all per request,
    in Python, took longer than the rest of the answer)."""

    def __init__(self, suggestions: list[Suggestion]) -> None:
        self.made = suggestions  # as ranked
        self._gone = bytearray(len(suggestions))
        self.left = len(suggestions)
        self._first = 0  # no open pair before this position
        # ints: a UUID's == and hash are Python code, and this is every pair
        self._of: dict[int, list[int]] = {}
        for at, sg in enumerate(suggestions):
            self._of.setdefault(sg.keep.id.int, []).append(at)
            self._of.setdefault(sg.other.id.int, []).append(at)

    def __iter__(self) -> Iterator[Suggestion]:
        """The open pairs, strongest first."""
        gone, made = self._gone, self.made
        return (made[at] for at in range(self._first, len(made)) if not gone[at])

    def of(self, person: int) -> list[Suggestion]:
        """The open pairs of ``person`` (its UUID's int), strongest first."""
        return [self.made[at] for at in self._of.get(person, ()) if not self._gone[at]]

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


_paused = 0  # rankings under way in this process (each queue's, and a first one's)
_was_enabled = True  # the collector's state before the first of them
_was_interval = 0.005  # the interpreter's switch interval before the first of them
_pausing = threading.Lock()
RANKING_SWITCH_INTERVAL_S = 0.001
"""The interpreter's switch interval while rankings are made (Python's default: 5 ms).
An answer makes some 40 database round trips, each giving up the interpreter; a thread
that wants it back waits for the ranking's thread to yield it, up to the interval each
time. At 100k faces, with a ranking always running behind the answers
(scripts/bench_serve.py, pages of pairs), answer → next page p95 was 281-337 ms at
5 ms, 177-194 ms at 1 ms (runs alternated)."""


@contextlib.contextmanager
def _behind_the_answers() -> Iterator[None]:
    """A ranking made in the background without holding up the page's answers: the
    cyclic garbage collector off, and what the rankings made left out of its passes
    (``gc.freeze``) before it is on again (after the last, unless it was off before the
    first); the interpreter switched between threads every
    ``RANKING_SWITCH_INTERVAL_S``. A ranking makes some 70,000 pairs' objects at
    100,000 faces: the collector's full passes over them stopped every thread for
    13-53 ms, four times a ranking, while the page's answers waited (80-330 ms before
    rankings were left out of them at all); switched off alone, its first pass after
    took 67-97 ms. Ranking objects hold no cycles (old rankings are freed by counting
    references); cycles other threads made meanwhile are kept."""
    global _paused, _was_enabled, _was_interval
    with _pausing:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            _was_interval = sys.getswitchinterval()
            gc.disable()
            sys.setswitchinterval(min(_was_interval, RANKING_SWITCH_INTERVAL_S))
        _paused += 1
    try:
        yield
    finally:
        with _pausing:
            _paused -= 1
            if _paused == 0:
                sys.setswitchinterval(_was_interval)
                if _was_enabled:
                    gc.freeze()
                    gc.enable()


@dataclass(frozen=True)
class _Waiting:
    """The pairs still to ask about: a ranking's open pairs less those skipped."""

    pairs: _Open
    skipped: set[frozenset[uuid.UUID]]

    def _asked(self, s: Suggestion) -> bool:
        return not self.skipped or frozenset((s.keep.id, s.other.id)) not in self.skipped

    def __iter__(self) -> Iterator[Suggestion]:
        """The pairs to ask about, strongest first."""
        return (s for s in self.pairs if self._asked(s))

    def first(self) -> Suggestion | None:
        return next(iter(self), None)

    def of(self, person: int) -> list[Suggestion]:
        """``person``'s (its UUID's int), strongest first."""
        return [s for s in self.pairs.of(person) if self._asked(s)]

    def __len__(self) -> int:
        skipped = sum(1 for pair in self.skipped for one, two in [tuple(pair)]
                      if any(two.int in (s.keep.id.int, s.other.id.int)
                             for s in self.pairs.of(one.int)))
        return self.pairs.left - skipped


@dataclass(frozen=True)
class _Ranking:
    pack: int
    stamp: tuple[int, int]  # the library as it was ranked (library_stamp)
    pairs: _Open
    covered: int | None = None  # a first ranking: of the persons with most faces, so many
    sampled: bool = False  # a first ranking read a sample of the largest persons' faces

    @property
    def suggestions(self) -> list[Suggestion]:
        """The open pairs, strongest first."""
        return list(self.pairs)


class SuggestionQueue:
    def __init__(self, db: Database, pack_name: str | None, cache: Path | None = None,
                 min_score: float = 0.0) -> None:
        self.db = db
        self.pack_name = pack_name
        self.min_score = min_score
        self.cache = cache
        self.skipped: set[frozenset[uuid.UUID]] = set()
        self._lock = threading.Lock()
        self._ranker: threading.Thread | None = None
        # Whose ranking a kept one is: this database and pack (never another's).
        self._library = hashlib.sha256(f"{db.url}|{pack_name}".encode()).hexdigest()
        self._ranking = _load(cache, self._library) if cache is not None else None
        # The ranking the current one replaced: a page shown from it just before is
        # still answered as shown (its pair may be missing from the fresh one).
        self._replaced: _Ranking | None = None
        # This queue's own answers: each one's edit, and which pairs it settled (a
        # ranking read before them drops those, see _up_to_date).
        self._answers: list[tuple[int, set[int], Callable[[Suggestion], bool]]] = []
        self._relearn = False  # answers given since the last ranking began
        self._first = threading.Event()  # a ranking came (or failed) since the start
        self._writing = threading.Lock()  # held while the cache file is written
        if self._ranking is not None:
            self._first.set()

    # --- ranking ---------------------------------------------------------------------
    def _rank(self, first: bool = False) -> bool:
        """Rank (the largest persons alone, a sample of their faces, when ``first``:
        ``FIRST_PASS_FACES``); whether the ranking covers the whole pack."""
        with _behind_the_answers(), self.db.connect() as conn:
            stamp = library_stamp(conn)
            evidence = load_evidence(conn, self.pack_name, first=(
                (FIRST_PASS_FACES, FIRST_PASS_PERSONS) if first else None))
            conflicted = set(person_conflicts(conn, evidence.pack.id))
            ranked = [s for s in merge_suggestions(conn, evidence, None, self.min_score)
                      if _pair(s) not in conflicted]
            opened = _Open(ranked)  # (its index made before the lock an answer waits on)
        covered = None if evidence.complete else len(evidence.persons)
        with self._lock, self.db.connect() as conn:
            kept = self._ranking
            if covered is not None and kept is not None and kept.covered is None:
                return False  # a whole ranking came meanwhile: a first one adds nothing
            stamp = self._up_to_date(conn, opened, stamp)
            self._answers = [answer for answer in self._answers if answer[0] > stamp[0]]
            self._replaced = kept
            self._ranking = _Ranking(evidence.pack.id, stamp, opened, covered,
                                     evidence.sampled)
        self._write()  # in the ranking's own thread: kept once the ranking is made
        return covered is None

    def warm(self) -> threading.Thread:
        """Rank in the background unless a ranking is being made already (with none yet,
        a first ranking of the largest persons first)."""
        with self._lock:
            if self._ranker is not None and self._ranker.is_alive():
                return self._ranker
            first = self._ranking is None

            def rank() -> None:
                with contextlib.suppress(RbvError):  # shown when the page is asked for
                    whole = False
                    try:
                        if first:
                            whole = self._rank(first=True)
                    finally:
                        self._first.set()
                    if not whole:
                        self._rank()

            self._relearn = False
            self._ranker = threading.Thread(target=rank, daemon=True)
            self._ranker.start()
            return self._ranker

    def _current(self, *, wait: bool) -> tuple[_Ranking | None, bool]:
        """The ranking and whether it is the library's as it is now; a stale one starts
        a fresh ranking in the background (waited for when ``wait``), and so does a
        current one after this queue's answers (to learn from them)."""
        with self.db.connect() as conn:
            stamp = library_stamp(conn)
        ranking = self._ranking
        if ranking is not None and ranking.stamp == stamp and ranking.covered is None:
            if self._relearn:
                self.warm()
            return ranking, True
        ranker = self.warm()
        if wait:
            ranker.join()
            return self._current(wait=False)
        return ranking, False

    def _up_to_date(self, conn: object, pairs: _Open, stamp: tuple[int, int]
                    ) -> tuple[int, int]:
        """The stamp of a ranking read at ``stamp`` once the pairs this queue's answers
        since settled are dropped from ``pairs``: the library's now when those answers
        are all that changed it since (no other edit, no other run), else ``stamp`` (the
        ranking stays stale). Call it under the lock."""
        now = library_stamp(conn)  # type: ignore[arg-type]
        mine = sorted(edit for edit, _, _ in self._answers if edit > stamp[0])
        if changes_since(conn, stamp, now) != (mine, 0):  # type: ignore[arg-type]
            return stamp
        for edit, persons, gone in self._answers:
            if edit > stamp[0]:
                pairs.drop(persons, gone)
        return now

    def _forget(self, persons: set[int], gone: Callable[[Suggestion], bool],
                edit: int | None) -> None:
        """After this queue's own answer: drop the pairs it settled, and keep the rest of
        the ranking until a fresh one, which learns from the answer (and in which a
        merged person is matched by all its faces), is made in the background from the
        next request on. A ranking stale before the answer stays stale, and one made
        meanwhile is brought up to date (:meth:`_up_to_date`). The pairs ``gone``
        settles are all pairs of ``persons`` (UUIDs' ints); ``edit``: the answer's entry
        in the edit log."""
        with self._lock, self.db.connect() as conn:
            if self._replaced is not None:  # never answered twice from a page shown so
                self._replaced.pairs.drop(persons, gone)
            if edit is not None:
                self._answers.append((edit, persons, gone))
            if self._ranking is not None:
                self._ranking.pairs.drop(persons, gone)
                self._ranking = replace(self._ranking, stamp=self._up_to_date(
                    conn, self._ranking.pairs, self._ranking.stamp))
            self._relearn = True

    def _write(self) -> None:
        """Keep the ranking for the next start (rewritten whole: never half a file), one
        writer at a time, so a newer ranking is never overwritten by an older one. A
        ranking is written once made, in its own thread (its pairs still open then),
        never after each answer (at 100,000 faces some 70,000 pairs): a server stopped
        before the next ranking finds the kept one older than the answers, and shows it
        less the pairs they settled while it ranks afresh."""
        if self.cache is None:
            return
        with self._writing:
            with self._lock:
                ranking = self._ranking
            if ranking is None or ranking.covered is not None:
                return  # a first ranking is never kept
            _write_json(self.cache, _as_kept(self._library, ranking, list(ranking.pairs)))

    # --- what the page shows -----------------------------------------------------------
    def next_or_waiting(self) -> tuple[Pair | None, str]:
        """The strongest suggestion not skipped (or None), and a note when the ranking
        shown is older than the latest changes or not made yet."""
        waiting, note, fresh = self._waiting()
        s = waiting.first()
        if s is None:
            return None, note
        with self.db.connect() as conn:
            if not fresh:
                s = _refreshed(conn, [s])[0]
            sides = []
            for person, best in ((s.keep, s.best_faces[0]), (s.other, s.best_faces[1])):
                rest = [f.id for f in faces_of(conn, person.id, SIDE_FACES) if f.id != best]
                sides.append([best, *rest][:SIDE_FACES])
        return Pair(s, sides[0], sides[1], len(waiting)), note

    def next(self) -> Pair | None:
        return self.next_or_waiting()[0]

    def _waiting(self) -> tuple[_Waiting, str, bool]:
        """The pairs still to ask about, the note on the ranking, and whether it is
        fresh."""
        ranking, fresh = self._current(wait=False)
        if ranking is None and self._first.wait(FIRST_PASS_WAIT_S):
            ranking, fresh = self._current(wait=False)  # the first ranking, just made
        if ranking is None:
            return _Waiting(_Open([]), set()), (
                "Ranking the merge suggestions (1-5 s at 100,000 faces); "
                "this page reloads by itself."), False
        pairs = ranking.pairs if fresh else _Open(self._still_open(ranking.pack,
                                                                   list(ranking.pairs)))
        waiting = _Waiting(pairs, self.skipped)
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

    def next_grid(self) -> tuple[Grid | None, str]:
        """The person of the strongest suggestion not skipped and its ``GRID`` likeliest
        other persons (or None), and a note as :meth:`next_or_waiting`'s."""
        waiting, note, fresh = self._waiting()
        first = waiting.first()
        if first is None:
            return None, note
        anchor = first.keep
        candidates: list[Candidate] = []
        a = anchor.id.int
        for s in waiting.of(a)[:GRID]:
            mine = s.keep.id.int == a
            candidates.append(Candidate(s.other if mine else s.keep, s.probability,
                                        s.best_faces[1] if mine else s.best_faces[0],
                                        s.best_faces[0] if mine else s.best_faces[1]))
        with self.db.connect() as conn:
            if not fresh:
                anchor, *rows = _refreshed_rows(conn, [anchor, *(c.person for c in candidates)])
                candidates = [replace(c, person=r) for c, r in zip(candidates, rows, strict=True)]
            best = candidates[0].anchor_face
            rest = [f.id for f in faces_of(conn, anchor.id, SIDE_FACES) if f.id != best]
        return Grid(anchor, [best, *rest][:SIDE_FACES], candidates, len(waiting)), note

    def answer_grid(self, keep: uuid.UUID, same: list[uuid.UUID], shown: list[uuid.UUID]
                    ) -> tuple[str, int | None]:
        """The persons ticked (``same``, of those ``shown``) are KEEP: merged into it;
        the others are other people (a "different" link between the two faces shown),
        so never suggested with it again; one logged edit. The next grid comes from a
        fresh ranking (made in the background): a merged person is matched by all its
        faces."""
        if not set(same) <= set(shown):
            raise ConfigError("a person ticked was not among those shown")
        ranking, _ = self._current(wait=False)
        asked: dict[uuid.UUID, tuple[Suggestion, tuple[int, int]]] = {}  # as shown
        label = str(keep)[:8]
        k = keep.int
        for s in reversed(self._pairs_shown(ranking, k)):  # the current ranking's win
            mine, other, shown_faces = (s.keep, s.other.id, s.best_faces) \
                if s.keep.id == keep else (s.other, s.keep.id, s.best_faces[::-1])
            asked[other] = (s, shown_faces)
            label = repr(mine.name) if mine.name else label
        missing = [p for p in shown if p not in asked]
        if missing:
            raise ConfigError("those suggestions are no longer current (persons changed "
                              "since); look at the next ones")
        different = [asked[p][1] for p in shown if p not in same]
        moved = self._faces_of(same)
        done = editing.answer_grid(self.db, str(keep), [str(p) for p in same], different,
                                   answers_kept([(asked[p][0], p in same) for p in shown]))
        # settled: the pairs of keep with each person shown, and every pair of the merged
        shown_ints, same_ints = {p.int for p in shown}, {p.int for p in same}
        apart = self._kept_apart([keep] if same else [], moved)

        def settled(t: Suggestion) -> bool:
            one, two = t.keep.id.int, t.other.id.int
            return ((one == k and two in shown_ints) or (two == k and one in shown_ints)
                    or one in same_ints or two in same_ints
                    or frozenset((one, two)) in apart)

        self._forget({k} | same_ints, settled, done.edit_id)
        merged = f"{len(same)} merged into {label}" if same else "none merged"
        return (f"{merged}; {len(shown) - len(same)} marked as other people",
                done.edit_id)

    def next_pairs(self) -> tuple[PairsPage | None, str]:
        """The ``PAIRS_PAGE`` strongest suggestions not skipped (or None), and a note as
        :meth:`next_or_waiting`'s."""
        waiting, note, fresh = self._waiting()
        shown = list(itertools.islice(waiting, PAIRS_PAGE))
        if not shown:
            return None, note
        if not fresh:
            with self.db.connect() as conn:
                shown = _refreshed(conn, shown)
        return PairsPage(shown, len(waiting)), note

    def answer_pairs(self, shown: list[tuple[uuid.UUID, uuid.UUID]],
                     same: list[tuple[uuid.UUID, uuid.UUID]]) -> tuple[str, int | None]:
        """The pairs ticked (``same``, of those ``shown``) are one person each: the
        persons they join are merged (into the named one, else the one with most
        faces); the others are other people (a "different" link between the two faces
        shown); one logged edit. Refused, changing nothing, when the ticks join two
        persons of a pair left unticked."""
        shown = list({frozenset(p): p for p in shown}.values())  # each pair once
        key = {frozenset(p) for p in same}
        if not key <= {frozenset(p) for p in shown}:
            raise ConfigError("a pair ticked was not among those shown")
        ranking, _ = self._current(wait=False)
        asked: list[tuple[Suggestion, bool]] = []
        for one, two in shown:
            s = self._shown_pair(ranking, one, two)
            if s is None:
                raise ConfigError("those suggestions are no longer current (persons "
                                  "changed since); look at the next ones")
            asked.append((s, frozenset((one, two)) in key))
        self._still_current([s for s, _ in asked])
        ticked = [p for s, yes in asked if yes for p in (s.keep, s.other)]
        rows: dict[uuid.UUID, PersonRow] = {}
        if ticked:
            with self.db.connect() as conn:  # names and sizes as they are now
                rows = {r.id: r for r in _refreshed_rows(conn, ticked)}
        groups = _joined([(rows[s.keep.id], rows[s.other.id]) for s, yes in asked if yes])
        group_of = {p: i for i, members in enumerate(groups) for p in members}
        for s, yes in asked:
            g = group_of.get(s.keep.id)
            if not yes and g is not None and g == group_of.get(s.other.id):
                raise ConfigError(
                    f"the pairs ticked make {_side(s.keep)} and {_side(s.other)} one "
                    "person, but that pair is not ticked; tick it, or untick a pair "
                    "that joins them")
        merges = [(str(members[0]), [str(p) for p in members[1:]]) for members in groups]
        different = [s.best_faces for s, yes in asked if not yes]
        moved = self._faces_of([p for members in groups for p in members[1:]])
        done = editing.answer_pairs(self.db, merges, different, answers_kept(asked))
        shown_pairs = {frozenset((one.int, two.int)) for one, two in shown}
        merged = {p.int for members in groups for p in members[1:]}
        apart = self._kept_apart([members[0] for members in groups], moved)

        def settled(t: Suggestion) -> bool:
            one, two = t.keep.id.int, t.other.id.int
            return (frozenset((one, two)) in shown_pairs or one in merged
                    or two in merged or frozenset((one, two)) in apart)

        # a pair is found from either of its persons: one side of each is enough
        self._forget({min(pair) for pair in shown_pairs} | merged
                     | {members[0].int for members in groups}, settled, done.edit_id)
        joined = sum(len(members) - 1 for members in groups)
        return (f"{joined} merged; {len(different)} marked as other people",
                done.edit_id)

    def _still_open(self, pack: int, waiting: list[Suggestion]) -> list[Suggestion]:
        """Of a stale ranking's pairs, those whose persons are still there to merge and
        not marked as different people since."""
        ids = list({p for s in waiting for p in (s.keep.id, s.other.id)})
        with self.db.connect() as conn:
            alive = live_persons(conn, ids)
            conflicted = set(person_conflicts(conn, pack))
        return [s for s in waiting if s.keep.id in alive and s.other.id in alive
                and _pair(s) not in conflicted]

    # --- actions -----------------------------------------------------------------------
    def _pairs_shown(self, ranking: _Ranking | None, person: int) -> list[Suggestion]:
        """The open pairs of ``person`` (its UUID's int) that a page may show: those of
        ``ranking`` (the current one), then those of the ranking it replaced, from which
        a page served a moment before the swap was made."""
        with self._lock:
            replaced = self._replaced
        return [s for r in (ranking, replaced) if r is not None for s in r.pairs.of(person)]

    def _kept_apart(self, keepers: list[uuid.UUID], moved: list[int]
                    ) -> set[frozenset[int]]:
        """The pairs of ``keepers`` (persons an answer merged others into: their faces
        ``moved``) that can no longer be merged: the merge gave them faces that earlier
        decisions keep apart from another person's, or faces of a photo another person
        is in, so a pair of theirs ranked before it would be refused."""
        if not keepers:
            return set()
        with self.db.connect() as conn:
            found = conflicts_of(conn, moved, keepers) | photo_mates_of(conn, moved)
        return {frozenset((a.int, b.int)) for a, b in found}

    def _faces_of(self, persons: list[uuid.UUID]) -> list[int]:
        """The faces of ``persons`` now (those a merge of them will move)."""
        if not persons:
            return []
        with self.db.connect() as conn:
            return faces_of_persons(conn, persons)

    def _shown_pair(self, ranking: _Ranking | None, keep: uuid.UUID, other: uuid.UUID
                    ) -> Suggestion | None:
        """The open pair of ``keep`` and ``other`` a page may show (either way round),
        or None."""
        both = {keep.int, other.int}  # one person twice is no pair: never found
        return next((s for s in self._pairs_shown(ranking, keep.int)
                     if {s.keep.id.int, s.other.id.int} == both), None)

    def _find(self, ranking: _Ranking | None, keep: uuid.UUID, other: uuid.UUID
              ) -> Suggestion:
        s = self._shown_pair(ranking, keep, other)
        if s is None:
            raise ConfigError("that suggestion is no longer current (persons changed "
                              "since); look at the next one")
        self._still_current([s])
        return s

    def _still_current(self, asked: list[Suggestion]) -> None:
        """Refuse, changing nothing, when the two faces a pair shows are no longer in
        its two persons: persons changed elsewhere since it was ranked (`rbv persons
        merge` in a terminal made the pair one person, whose faces an answer "different"
        would then pull apart)."""
        faces = [f for s in asked for f in s.best_faces]
        with self.db.connect() as conn:
            now = persons_of_faces(conn, faces)
        for s in asked:
            (a, b), (keep, other) = s.best_faces, (s.keep.id, s.other.id)
            if now.get(a) != keep or now.get(b) != other:
                raise ConfigError(f"{_side(s.keep)} and {_side(s.other)} changed since "
                                  "this pair was shown (persons were edited elsewhere); "
                                  "reload the page")

    def accept(self, keep: uuid.UUID, other: uuid.UUID) -> tuple[str, int | None]:
        """Merge the pair (a logged edit, as `rbv persons merge KEEP OTHER`); returns
        what it did, in words, and its entry in the edit log."""
        s = self._find(self._current(wait=False)[0], keep, other)
        moved = self._faces_of([other])
        done = editing.merge(self.db, str(keep), [str(other)],
                             answers=answers_kept([(s, True)]))
        o = other.int
        apart = self._kept_apart([keep], moved)
        self._forget({o, keep.int}, lambda t: o in (t.keep.id.int, t.other.id.int)
                     or frozenset((t.keep.id.int, t.other.id.int)) in apart, done.edit_id)
        message = f"Merged: {done.faces:,} face(s) moved into {s.keep.name or str(done.person)[:8]}"
        return (f"{message}. {done.overrides}" if done.overrides else message), done.edit_id

    def dismiss(self, keep: uuid.UUID, other: uuid.UUID) -> tuple[str, int | None]:
        """Not the same person: their best-matching faces become a cannot-link (as
        `rbv faces different A B`), so clustering keeps them apart and the pair is not
        suggested again. Returns the message and the link's entry in the edit log."""
        s = self._find(self._current(wait=False)[0], keep, other)
        linked = face_links.link(self.db, list(s.best_faces), same=False,
                                 answers=answers_kept([(s, False)]))
        pair = (keep.int, other.int)
        self._forget({pair[0]}, lambda t: (t.keep.id.int, t.other.id.int) == pair,
                     linked.edit_id)
        return ("Marked as different people; this pair will not be suggested again",
                linked.edit_id)

    def skip(self, keep: uuid.UUID, other: uuid.UUID) -> str:
        self.skipped.add(frozenset((keep, other)))
        return "Skipped"


def _refreshed_rows(conn: object, rows: list[PersonRow]) -> list[PersonRow]:
    """Kept persons as they are now (names, counts), in one query; as kept where gone."""
    found = {p.id: p for p in list_persons(conn, include_hidden=True,  # type: ignore[arg-type]
                                           persons=[r.id for r in rows])}
    return [found.get(r.id, r) for r in rows]


def _side(person: PersonRow) -> str:
    return repr(person.name) if person.name else str(person.id)[:8]


def _joined(pairs: list[tuple[PersonRow, PersonRow]]) -> list[list[uuid.UUID]]:
    """The persons the pairs join, each group's keeper first: a named person, else the
    one with most faces (as ranking keeps)."""
    rows = {row.id: row for pair in pairs for row in pair}
    joined = groups((one.id, two.id) for one, two in pairs)
    return [[r.id for r in sorted((rows[p] for p in members),
                                  key=lambda r: (not r.name, -r.faces))]
            for members in joined]


def _refreshed(conn: object, suggestions: list[Suggestion]) -> list[Suggestion]:
    """Kept suggestions with their persons as they are now (names, counts), in one
    query; the merge keeps the named one, as ranking does."""
    rows = iter(_refreshed_rows(conn, [p for s in suggestions for p in (s.keep, s.other)]))
    out = []
    for s in suggestions:
        keep, other, faces = next(rows), next(rows), s.best_faces
        if other.name and not keep.name:
            keep, other, faces = other, keep, (faces[1], faces[0])
        out.append(replace(s, keep=keep, other=other, best_faces=faces))
    return out


def _as_kept(library: str, ranking: _Ranking, suggestions: list[Suggestion]
             ) -> dict[str, object]:
    """A ranking as the cache keeps it: each person once, each pair a row of plain values
    (70,000 pairs at 100,000 faces: a third of the size, and quick to read back)."""
    persons: dict[uuid.UUID, int] = {}
    rows = []
    for s in suggestions:
        sides = [persons.setdefault(p.id, len(persons)) for p in (s.keep, s.other)]
        rows.append([s.rank, *sides, s.probability, s.log10_chance, s.why, *s.best_faces,
                     list(s.features), s.worth])
    every = {p.id: p for s in suggestions for p in (s.keep, s.other)}
    return {"version": CACHE_VERSION, "library": library, "pack": ranking.pack,
            "stamp": list(ranking.stamp),
            "persons": [[str(p), every[p].pack, every[p].name, every[p].faces,
                         every[p].images, every[p].hidden, every[p].source] for p in persons],
            "suggestions": rows}


def _write_json(path: Path, kept: dict[str, object], piece: int = 1_000) -> None:
    """``kept`` as JSON (whole or not at all, its user's alone: it names every person),
    its lists dumped a piece at a time: one ``json.dumps`` of 70,000 pairs holds the
    interpreter for a second or more, and the page's requests wait on it (answer -> next
    prompt p95 1.4 s at 100,000 faces)."""
    with private_file(path) as raw, io.TextIOWrapper(raw, encoding="utf-8") as f:
        f.write("{")
        for n, (key, value) in enumerate(kept.items()):
            f.write(("," if n else "") + json.dumps(key) + ":")
            if not isinstance(value, list):
                f.write(json.dumps(value))
                continue
            f.write("[")
            for at in range(0, len(value), piece):
                f.write(("," if at else "") + json.dumps(value[at:at + piece])[1:-1])
            f.write("]")
        f.write("}")


def _load(cache: Path, library: str) -> _Ranking | None:
    """The ranking a previous server kept, or None (missing, unreadable, older format:
    ranked again)."""
    try:
        data = json.loads(cache.read_text())
        if data.get("version") != CACHE_VERSION or data.get("library") != library:
            return None
        persons = [PersonRow(uuid.UUID(p[0]), str(p[1]), p[2], int(p[3]), int(p[4]),
                             bool(p[5]), str(p[6])) for p in data["persons"]]
        suggestions = [
            Suggestion(int(rank), persons[keep], persons[other], float(probability),
                       float(log10_chance), str(why), (int(fa), int(fb)),
                       tuple(float(v) for v in features), float(worth))
            for rank, keep, other, probability, log10_chance, why, fa, fb, features, worth
            in data["suggestions"]]
        return _Ranking(int(data["pack"]), (int(data["stamp"][0]), int(data["stamp"][1])),
                        _Open(suggestions))
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None

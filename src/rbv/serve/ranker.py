"""The review queue's ranking, made in the background and kept in step with the queue's
answers.

Ranking reads the whole pack (1-5 s at 100k faces on two busy cores), so it runs on a
thread of its own, one at a time (``rbv serve`` makes the whole rankings in a process
of its own, :mod:`rbv.serve.ranking_process`, which that thread waits on), and the
ranking it made is kept: across the queue's own
answers (the pairs an answer settles are dropped, the rest keep their place) and across
restarts (in the cache folder). After an answer the ranking is made again, learning from
it; one made from the library as it was before the queue's latest answers is brought up
to date by dropping the pairs they settled. On a library never ranked, a first ranking of
the persons with the most faces comes before the whole one."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rbv.errors import RbvError
from rbv.jobs.persons.evidence import Suggestion
from rbv.serve import kept_ranking
from rbv.serve.ranking import OpenPairs, Ranking, rank
from rbv.serve.ranking_process import RankingFailed, RankingProcess
from rbv.store.queries.review_pages import changes_since, library_stamp
from rbv.store.server.connection import Database

if TYPE_CHECKING:
    import psycopg

FIRST_PASS_WAIT_S = 30.0
"""How long a page waits for that first ranking before it says it is still being made (a
bound against a stuck database, not a delay: the first ranking takes a fraction of a
second)."""


class Ranker:
    """The ranking a queue shows (``ranking``), the one it replaced (``replaced``: a page
    shown from it just before is still answered as shown), and the thread that makes the
    next. ``behind``: what each ranking is made within (``rbv serve`` passes
    :func:`rbv.serve.interpreter.behind_the_answers`)."""

    def __init__(self, db: Database, pack_name: str | None, cache: Path | None,
                 min_score: float,
                 behind: Callable[[], AbstractContextManager[None]] = contextlib.nullcontext,
                 apart: Callable[[], object] | None = None) -> None:
        """``apart``: whole rankings are made in a process of their own
        (:mod:`rbv.serve.ranking_process`) and read back with ``apart()`` between their
        pieces (``rbv serve`` waits there for the requests under way)."""
        self.db = db
        self.pack_name = pack_name
        self.cache = cache
        self.min_score = min_score
        self._behind = behind
        self._library = kept_ranking.library_of(db.url, pack_name)
        self.ranking = kept_ranking.load(cache, self._library) if cache is not None else None
        self.replaced: Ranking | None = None
        # The queue's own answers: each one's edit, and which pairs it settled (a
        # ranking read before them drops those, see _up_to_date).
        self._answers: list[tuple[int, set[int], Callable[[Suggestion], bool]]] = []
        self._relearn = False  # answers given since the last ranking began
        self._first = threading.Event()  # a ranking came (or failed) since the start
        self._lock = threading.Lock()
        self._writing = threading.Lock()  # held while the cache file is written
        self.thread: threading.Thread | None = None
        if self.ranking is not None:
            self._first.set()
        self._pause = apart or (lambda: None)
        self.process = None if apart is None else RankingProcess(cache, self._library)
        if self.process is not None:
            self.process.start()  # (its imports while the first ranking is made here)

    def _made(self, first: bool) -> tuple[Ranking | None, bool]:
        """A ranking made now, and whether it was made here: a whole one in the ranking
        process when there is one (which keeps it), else (and when it made none) here;
        None when the process was closed."""
        if self.process is not None and not first:
            try:
                with self._behind():
                    return self.process.rank(self.db.url, self.pack_name, self.min_score,
                                             self._pause), False
            except RankingFailed:
                if self.process.closed:
                    return None, False
        with self._behind(), self.db.connect() as conn:
            return rank(conn, self.pack_name, self.min_score, first=first), True

    def _rank(self, first: bool = False) -> bool:
        """Rank (the largest persons alone, a sample of their faces, when ``first``);
        whether the ranking covers the whole pack."""
        made, here = self._made(first)
        if made is None:
            return True  # closed: no ranking to wait for
        with self._lock, self.db.connect() as conn:
            kept = self.ranking
            if made.covered is not None and kept is not None and kept.covered is None:
                return False  # a whole ranking came meanwhile: a first one adds nothing
            stamp = self._up_to_date(conn, made.pairs, made.stamp)
            self._answers = [answer for answer in self._answers if answer[0] > stamp[0]]
            self.replaced = kept
            self.ranking = replace(made, stamp=stamp)
        if here:  # (the ranking process keeps the rankings it makes)
            self.write()  # in the ranking's own thread: kept once the ranking is made
        return made.covered is None

    def warm(self) -> threading.Thread:
        """Rank in the background unless a ranking is being made already (with none yet,
        a first ranking of the largest persons first)."""
        with self._lock:
            if self.thread is not None and self.thread.is_alive():
                return self.thread
            first = self.ranking is None

            def run() -> None:
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
            self.thread = threading.Thread(target=run, daemon=True)
            self.thread.start()
            return self.thread

    def wait_first(self) -> bool:
        """Wait (``FIRST_PASS_WAIT_S`` at most) for a first ranking; whether one came."""
        return self._first.wait(FIRST_PASS_WAIT_S)

    def current(self, *, wait: bool) -> tuple[Ranking | None, bool]:
        """The ranking and whether it is the library's as it is now; a stale one starts
        a fresh ranking in the background (waited for when ``wait``), and so does a
        current one after the queue's answers (to learn from them)."""
        with self.db.connect() as conn:
            stamp = library_stamp(conn)
        ranking = self.ranking
        if ranking is not None and ranking.stamp == stamp and ranking.covered is None:
            if self._relearn:
                self.warm()
            return ranking, True
        ranker = self.warm()
        if wait:
            ranker.join()
            return self.current(wait=False)
        return ranking, False

    def _up_to_date(self, conn: psycopg.Connection, pairs: OpenPairs,
                    stamp: tuple[int, int]) -> tuple[int, int]:
        """The stamp of a ranking read at ``stamp`` once the pairs the queue's answers
        since settled are dropped from ``pairs``: the library's now when those answers
        are all that changed it since (no other edit, no other run), else ``stamp`` (the
        ranking stays stale). Call it under the lock."""
        now = library_stamp(conn)
        mine = sorted(edit for edit, _, _ in self._answers if edit > stamp[0])
        if changes_since(conn, stamp, now) != (mine, 0):
            return stamp
        for edit, persons, gone in self._answers:
            if edit > stamp[0]:
                pairs.drop(persons, gone)
        return now

    def shown(self, ranking: Ranking | None, person: int) -> list[Suggestion]:
        """The open pairs of ``person`` (its UUID's int) that a page may show: those of
        ``ranking`` (the current one), then those of the ranking it replaced, from which
        a page served a moment before the swap was made."""
        with self._lock:
            replaced = self.replaced
        return [s for r in (ranking, replaced) if r is not None for s in r.pairs.of(person)]

    def forget(self, persons: set[int], gone: Callable[[Suggestion], bool],
               edit: int | None) -> None:
        """After the queue's own answer: drop the pairs it settled, and keep the rest of
        the ranking until a fresh one, which learns from the answer (and in which a
        merged person is matched by all its faces), is made in the background from the
        next request on. A ranking stale before the answer stays stale, and one made
        meanwhile is brought up to date (:meth:`_up_to_date`). The pairs ``gone``
        settles are all pairs of ``persons`` (UUIDs' ints); ``edit``: the answer's entry
        in the edit log."""
        with self._lock, self.db.connect() as conn:
            if self.replaced is not None:  # never answered twice from a page shown so
                self.replaced.pairs.drop(persons, gone)
            if edit is not None:
                self._answers.append((edit, persons, gone))
            if self.ranking is not None:
                self.ranking.pairs.drop(persons, gone)
                self.ranking = replace(self.ranking, stamp=self._up_to_date(
                    conn, self.ranking.pairs, self.ranking.stamp))
            self._relearn = True

    def close(self) -> None:
        """Stop the ranking process, if any (a ranking under way there is dropped)."""
        if self.process is not None:
            self.process.close()

    def write(self) -> None:
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
                ranking = self.ranking
            if ranking is None or ranking.covered is not None:
                return  # a first ranking is never kept
            kept_ranking.keep(self.cache, self._library, ranking)

"""The interpreter-wide settings ``rbv serve`` makes while a ranking is made behind the
page's answers (its server passes :func:`behind_the_answers` to the review queue; a queue
made elsewhere, a test's or a script's, changes nothing of the interpreter's). Each was
measured with scripts/bench/bench_serve.py at 100,000 faces (scripts/README.md, bench_serve.py;
docs/review.md)."""

from __future__ import annotations

import contextlib
import gc
import sys
import threading
from collections.abc import Iterator

RANKING_SWITCH_INTERVAL_S = 0.001
"""The interpreter's switch interval while rankings are made (Python's default: 5 ms).
An answer makes some 40 database round trips, each giving up the interpreter; a thread
that wants it back waits for the ranking's thread to yield it, up to the interval each
time. At 100k faces, with a ranking always running behind the answers
(scripts/bench/bench_serve.py, pages of pairs), answer → next page p95 was 281-337 ms at
5 ms, 177-194 ms at 1 ms (runs alternated)."""

_paused = 0  # rankings under way in this process
_was_enabled = True  # the collector's state before the first of them
_was_interval = 0.005  # the interpreter's switch interval before the first of them
_pausing = threading.Lock()


@contextlib.contextmanager
def behind_the_answers() -> Iterator[None]:
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


ANSWERS_FIRST_MAX_S = 0.25
"""How long work behind the answers waits at most, between two of its pieces, for the
requests under way to be answered (a bound, so that a page polled without pause never
holds a ranking back for good)."""


class RequestsUnderWay:
    """The requests a server is answering, counted by the server, for work behind the
    answers (a ranking read back from its process, :mod:`rbv.serve.ranking_process`) to
    wait on between its pieces: an answer never waits on it for the interpreter."""

    def __init__(self) -> None:
        self._count = 0
        self._none = threading.Condition()

    @contextlib.contextmanager
    def answering(self) -> Iterator[None]:
        """One request under way while in this block."""
        with self._none:
            self._count += 1
        try:
            yield
        finally:
            with self._none:
                self._count -= 1
                if self._count == 0:
                    self._none.notify_all()

    def wait(self) -> bool:
        """Wait until no request is under way (``ANSWERS_FIRST_MAX_S`` at most);
        whether none is."""
        with self._none:
            return self._none.wait_for(lambda: self._count == 0, ANSWERS_FIRST_MAX_S)

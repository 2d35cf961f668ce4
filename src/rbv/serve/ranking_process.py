"""Whole rankings made in a process of their own, for ``rbv serve``: a ranking reads the
whole pack and ranks it in Python and numpy (4-5 s at 100,000 faces), and made in a
thread of the server it held the interpreter while the page's answers waited for it
(answer -> next prompt p95 136-295 ms at 100,000 faces, with rankings always running
behind the answers; scripts/bench/bench_serve.py). In a process of its own, run at a
lower priority (``NICENESS``), it takes nothing from the server's interpreter and yields
the cores to the answers and the database; the server reads back the pairs it made a
piece at a time (``rbv.serve.ranking.PIECE``), the requests under way going first
between pieces. The process keeps the ranking for the next start (in the cache folder,
as the server did). A process that cannot rank (ended, unable to start, the database
away) is no refusal: the ranking is made in the server as before (and every one after
it, once the process ended)."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

from rbv.serve import kept_ranking
from rbv.serve.ranking import PIECE, OpenPairs, Ranking, rank
from rbv.store.server.connection import Database

NICENESS = 10
"""How much lower the ranking process's priority is than the server's (``nice``):
on two busy cores the answers and the database come first."""


class RankingFailed(Exception):
    """The process made no ranking (gone, closed, or its ranking raised)."""


class RankingProcess:
    """One process that makes whole rankings, one at a time, for ``library`` (kept in
    ``cache`` when given)."""

    def __init__(self, cache: Path | None, library: str) -> None:
        self._cache = cache
        self._library = library
        self._process: multiprocessing.process.BaseProcess | None = None
        self._pipe: Connection | None = None
        self._lock = threading.Lock()  # one ranking at a time
        self.closed = False  # by the server: no ranking is wanted any more
        self.gone = False  # the process ended on its own: the server ranks itself

    def start(self) -> None:
        """Start the process now (its imports take a second), unless it runs."""
        with self._lock:
            self._started()

    def _started(self) -> Connection:
        if self.closed or self.gone:
            raise RankingFailed("closed" if self.closed else "gone")
        if self._process is None or self._pipe is None:
            context = multiprocessing.get_context("spawn")  # no threads' state copied
            ours, theirs = context.Pipe()
            self._process = context.Process(target=_serve, daemon=True,
                                            args=(theirs, self._cache, self._library),
                                            name="rbv serve ranking")
            self._process.start()
            pid = self._process.pid
            if pid is not None:  # (never 0: that would be this process)
                with contextlib.suppress(OSError):  # lower from its first import on
                    os.setpriority(os.PRIO_PROCESS, pid,
                                   os.getpriority(os.PRIO_PROCESS, 0) + NICENESS)
            theirs.close()
            self._pipe = ours
        return self._pipe

    def rank(self, url: str, pack_name: str | None, min_score: float,
             pause: Callable[[], object]) -> Ranking:
        """The pack's whole ranking (as :func:`rbv.serve.ranking.rank` makes it) from
        the database at ``url``, read back with ``pause()`` between pieces. Raises
        :class:`RankingFailed` when the process made none."""
        with self._lock:
            pipe = self._started()
            try:
                pipe.send((url, pack_name, min_score))
                reply = pipe.recv()
            except (OSError, EOFError) as exc:  # (a process that cannot start, too)
                self.gone = True
                self._stop()
                raise RankingFailed(str(exc) or "the ranking process ended") from None
        if reply[0] != "made":
            raise RankingFailed(reply[1])
        _, pack, stamp, persons, pieces = reply
        rows = kept_ranking.person_rows(persons)
        suggestions = []
        for piece in pieces:
            pause()
            suggestions += kept_ranking.from_rows(rows, pickle.loads(piece))
        return Ranking(pack, stamp, OpenPairs(suggestions, pause))

    def close(self) -> None:
        """Stop the process (a ranking under way is dropped)."""
        self.closed = True
        self._stop()

    def _stop(self) -> None:
        """End the process, then close its pipe (a ranking waiting on it reads its
        end)."""
        process, self._process = self._process, None
        if process is not None:
            process.terminate()
            process.join()
        pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()


def _serve(pipe: Connection, cache: Path | None, library: str) -> None:
    """The process: rank each pack asked for, send the pairs back in pieces (plain values,
    :func:`rbv.serve.kept_ranking.as_rows`), then keep the ranking in ``cache``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    while True:
        try:
            url, pack_name, min_score = pipe.recv()
        except (EOFError, OSError):
            return  # the server is gone
        try:
            with Database(url, "the library's database").connect() as conn:
                made = rank(conn, pack_name, min_score)
        except Exception as exc:  # the server ranks itself (and words what goes wrong)
            pipe.send(("failed", f"{type(exc).__name__}: {exc}"))
            continue
        if cache is not None:  # before it is sent: a server closed once it has it
            kept_ranking.keep(cache, library, made)  # finds it kept when it starts again
        persons, rows = kept_ranking.as_rows(made.pairs.made)
        pipe.send(("made", made.pack, made.stamp, persons,
                   [pickle.dumps(rows[at:at + PIECE], pickle.HIGHEST_PROTOCOL)
                    for at in range(0, len(rows), PIECE)]))

"""The "is this the same person?" queue of ``rbv serve``: merge suggestions (the ones
``rbv persons suggest`` ranks) one pair at a time.

The ranking reads the whole pack, so it is kept until persons change (a logged edit or
a finished run, such as ``rbv cluster`` from cron). Pairs a user marked as different
people (a cannot-link or a "not this person" between them) are never offered again;
skipped pairs are left out for the life of the server.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from rbv.errors import ConfigError, RbvError
from rbv.jobs import faces as face_links
from rbv.jobs import persons as editing
from rbv.jobs.person_evidence import (
    DEFAULT_MIN_SCORE,
    Suggestion,
    load_evidence,
    merge_suggestions,
)
from rbv.store.connection import Database
from rbv.store.people import library_stamp
from rbv.store.persons import faces_of
from rbv.store.review import person_conflicts

SIDE_FACES = 6


@dataclass(frozen=True)
class Pair:
    """A suggestion as shown: faces of each side, its best-matching face first."""

    suggestion: Suggestion
    keep_faces: list[int]
    other_faces: list[int]
    left: int  # suggestions still waiting, this one included

    @property
    def key(self) -> str:
        return f"{self.suggestion.keep.id}:{self.suggestion.other.id}"


class SuggestionQueue:
    def __init__(self, db: Database, pack_name: str | None,
                 min_score: float = DEFAULT_MIN_SCORE) -> None:
        self.db = db
        self.pack_name = pack_name
        self.min_score = min_score
        self.skipped: set[frozenset[uuid.UUID]] = set()
        self._stamp: tuple[int, int] | None = None
        self._ranked: list[Suggestion] = []
        self._lock = threading.Lock()

    def _current(self) -> list[Suggestion]:
        with self._lock, self.db.connect() as conn:
            stamp = library_stamp(conn)
            if stamp != self._stamp:
                evidence = load_evidence(conn, self.pack_name)
                conflicted = set(person_conflicts(conn, evidence.pack.id))
                self._ranked = [
                    s for s in merge_suggestions(conn, evidence, None, self.min_score)
                    if (min(s.keep.id, s.other.id), max(s.keep.id, s.other.id))
                    not in conflicted]
                self._stamp = stamp
            return list(self._ranked)

    def _forget(self, gone: Callable[[Suggestion], bool]) -> None:
        """After this queue's own edit: drop the pairs it settled, and keep the rest of
        the ranking rather than reading the whole pack again (pairs with the kept person
        keep their old score until something else changes persons)."""
        with self._lock, self.db.connect() as conn:
            if self._stamp is not None:
                self._ranked = [s for s in self._ranked if not gone(s)]
                self._stamp = library_stamp(conn)

    def warm(self) -> threading.Thread:
        """Rank in the background, so that the first suggestion is ready when asked."""
        def rank() -> None:
            with contextlib.suppress(RbvError):  # shown when the page is asked for
                self._current()

        thread = threading.Thread(target=rank, daemon=True)
        thread.start()
        return thread

    def next(self) -> Pair | None:
        """The strongest suggestion not skipped, or None when none is left."""
        waiting = [s for s in self._current()
                   if frozenset((s.keep.id, s.other.id)) not in self.skipped]
        if not waiting:
            return None
        s = waiting[0]
        with self.db.connect() as conn:
            sides = []
            for person, best in ((s.keep, s.best_faces[0]), (s.other, s.best_faces[1])):
                rest = [f.id for f in faces_of(conn, person.id, SIDE_FACES) if f.id != best]
                sides.append([best, *rest][:SIDE_FACES])
        return Pair(s, sides[0], sides[1], len(waiting))

    def _find(self, keep: uuid.UUID, other: uuid.UUID) -> Suggestion:
        for s in self._current():
            if (s.keep.id, s.other.id) == (keep, other):
                return s
        raise ConfigError("that suggestion is no longer current (persons changed since); "
                          "look at the next one")

    def accept(self, keep: uuid.UUID, other: uuid.UUID) -> str:
        """Merge the pair (a logged edit, as `rbv persons merge KEEP OTHER`)."""
        s = self._find(keep, other)
        done = editing.merge(self.db, str(s.keep.id), [str(s.other.id)])
        self._forget(lambda t: other in (t.keep.id, t.other.id))
        message = f"Merged: {done.faces:,} face(s) moved into {s.keep.name or str(done.person)[:8]}"
        return f"{message}. {done.overrides}" if done.overrides else message

    def dismiss(self, keep: uuid.UUID, other: uuid.UUID) -> str:
        """Not the same person: their best-matching faces become a cannot-link (as
        `rbv faces different A B`), so clustering keeps them apart and the pair is not
        suggested again."""
        s = self._find(keep, other)
        face_links.link(self.db, list(s.best_faces), same=False)
        self._forget(lambda t: (t.keep.id, t.other.id) == (keep, other))
        return "Marked as different people; this pair will not be suggested again"

    def skip(self, keep: uuid.UUID, other: uuid.UUID) -> str:
        self.skipped.add(frozenset((keep, other)))
        return "Skipped"

"""What the next ``rbv cluster --full`` would do, found by running it.

An edit that moves no face by itself (``rbv faces same|different``) is followed by the
next full clustering, and users decide on it by what the command says that run will
change. Derived from the edit ("makes these persons one"), that can be wrong: the run
may split a third person, or join only part of one. So the run itself is made: the real
:func:`~rbv.jobs.grouping.cluster.cluster_pack`, with the pack's own setting (as a bare
``rbv cluster --full``), on the caller's transaction (the edit included) in a savepoint
that is rolled back, and the persons before and after it are compared. It costs what
``rbv cluster --full --dry-run`` costs.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field

import psycopg

from rbv.jobs.grouping.cluster import ClusterOptions, cluster_pack
from rbv.store.queries.assignments import (
    changed_assignments,
    keep_assignments,
    pack_persons,
    person_sizes,
)
from rbv.store.queries.edits import pause_logging
from rbv.store.queries.packs import PackRow
from rbv.store.queries.persons import names_of, short_id
from rbv.store.server.connection import Database
from rbv.store.server.rolled_back import RolledBackDatabase

FULL_CLUSTER = "rbv cluster --full"
SHOWN_CHANGES = 8
"""Persons a forecast lists in words (JSON lists every one)."""
SHOWN_FACES = 6
"""Face ids listed per person in words."""


@dataclass(frozen=True)
class PersonChange:
    """One person whose faces the run changes."""

    person: uuid.UUID | None  # None: a person the run creates (its id is drawn then)
    name: str | None
    before: int  # faces
    after: int
    joined: list[int]  # faces that come in
    left: list[int]  # faces that leave
    removed: bool = False  # the run deletes the person (left without faces)

    def as_dict(self) -> dict[str, object]:
        return {"person": None if self.person is None else str(self.person),
                "name": self.name, "before": self.before, "after": self.after,
                "joined": self.joined, "left": self.left, "removed": self.removed}

    def words(self) -> str:
        if self.person is None:
            return f"a new person: {_faces(self.joined)}"
        who = (f"{self.name} ({short_id(self.person)})" if self.name
               else f"person {short_id(self.person)}")
        moves = [f"{_faces(faces)} {verb if len(faces) > 1 else verb + 's'}"
                 for faces, verb in ((self.joined, "join"), (self.left, "leave")) if faces]
        detail = f" ({'; '.join(moves)})" if moves else ""
        gone = ", then removed (no face left)" if self.removed else ""
        return f"{who}: {self.before} → {self.after} faces{detail}{gone}"


@dataclass(frozen=True)
class ClusterForecast:
    """What one clustering run would change, person by person."""

    command: str
    moved: int  # faces that change person
    created: int  # persons it creates
    removed: int  # persons it deletes
    changes: list[PersonChange] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"command": self.command, "moved": self.moved, "created": self.created,
                "removed": self.removed, "changes": [c.as_dict() for c in self.changes]}

    def lines(self, limit: int = SHOWN_CHANGES) -> list[str]:
        """The forecast in words: a summary line, then one line per person."""
        if not self.moved and not self.removed:
            return [f"The next `{self.command}` would move no face."]
        head = (f"The next `{self.command}` would move {_count(self.moved, 'face')}"
                + (f", create {_count(self.created, 'person')}" if self.created else "")
                + (f", remove {_count(self.removed, 'emptied person')}" if self.removed
                   else "") + ":")
        shown = [f"  {c.words()}" for c in self.changes[:limit]]
        more = len(self.changes) - limit
        tail = [f"  … and {more} more person(s) (--json lists them all)"] if more > 0 else []
        return [head, *shown, *tail]


def forecast_full_cluster(db: Database, conn: psycopg.Connection, pack: PackRow,
                          first: Sequence[uuid.UUID] = ()) -> ClusterForecast:
    """Run ``rbv cluster --full`` on ``conn``'s open transaction block (what it holds
    uncommitted included) in a savepoint that is rolled back, and say what it changed;
    the persons in ``first`` are listed first."""
    with conn.transaction(force_rollback=True):
        # The run is not part of an edit the transaction may hold: on its own it is
        # never logged, and here it is undone anyway.
        pause_logging(conn)
        keep_assignments(conn, pack)
        persons_before = pack_persons(conn, pack)
        cluster_pack(RolledBackDatabase(db, conn), pack.name,
                     ClusterOptions(full=True, dry_run=True))
        moved = changed_assignments(conn, pack)
        persons_after = pack_persons(conn, pack)
        created = persons_after - persons_before
        removed = persons_before - persons_after
        touched: dict[uuid.UUID, tuple[list[int], list[int]]] = {p: ([], []) for p in removed}
        for face, old, new in moved:
            if new is not None:
                touched.setdefault(new, ([], []))[0].append(face)
            if old is not None:
                touched.setdefault(old, ([], []))[1].append(face)
        size_after = person_sizes(conn, list(touched))
    names = names_of(conn, [p for p in touched if p not in created])
    changes = []
    for p, (joined, left) in touched.items():
        after = size_after.get(p, 0)
        changes.append(PersonChange(None if p in created else p, names.get(p),
                                    after - len(joined) + len(left), after, joined, left,
                                    p in removed))
    order = {p: i for i, p in enumerate(first)}
    changes.sort(key=lambda c: (order.get(c.person, len(order)) if c.person else len(order),
                                c.person is None, -len(c.joined) - len(c.left),
                                str(c.person), c.joined))
    return ClusterForecast(FULL_CLUSTER, len(moved), len(created), len(removed), changes)


def _count(n: int, thing: str) -> str:
    return f"{n:,} {thing}" + ("" if n == 1 else "s")


def _faces(faces: list[int]) -> str:
    """``face 8``, ``faces 1, 2``, ``faces 1, 2, … (40 in all)``."""
    shown = ", ".join(map(str, faces[:SHOWN_FACES]))
    more = f", … ({len(faces):,} in all)" if len(faces) > SHOWN_FACES else ""
    return f"face{'s' if len(faces) > 1 else ''} {shown}{more}"

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
from dataclasses import dataclass, field, replace

import psycopg

from rbv.jobs.grouping.cluster import ClusterOptions, cluster_pack
from rbv.store.queries.assignments import changed_assignments, keep_assignments
from rbv.store.queries.edits import pause_logging
from rbv.store.queries.packs import PackRow
from rbv.store.queries.person_lookup import names_of, short_id
from rbv.store.queries.persons import pack_persons, person_sizes
from rbv.store.server.connection import Database
from rbv.store.server.rolled_back import RolledBackDatabase

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

    def part(self, faces: set[int], before: int | None = None) -> PersonChange | None:
        """This change made of the moves of ``faces`` alone (None: none of them moves
        here), from ``before`` faces (default: where the whole change starts)."""
        joined = [f for f in self.joined if f in faces]
        left = [f for f in self.left if f in faces]
        if not joined and not left:
            return None
        start = self.before if before is None else before
        after = start + len(joined) - len(left)
        return PersonChange(self.person, self.name, start, after, joined, left,
                            self.removed and after == 0)


@dataclass(frozen=True)
class ClusterForecast:
    """What one clustering run would change, person by person; with ``by_edit`` (an
    edit's forecast made beside the run without it), which of those changes the edit
    makes, the others being made with or without it."""

    moved: int  # faces that change person
    created: int  # persons it creates
    removed: int  # persons it deletes
    changes: list[PersonChange] = field(default_factory=list)
    by_edit: list[PersonChange] | None = None  # the changes the edit makes (its faces' moves)
    anyway: list[PersonChange] = field(default_factory=list)  # the others

    def as_dict(self) -> dict[str, object]:
        return {"moved": self.moved, "created": self.created,
                "removed": self.removed, "changes": [c.as_dict() for c in self.changes],
                "by_edit": None if self.by_edit is None else [
                    c.as_dict() for c in self.by_edit]}

    def beside(self, without: ClusterForecast) -> ClusterForecast:
        """This forecast, of a run after an edit, told apart from ``without``, the same
        run's without the edit: the edit's changes are the moves of the faces that end
        elsewhere (a face the run puts in a new person ends "in a new person" in both);
        the others' sizes start where the edit's leave them, so that read in order the
        two parts end where the run does."""
        def ends(forecast: ClusterForecast) -> dict[int, uuid.UUID | None]:
            left = {f: _NO_PERSON for c in forecast.changes for f in c.left}
            return left | {f: c.person for c in forecast.changes for f in c.joined}

        mine, other = ends(self), ends(without)
        faces = {f for c in [*self.changes, *without.changes] for f in c.left + c.joined}
        edited = {f for f in faces if mine.get(f, _STAYS) != other.get(f, _STAYS)}
        rest = faces - edited
        by_edit, anyway = [], []
        for c in self.changes:  # the rest from where the edit's moves leave each person
            edit = c.part(edited)
            by_edit += [edit] if edit else []
            anyway += [p] if (p := c.part(rest, edit.after if edit else None)) else []
        return replace(self, by_edit=by_edit, anyway=anyway)


_STAYS = uuid.UUID(int=0)  # where a face the run does not move ends: where it is
_NO_PERSON = uuid.UUID(int=1)  # where a face that leaves its person for none ends


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
    return ClusterForecast(len(moved), len(created), len(removed), changes)


def _faces(faces: list[int]) -> str:
    """``face 8``, ``faces 1, 2``, ``faces 1, 2, … (40 in all)``."""
    shown = ", ".join(map(str, faces[:SHOWN_FACES]))
    more = f", … ({len(faces):,} in all)" if len(faces) > SHOWN_FACES else ""
    return f"face{'s' if len(faces) > 1 else ''} {shown}{more}"

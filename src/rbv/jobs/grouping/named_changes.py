"""What a clustering run did to named persons: the faces they lost and gained, and the
named persons it left without a face (reported, never deleted)."""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass

import psycopg

from rbv.store.queries.assignments import named_face_counts, named_faces
from rbv.store.queries.packs import PackRow
from rbv.store.queries.person_lookup import labels
from rbv.store.queries.persons import persons_of_faces


@dataclass(frozen=True)
class NamedChange:
    """What a run did to one named person's faces."""

    person: str
    name: str
    before: int
    after: int
    moved_to: dict[str, int]  # person (label: name or "person 3f2a9c12") -> faces moved
    gained: int

    @property
    def lost(self) -> int:
        return sum(self.moved_to.values())

    def describe(self) -> str:
        """``Ada Lovelace: 27 → 25 faces (2 to person 3f2a9c12)``."""
        parts = [f"{n} to {who}" for who, n in sorted(self.moved_to.items(),
                                                       key=lambda kv: (-kv[1], kv[0]))]
        if self.gained:
            parts.append(f"{self.gained} joined")
        return f"{self.name}: {self.before:,} → {self.after:,} faces ({', '.join(parts)})"


def named_changes(conn: psycopg.Connection, pack: PackRow,
                   before: dict[uuid.UUID, list[int]],
                   ) -> tuple[list[NamedChange], list[dict[str, str]]]:
    """Every named person whose faces the run changed, most faces lost first; and the
    named persons that hold no face (left so by SQL or by hand: reported, never deleted)."""
    after = named_faces(conn, pack)
    now = persons_of_faces(conn, [f for faces in before.values() for f in faces])
    people = set(after) | {p for p in now.values() if p is not None}
    names = labels(conn, sorted(people, key=str)) if people else {}
    changes = []
    for person, faces in before.items():
        kept = set(after.get(person, []))
        moved = Counter(now.get(f) for f in faces if f not in kept)
        gained = len(kept - set(faces))
        if not moved and not gained:
            continue
        moved_to = {(names.get(p, "no person") if p is not None else "no person"): n
                    for p, n in moved.items()}
        changes.append(NamedChange(str(person), names.get(person, str(person)), len(faces),
                                   len(kept), moved_to, gained))
    changes.sort(key=lambda c: (-c.lost / max(c.before, 1), c.name))
    empty = [{"person": str(p), "name": names[p]} for p, faces in sorted(
        after.items(), key=lambda kv: str(kv[0])) if not faces]
    return changes, empty


def named_gains(conn: psycopg.Connection, pack: PackRow, before: dict[uuid.UUID, int],
                 ) -> tuple[list[NamedChange], list[dict[str, str]]]:
    """What an incremental run did to named persons: faces that joined them; and the
    named persons that hold no face."""
    after = named_face_counts(conn, pack)
    names = labels(conn, sorted(after, key=str)) if after else {}
    changes = [NamedChange(str(p), names[p], before.get(p, 0), n, {}, n - before.get(p, 0))
               for p, n in sorted(after.items(), key=lambda kv: names[kv[0]])
               if n != before.get(p, 0)]
    empty = [{"person": str(p), "name": names[p]} for p, n in sorted(
        after.items(), key=lambda kv: str(kv[0])) if n == 0]
    return changes, empty

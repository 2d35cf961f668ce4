"""Cached sums of persons' unit face embeddings (table ``person_sums``, migrations 0014
and 0020): what an incremental ``rbv cluster`` weighs new faces against, without reading
all of a known person's faces. A trigger logs each face that joins or leaves a person
with a row, with its embedding (``person_sum_moves``), or deletes the row when the log
would outgrow it; inserted and deleted faces delete their persons' rows. So a row plus
its log is exact; callers recompute the missing ones from the faces.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import psycopg
from numpy.typing import NDArray

from rbv.store.queries.packs import PackRow

SUM_MIN_FACES = 2
"""Persons with fewer faces are not cached: a face's own row is as cheap to read. At 1M
faces a person's faces cost two index probes each to read; ~1,200 known persons near
1,000 new faces took 0.3 s read and summed from ~8,000 faces when only persons of 50 faces
or more were cached."""


@dataclass(frozen=True)
class Moves:
    """Faces logged as having joined (sign 1) or left (-1) persons with a cached sum
    since it was stored, one entry per face and person."""

    persons: list[uuid.UUID]
    signs: NDArray[np.int64]
    embeddings: NDArray[np.float32]  # (entries, the pack's width)


def cached_sums(conn: psycopg.Connection, pack: PackRow, persons: Sequence[uuid.UUID]
                ) -> tuple[dict[uuid.UUID, tuple[int, NDArray[np.float64]]], Moves]:
    """Person → (face count, sum of its unit embeddings) as stored, for the cached ones,
    and the moves logged against them since. A person with a logged face of no (or
    another width of) embedding is left out: it has to be summed from its faces."""
    out: dict[uuid.UUID, tuple[int, NDArray[np.float64]]] = {}
    for person, count, total in conn.execute(
            "SELECT person_id, face_count, total FROM person_sums "
            "WHERE person_id = ANY(%s::uuid[])", (list(persons),), binary=True):
        vector = np.frombuffer(total, "<f8")
        if len(vector) == pack.embedding_dim:  # else a row of another width: recompute
            out[person] = (int(count), vector.astype(np.float64))
    moved: list[uuid.UUID] = []
    signs: list[int] = []
    vectors: list[NDArray[np.float32]] = []
    for person, sign, embedding in conn.execute(
            "SELECT person_id, sign, embedding FROM person_sum_moves "
            "WHERE person_id = ANY(%s::uuid[])", (list(out),), binary=True):
        logged = None if embedding is None else embedding.to_numpy()
        if logged is None or len(logged) != pack.embedding_dim:
            out.pop(person, None)
        else:
            moved.append(person)
            signs.append(int(sign))
            vectors.append(logged)
    keep = [i for i, p in enumerate(moved) if p in out]
    return out, Moves([moved[i] for i in keep], np.array(signs, np.int64)[keep],
                      np.array(vectors, np.float32).reshape(-1, pack.embedding_dim)[keep])


def store_sums(conn: psycopg.Connection, persons: Sequence[uuid.UUID],
               counts: Sequence[int], sums: NDArray[np.float64]) -> int:
    """Cache the sums of the persons with at least ``SUM_MIN_FACES`` faces (replacing
    their rows and emptying their logs); returns how many were stored. Call after the
    faces are written: writing faces logs moves against the rows of the persons they
    change (or deletes those rows)."""
    keep = [i for i, n in enumerate(counts) if n >= SUM_MIN_FACES]
    if not keep:
        return 0
    ids = [persons[i] for i in keep]
    conn.execute("DELETE FROM person_sums WHERE person_id = ANY(%s::uuid[])", (ids,))
    with conn.cursor() as cur, cur.copy(
            "COPY person_sums (person_id, face_count, total) FROM STDIN "
            "WITH (FORMAT BINARY)") as copy:
        copy.set_types(["uuid", "int4", "bytea"])
        for i in keep:
            copy.write_row((persons[i], int(counts[i]),
                            np.ascontiguousarray(sums[i], "<f8").tobytes()))
    return len(keep)


def forget_pack_sums(conn: psycopg.Connection, pack: PackRow) -> None:
    """Drop every cached sum of the pack's persons."""
    conn.execute("DELETE FROM person_sums s USING persons p "
                 "WHERE p.id = s.person_id AND p.pack_id = %s", (pack.id,))

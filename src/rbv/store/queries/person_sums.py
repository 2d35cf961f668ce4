"""Cached sums of persons' unit face embeddings (table ``person_sums``, migration
0014): what an incremental ``rbv cluster`` weighs new faces against, without reading all
of a known person's faces. Triggers delete a person's row whenever the faces it holds
change, so a row that exists is exact; callers recompute the missing ones from the faces.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
import psycopg
from numpy.typing import NDArray

from rbv.store.queries.packs import PackRow

SUM_MIN_FACES = 2
"""Persons with fewer faces are not cached: a face's own row is as cheap to read. At 1M
faces a person's faces cost two index probes each to read; ~1,200 known persons near
1,000 new faces took 0.3 s read and summed from ~8,000 faces when only persons of 50 faces
or more were cached."""


def cached_sums(conn: psycopg.Connection, pack: PackRow, persons: Sequence[uuid.UUID]
                ) -> dict[uuid.UUID, tuple[int, NDArray[np.float64]]]:
    """Person → (face count, sum of its unit embeddings), for the cached ones."""
    out: dict[uuid.UUID, tuple[int, NDArray[np.float64]]] = {}
    for person, count, total in conn.execute(
            "SELECT person_id, face_count, total FROM person_sums "
            "WHERE person_id = ANY(%s::uuid[])", (list(persons),), binary=True):
        vector = np.frombuffer(total, "<f8")
        if len(vector) == pack.embedding_dim:  # else a row of another width: recompute
            out[person] = (int(count), vector.astype(np.float64))
    return out


def store_sums(conn: psycopg.Connection, persons: Sequence[uuid.UUID],
               counts: Sequence[int], sums: NDArray[np.float64]) -> int:
    """Cache the sums of the persons with at least ``SUM_MIN_FACES`` faces (replacing
    their rows); returns how many were stored. Call after the faces are written: writing
    faces deletes the rows of the persons they change."""
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

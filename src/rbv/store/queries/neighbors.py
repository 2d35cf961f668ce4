"""Each new face's nearest faces that have a person, found through the pack's HNSW index:
what an incremental ``rbv cluster`` weighs new faces against.

The result is held as columns (one entry per searched face and neighbour), not as an
object per neighbour: at 1,000 new faces × 30 neighbours the objects cost more of the
run's main thread than the searches left to it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import sql

from rbv.store.queries.assignments import local_settings
from rbv.store.queries.packs import PackRow, ensure_pack_index, index_expr, vector_expr
from rbv.store.server.connection import Database


@dataclass(frozen=True)
class Neighbors:
    """Nearest assigned faces of searched faces, one entry per (searched face,
    neighbour): grouped by searched face in the order they were asked for, each group
    nearest first."""

    query: NDArray[np.int64]  # the searched face
    face: NDArray[np.int64]  # the neighbour
    person: NDArray[np.int64]  # the neighbour's person: an index into ``persons``
    persons: list[uuid.UUID]  # each person once
    image: NDArray[np.int64]  # the neighbour's photo
    similarity: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.query)

    @classmethod
    def of_rows(cls, query: Sequence[int], face: Sequence[int],
                person: Sequence[uuid.UUID], image: Sequence[int],
                similarity: Sequence[float]) -> Neighbors:
        """From parallel columns (neighbour persons as ids)."""
        index: dict[uuid.UUID, int] = {}
        person_index = [index.setdefault(p, len(index)) for p in person]
        return cls(np.array(query, np.int64), np.array(face, np.int64),
                   np.array(person_index, np.int64), list(index),
                   np.array(image, np.int64), np.array(similarity, np.float64))

    def grouped(self, face_ids: Sequence[int]) -> Neighbors:
        """The same entries grouped by searched face in the order of ``face_ids``
        (each group's own order kept)."""
        position = {f: i for i, f in enumerate(face_ids)}
        order = np.argsort(np.array([position[q] for q in self.query.tolist()], np.int64),
                           kind="stable")
        return Neighbors(self.query[order], self.face[order], self.person[order],
                         self.persons, self.image[order], self.similarity[order])

    @staticmethod
    def joined(parts: Sequence[Neighbors], face_ids: Sequence[int]) -> Neighbors:
        """Entries of several searches as one, grouped in the order of ``face_ids``."""
        persons: dict[uuid.UUID, int] = {}
        renumbered = []
        for part in parts:
            mine = np.array([persons.setdefault(p, len(persons)) for p in part.persons],
                            np.int64)
            renumbered.append(mine[part.person])
        return Neighbors(
            np.concatenate([p.query for p in parts]), np.concatenate([p.face for p in parts]),
            np.concatenate(renumbered), list(persons),
            np.concatenate([p.image for p in parts]),
            np.concatenate([p.similarity for p in parts])).grouped(face_ids)


NO_NEIGHBORS = Neighbors(np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.int64),
                         [], np.empty(0, np.int64), np.empty(0, np.float64))


def assigned_neighbors(
    conn: psycopg.Connection, pack: PackRow, face_ids: Sequence[int], k: int,
    ef_search: int = 40, *, db: Database | None = None, connections: int = 1,
) -> Neighbors:
    """For each face, its ``k`` most similar faces that have a person, found with the
    pack's HNSW index (pgvector iterative scan skips the unassigned ones).

    With ``db`` and ``connections`` > 1 the faces are split over that many connections
    of their own, searched at once (each search is one core's work: 1.4-1.8 ms at 1M
    faces × 512-d with the index's pages cached). ``conn`` must not have written
    anything they would need to see."""
    if not face_ids or not has_persons(conn, pack):
        return NO_NEIGHBORS
    built = ensure_pack_index(conn, pack)  # if built, only ``conn`` can see it yet
    ids = [int(f) for f in face_ids]
    if db is None or connections <= 1 or built or len(ids) < _PARALLEL_MIN * connections:
        return _nearest_assigned(conn, pack, ids, k, ef_search).grouped(ids)

    def search(part: list[int]) -> Neighbors:
        with db.connect() as own:
            found = _nearest_assigned(own, pack, part, k, ef_search)
            own.rollback()
        return found

    with ThreadPoolExecutor(connections, thread_name_prefix="rbv-hnsw") as pool:
        parts = list(pool.map(search, [ids[i::connections] for i in range(connections)]))
    return Neighbors.joined(parts, ids)


def has_persons(conn: psycopg.Connection, pack: PackRow) -> bool:
    """Whether any face of the pack has a person."""
    row = conn.execute("SELECT EXISTS (SELECT 1 FROM face_detections WHERE pack_id = %s "
                       "AND person_id IS NOT NULL)", (pack.id,)).fetchone()
    return bool(row and row[0])


def with_persons(conn: psycopg.Connection, face_ids: Sequence[int]
                 ) -> tuple[NDArray[np.int64], NDArray[np.int64], list[uuid.UUID],
                            NDArray[np.int64]]:
    """Of ``face_ids``, the faces that have a person: (faces, each one's person as an
    index into the persons, the persons once each, their photos), in no particular
    order. They come as one value of fixed-width records (30,000 faces: 0.055 s, against
    0.10 s as rows).

    The statement is planned with a random page priced near a sequential one: at the
    server's default (4, a disk's) the planner reads the whole table rather than look
    30,000 faces up by id, which takes twice as long at 1M faces with the table cached
    (0.10 s against 0.05 s, ``bench_incremental.py``'s library). A small table is still
    read whole: there that is the cheaper plan. ``face_ids`` in order read fastest."""
    with local_settings(conn, {"random_page_cost": LOOKUP_PAGE_COST}):
        row = conn.execute(
            "SELECT string_agg(int8send(id) || uuid_send(person_id) || int8send(image_id), "
            "'') FROM face_detections WHERE id = ANY(%s::bigint[]) AND person_id IS NOT NULL",
            ("{" + ",".join(map(str, face_ids)) + "}",), binary=True).fetchone()
    if row is None or row[0] is None:
        return np.empty(0, np.int64), np.empty(0, np.int64), [], np.empty(0, np.int64)
    found = np.frombuffer(row[0], _WITH_PERSON)
    persons, person = np.unique(found["person"], return_inverse=True)
    return (found["id"].astype(np.int64), person.astype(np.int64).reshape(-1),
            [uuid.UUID(bytes=p.tobytes()) for p in persons], found["image"].astype(np.int64))


LOOKUP_PAGE_COST = "1.1"
"""``random_page_cost`` for :func:`with_persons`' lookup (the usual value for cached
tables and SSDs)."""
_WITH_PERSON = np.dtype([("id", ">i8"), ("person", "V16"), ("image", ">i8")])


_PARALLEL_MIN = 100
"""Faces per connection below which one connection is faster than several."""
_PLANNER_SETTINGS = ("enable_seqscan", "enable_hashjoin", "enable_mergejoin")


def _nearest_assigned(conn: psycopg.Connection, pack: PackRow, face_ids: list[int], k: int,
                      ef_search: int) -> Neighbors:
    # The planner prices the per-face index scan of a LATERAL join poorly and may sort
    # the whole pack per face instead; the settings are put back after the query.
    conn.execute("SELECT set_config('hnsw.ef_search', %s, true), "
                 "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                 (str(max(ef_search, k)),))
    # The index scan on face_embeddings yields faces nearest first (in half precision:
    # the similarities are then measured on the full vectors); the join keeps the
    # assigned ones and iterative scan goes on until k are found.
    query = sql.SQL(
        """
        SELECT q.face_id, m.id, m.person_id, m.image_id, 1 - m.dist
        FROM face_embeddings q
        CROSS JOIN LATERAL (
            SELECT f.id, f.person_id, f.image_id, e.{vec} <=> q.{vec} AS dist
            FROM face_embeddings e JOIN face_detections f ON f.id = e.face_id
            WHERE e.pack_id = {pack} AND f.person_id IS NOT NULL
            ORDER BY e.{half} <=> q.{half}
            LIMIT {k}
        ) m
        WHERE q.face_id = ANY(%s)
        """
    ).format(vec=vector_expr(pack), half=index_expr(pack), pack=sql.Literal(pack.id),
             k=sql.Literal(k))
    with local_settings(conn, dict.fromkeys(_PLANNER_SETTINGS, "off")):
        rows = conn.execute(query, (face_ids,), binary=True).fetchall()
    if not rows:
        return NO_NEIGHBORS
    return Neighbors.of_rows(*zip(*rows, strict=True))

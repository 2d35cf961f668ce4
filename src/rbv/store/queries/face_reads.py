"""Reading a pack's faces with their embeddings, for clustering: binary COPY parsed by
numpy, never a Python object per face.

Each face is one fixed-width record (id, photo, person, manual flag, vector), built on
the server from the columns' own binary forms. A whole pack is read as blocks of
records, one COPY row per block of ``BLOCK_IDS`` face ids: psycopg hands each COPY row
to Python in a few calls of its own, which cost more than the server's work when every
face was a row (1M faces × 512-d: 28.2 s, 18.0 s of it this process's, against 10.8 s
and 3.3 s in blocks). Fewer faces (a person's, the new ones, a sample) are read a row
each, in the same record form.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence

import numpy as np
import psycopg
from numpy.typing import NDArray
from psycopg import sql

from rbv.face_rows import PackFaces
from rbv.store.queries.assignments import count_faces, local_settings
from rbv.store.queries.packs import COPY_HEADER, PackRow, vector_expr

BLOCK_IDS = 1_024
"""Face ids a block of a whole pack's read spans: about 2 MB of records at 512-d."""
_BATCH_BYTES = 4 << 20
"""Records of small rows (a few faces' read: a face a row) parsed at once; a row of a
quarter of this or more (a block) is parsed in place."""
_NIL = uuid.UUID(int=0)  # "no person": every record has a person field


def load_faces(conn: psycopg.Connection, pack: PackRow, *, unassigned_only: bool = False,
               person: uuid.UUID | None = None,
               persons: Sequence[uuid.UUID] | None = None,
               sample: int | None = None, ids: Sequence[int] | None = None,
               hidden: bool | None = None, after: int | None = None) -> PackFaces:
    """The pack's faces with embeddings, in face id order: all of them, the unassigned
    ones, those of one ``person`` or of ``persons``, those of ``ids``, or a random
    ``sample`` (in a repeatable random order); ``hidden`` False: none of a hidden
    person, True: only theirs; ``after``: only those of ids above it that have a person
    (a few). Faces marked not a face (``rbv faces not-a-face``) never: they are in no
    clustering."""
    # The faces left out are matched against a hash of them made once (``NOT IN`` of a
    # key column, never NULL): ``NOT EXISTS`` was planned per block as a lookup per face.
    where = sql.SQL("f.pack_id = {} AND f.id NOT IN (SELECT face_id FROM not_faces)"
                    ).format(sql.Literal(pack.id))
    if ids is not None:
        where += sql.SQL(" AND f.id = ANY({}::bigint[])").format(sql.Literal(list(ids)))
    if unassigned_only:
        where += sql.SQL(" AND f.person_id IS NULL")
    if after is not None:
        where += sql.SQL(" AND f.id > {} AND f.person_id IS NOT NULL").format(
            sql.Literal(int(after)))
    if person is not None:
        where += sql.SQL(" AND f.person_id = {}").format(sql.Literal(str(person)))
    if persons is not None:
        where += sql.SQL(" AND f.person_id = ANY({}::uuid[])").format(
            sql.Literal([str(p) for p in persons]))
    if hidden:
        where += sql.SQL(" AND f.person_id IN (SELECT id FROM persons WHERE hidden)")
    elif hidden is not None:
        where += sql.SQL(" AND (f.person_id IS NULL "
                         "OR f.person_id NOT IN (SELECT id FROM persons WHERE hidden))")
    # The id, photo and person (the nil uuid for none) as int8send and uuid_send give
    # them, the flag as boolsend, the vector as pgvector's vector_send: fixed widths.
    record = sql.SQL(
        "int8send(f.id) || int8send(f.image_id) || uuid_send(coalesce(f.person_id, {nil})) "
        "|| boolsend(coalesce(f.assigned_by = 'manual', false)) || vector_send(e.{vec})"
    ).format(nil=sql.Literal(str(_NIL)), vec=vector_expr(pack))
    joined = sql.SQL("face_detections f JOIN face_embeddings e ON e.face_id = f.id")
    few = (unassigned_only or sample is not None or hidden
           or any(v is not None for v in (ids, person, persons, after)))
    # Room for the hashes whatever the statistics say (a subquery too large to hash is
    # scanned again for each face).
    with local_settings(conn, {"work_mem": "64MB"}):
        if sample is not None:
            # Bernoulli-sample the narrow face rows (repeatably) and read only their vectors:
            # ordering every face at random read every vector (22.7 s at 1M × 512-d).
            percent = sampled_percent(count_faces(conn, pack), sample)
            query = sql.SQL(
                "SELECT s.n, {record} FROM (SELECT f.id, row_number() OVER "
                "(ORDER BY md5(f.id::text)) AS n FROM face_detections f TABLESAMPLE BERNOULLI "
                "({percent}) REPEATABLE (0) WHERE {where} AND EXISTS (SELECT 1 FROM "
                "face_embeddings e WHERE e.face_id = f.id) ORDER BY md5(f.id::text) LIMIT {n}) "
                "s JOIN {joined} ON f.id = s.id"
            ).format(record=record, percent=sql.Literal(percent), where=where,
                     n=sql.Literal(int(sample)), joined=joined)
            expected = int(sample)
        elif few:
            query = sql.SQL("SELECT f.id, {record} FROM {joined} WHERE {where}").format(
                record=record, joined=joined, where=where)
            expected = 0
        else:
            # A block per range of ids, both tables' rows read through their ids' index in
            # order and merged (a lookup per face read 3 pages a face: 4.1M at 1M faces).
            query = sql.SQL(
                "SELECT g, b.r FROM (SELECT min(id) AS lo, max(id) AS hi FROM face_detections) "
                "r, generate_series(r.lo / {size}, r.hi / {size}) g CROSS JOIN LATERAL ("
                "SELECT string_agg({record}, '' ORDER BY f.id) AS r FROM {joined} "
                "WHERE f.id >= g * {size} AND f.id < (g + 1) * {size} AND e.face_id >= g * "
                "{size} AND e.face_id < (g + 1) * {size} AND {where}) b "
                "WHERE b.r IS NOT NULL"
            ).format(size=sql.Literal(BLOCK_IDS), record=record, joined=joined, where=where)
            row = conn.execute(sql.SQL("SELECT count(*) FROM face_detections f WHERE {}")
                               .format(where)).fetchone()
            expected = int(row[0]) if row else 0
        # No ORDER BY around the records: a sort of them (2 kB each) goes to disk. The rows
        # are put in the order of their keys here (the blocks come in it already).
        faces = _FaceArrays(pack.embedding_dim, expected)
        for keys, records in copied_records(
                conn, sql.SQL("COPY ({}) TO STDOUT (FORMAT BINARY)").format(query), faces.record):
            faces.add(keys, records)
    return faces.faces()


def sampled_percent(total: int, sample: int) -> float:
    """The percent of ``total`` faces ``load_faces(sample=...)`` draws its sample from."""
    return min(100.0, 100.0 * (1.5 * sample + 100) / max(total, 1))


def copied_records(conn: psycopg.Connection, copy: sql.Composed, record: np.dtype
                   ) -> Iterator[tuple[NDArray[np.int64], NDArray[np.void]]]:
    """The rows of ``copy``, a ``COPY (SELECT key, data) TO STDOUT (FORMAT BINARY)``
    whose ``key`` is an int8 and ``data`` a bytea of whole ``record``s, a large row at a
    time (read in place: valid until the next is read) or small ones in batches of about
    ``_BATCH_BYTES``: each record's row key and the records."""
    pending = bytearray()
    keys: list[int] = []
    counts: list[int] = []

    def batch() -> tuple[NDArray[np.int64], NDArray[np.void]]:
        return np.repeat(np.array(keys, np.int64), counts), np.frombuffer(pending, record)

    header = True
    with conn.cursor() as cur, cur.copy(copy) as rows:
        for message in rows:  # PostgreSQL sends one message a row, the header in the first
            data = memoryview(message)
            at = COPY_HEADER if header else 0
            header = False
            fields = int.from_bytes(data[at:at + 2], "big", signed=True)
            if fields == -1 and len(data) == at + 2:  # the trailer
                continue
            key_size = int.from_bytes(data[at + 2:at + 6], "big")
            size = int.from_bytes(data[at + 14:at + 18], "big", signed=True)
            if fields != 2 or key_size != 8 or size < 0 or size % record.itemsize \
                    or len(data) != at + 18 + size:
                raise ValueError(f"unexpected COPY row of {len(data)} bytes")
            key = int.from_bytes(data[at + 6:at + 14], "big", signed=True)
            if size >= _BATCH_BYTES // 4:  # a block: read in place
                if pending:
                    yield batch()
                    pending, keys, counts = bytearray(), [], []
                records = np.frombuffer(data, record, size // record.itemsize, at + 18)
                yield np.full(len(records), key, np.int64), records
                continue
            keys.append(key)
            counts.append(size // record.itemsize)
            pending += data[at + 18:]
            if len(pending) >= _BATCH_BYTES:
                yield batch()
                pending, keys, counts = bytearray(), [], []
    if pending:
        yield batch()


class _FaceArrays:
    """The faces' columns, filled a block of records at a time (room for ``expected``
    faces made at once: growing a million faces' vectors would copy 2 GB)."""

    _COLUMNS = ("ids", "images", "persons", "manual", "vectors", "keys")

    def __init__(self, dim: int, expected: int) -> None:
        self.record = np.dtype([
            ("id", ">i8"), ("image", ">i8"), ("person", "S16"), ("manual", "u1"),
            ("dim", ">i2"), ("_unused", ">i2"), ("vec", ">f4", (dim,))])
        self.dim = dim
        self.size = 0
        self.ids = np.empty(expected, np.int64)
        self.images = np.empty(expected, np.int64)
        self.persons = np.empty(expected, "S16")
        self.manual = np.empty(expected, bool)
        self.vectors = np.empty((expected, dim), np.float32)
        self.keys = np.empty(expected, np.int64)  # each face's row key

    def _grow(self, room: int) -> None:
        for name in self._COLUMNS:
            old = getattr(self, name)
            new = np.empty((room, *old.shape[1:]), old.dtype)
            new[:self.size] = old[:self.size]
            setattr(self, name, new)

    def add(self, keys: NDArray[np.int64], records: NDArray[np.void]) -> None:
        n = len(records)
        if (records["dim"] != self.dim).any():
            raise ValueError(f"a vector of another width than {self.dim}")
        if self.size + n > len(self.ids):  # more faces than counted: grow
            self._grow(max(2 * len(self.ids), self.size + n, 1_024))
        end = self.size + n
        self.ids[self.size:end] = records["id"]
        self.images[self.size:end] = records["image"]
        self.persons[self.size:end] = records["person"]
        self.manual[self.size:end] = records["manual"].astype(bool)
        self.vectors[self.size:end] = records["vec"]
        self.keys[self.size:end] = keys
        self.size = end

    def faces(self) -> PackFaces:
        n = self.size
        keys = self.keys[:n]
        if n and (keys[1:] < keys[:-1]).any():
            order = np.argsort(keys, kind="stable")  # a block's faces stay in their order
            for name in self._COLUMNS:
                setattr(self, name, getattr(self, name)[:n][order])
        people, inverse = np.unique(self.persons[:n], return_inverse=True)
        owners = [None if u == _NIL else u
                  for u in (uuid.UUID(bytes=bytes(k).ljust(16, b"\0")) for k in people)]
        # Fewer faces than counted (some left meanwhile): the vectors are copied only
        # when that leaves much room unused.
        vectors = self.vectors[:n] if n >= 0.9 * len(self.vectors) else self.vectors[:n].copy()
        return PackFaces(self.ids[:n].copy(), self.images[:n].copy(),
                         [owners[i] for i in inverse.ravel().tolist()],
                         self.manual[:n].copy(), vectors)

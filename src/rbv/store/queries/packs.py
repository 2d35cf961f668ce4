"""Queries on ``model_packs``: registering a pack and its per-pack vector index."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from rbv.errors import ModelPackError

COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\0" + bytes(8)
"""A binary COPY's header: signature (11 bytes), flags and extension length (zero)."""
COPY_HEADER = len(COPY_SIGNATURE)


@dataclass(frozen=True)
class PackRow:
    """A registered model pack."""

    id: int
    name: str
    fingerprint: str
    embedding_dim: int


def pack_fingerprint(files: Mapping[str, str]) -> str:
    """One hash for a pack: sha256 over its files' names and hashes, order-free."""
    canonical = json.dumps(dict(sorted(files.items())), separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def register_pack(
    conn: psycopg.Connection, name: str, files: Mapping[str, str], embedding_dim: int,
    folder: Path | None = None,
) -> PackRow:
    """Insert the pack if its files are new (else return the existing row), with the
    ``folder`` its models were loaded from (kept when None: a run of the same files
    elsewhere, by a remote server, says nothing about this folder).

    Its HNSW index is not created here: it is built once the first faces are in
    (:func:`ensure_pack_index`), which is faster than maintaining it row by row."""
    fingerprint = pack_fingerprint(files)
    taken = conn.execute("SELECT fingerprint FROM model_packs WHERE name = %s",
                         (name,)).fetchone()
    if taken is not None and taken[0] != fingerprint:
        raise ModelPackError(
            f"another model pack is already registered as {name!r} (its files differ: "
            f"{taken[0][:12]}… here {fingerprint[:12]}…); faces of different packs are never "
            "mixed, so give this pack's folder another name")
    row = conn.execute(
        """
        INSERT INTO model_packs (name, fingerprint, files, embedding_dim, folder)
        VALUES (%s, %s, %s, %s, %s)
        ON CONFLICT (fingerprint)
            DO UPDATE SET folder = COALESCE(EXCLUDED.folder, model_packs.folder)
        RETURNING id, name, fingerprint, embedding_dim
        """,
        (name, fingerprint, json.dumps(dict(files)), embedding_dim,
         None if folder is None else str(folder)),
    ).fetchone()
    assert row is not None  # INSERT … RETURNING always yields a row
    return PackRow(*row)


HNSW_BUILD_MEMORY_MAX = 4 << 30
"""Upper bound of ``maintenance_work_mem`` for building a pack's HNSW index (bytes)."""
_HNSW_BYTES_PER_FACE = 400
"""Graph overhead per face on top of its vector (m = 16 neighbour lists, tuple headers)."""
_HNSW_BYTES_PER_DIM = 2
"""The index holds each vector as ``halfvec`` (see :func:`index_expr`)."""


def pack_index_name(pack: PackRow) -> str:
    """The name of the pack's HNSW index on ``face_embeddings``."""
    return f"face_embeddings_hnsw_pack{pack.id}"


def has_pack_index(conn: psycopg.Connection, pack: PackRow) -> bool:
    """Whether the pack's HNSW index exists."""
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                       (pack_index_name(pack),)).fetchone()
    return bool(row and row[0])


def ensure_pack_index(conn: psycopg.Connection, pack: PackRow) -> bool:
    """Build the pack's partial HNSW cosine index unless it exists; returns whether it
    was built.

    ``embedding`` has no fixed width in ``face_embeddings`` (packs differ), so the index
    is on ``embedding::halfvec(dim)`` restricted to the pack; queries must order by the
    same expression and filter on ``pack_id = …`` to be served by it (see
    :func:`index_expr`).

    Rule: the index is built after a pack's first faces are in (the end of the first
    ``embed``/``index`` run, or the first ``cluster`` that needs it), then maintained
    row by row (loading 100k faces into an existing index took 4.2× loading them and
    then building it). The build gets enough ``maintenance_work_mem`` to hold the whole
    graph (up to :data:`HNSW_BUILD_MEMORY_MAX`); past the server's default 64 MB
    pgvector goes on building on disk, more slowly.
    """
    if has_pack_index(conn, pack):
        return False
    # Concurrent builders (several embed workers finishing) wait for the first one.
    conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", (0x7262_7669, pack.id))
    if has_pack_index(conn, pack):
        return False
    row = conn.execute("SELECT count(*) FROM face_embeddings WHERE pack_id = %s",
                       (pack.id,)).fetchone()
    faces = int(row[0]) if row else 0
    if faces == 0:  # nothing to index yet: the first faces in decide when
        return False
    need = int(faces * (_HNSW_BYTES_PER_DIM * pack.embedding_dim
                + _HNSW_BYTES_PER_FACE) * 1.25) >> 20
    memory_mb = max(64, min(need, HNSW_BUILD_MEMORY_MAX >> 20))
    conn.execute("SELECT set_config('maintenance_work_mem', %s, true)", (f"{memory_mb}MB",))
    conn.execute(
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {name} ON face_embeddings USING hnsw "
            "(({expr}) halfvec_cosine_ops) WHERE pack_id = {pack}"
        ).format(
            name=sql.Identifier(pack_index_name(pack)),
            expr=index_expr(pack),
            pack=sql.Literal(pack.id),
        )
    )
    conn.execute("ANALYZE face_embeddings")
    return True


def drop_pack_index(conn: psycopg.Connection, pack: PackRow) -> None:
    """Drop the pack's HNSW index (before a bulk load much larger than the pack)."""
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(
        sql.Identifier(pack_index_name(pack))))


def vector_expr(pack: PackRow) -> sql.Composed:
    """``embedding::vector(dim)``: a face's embedding as the pack's width (a column of
    ``face_embeddings``)."""
    return sql.SQL("embedding::vector({})").format(sql.Literal(pack.embedding_dim))


def index_expr(pack: PackRow) -> sql.Composed:
    """``embedding::halfvec(dim)``: the expression the pack's HNSW index is built on.

    Half precision halves the index (1.35 GB against 2.7 GB at 1M faces × 512-d), so it
    fits the server's cache beside the rows it leads to; its neighbours are as good
    (recall@30 against the exact ones 0.756 against 0.751 at 1M faces, ``ef_search`` 40).
    Similarities are still measured on the full vectors."""
    return sql.SQL("embedding::halfvec({})").format(sql.Literal(pack.embedding_dim))


def database_key(conn: psycopg.Connection) -> tuple[str, int]:
    """The server and database ``conn`` is on, as a key of what a process keeps: where
    the server is and the database's oid (one dropped and made again under its name has
    a new one)."""
    row = conn.execute("SELECT oid::bigint FROM pg_database "
                       "WHERE datname = current_database()").fetchone()
    assert row is not None
    return f"{conn.info.host}:{conn.info.port}", int(row[0])

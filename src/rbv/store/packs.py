"""Queries on ``model_packs``: registering a pack and its per-pack vector index."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass

import psycopg
from psycopg import sql

from rbv.errors import ModelPackError


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
    conn: psycopg.Connection, name: str, files: Mapping[str, str], embedding_dim: int
) -> PackRow:
    """Insert the pack if its files are new (else return the existing row) and make
    sure its HNSW cosine index exists."""
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
        INSERT INTO model_packs (name, fingerprint, files, embedding_dim)
        VALUES (%s, %s, %s, %s)
        ON CONFLICT (fingerprint) DO UPDATE SET name = model_packs.name
        RETURNING id, name, fingerprint, embedding_dim
        """,
        (name, fingerprint, json.dumps(dict(files)), embedding_dim),
    ).fetchone()
    assert row is not None  # INSERT … RETURNING always yields a row
    pack = PackRow(*row)
    ensure_pack_index(conn, pack)
    return pack


def ensure_pack_index(conn: psycopg.Connection, pack: PackRow) -> None:
    """A partial HNSW cosine index over this pack's embeddings.

    ``embedding`` has no fixed width in the table (packs differ), so the index is on
    ``embedding::vector(dim)`` restricted to the pack; queries must use the same
    expression and ``pack_id = …`` to be served by it (see :func:`vector_expr`).
    """
    conn.execute(
        sql.SQL(
            "CREATE INDEX IF NOT EXISTS {name} ON face_detections USING hnsw "
            "((embedding::vector({dim})) vector_cosine_ops) WHERE pack_id = {pack}"
        ).format(
            name=sql.Identifier(f"face_detections_hnsw_pack{pack.id}"),
            dim=sql.Literal(pack.embedding_dim),
            pack=sql.Literal(pack.id),
        )
    )


def vector_expr(pack: PackRow) -> sql.Composed:
    """``embedding::vector(dim)``: the expression the pack's HNSW index is built on."""
    return sql.SQL("embedding::vector({})").format(sql.Literal(pack.embedding_dim))

"""Migration 0010 moves embeddings into ``face_embeddings`` without losing a face, a
name or a manual decision, also when it is interrupted half-way and run again; migration
0021 rebuilds the packs' HNSW indexes in half precision."""

from __future__ import annotations

import json
import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from psycopg import sql
from typer.testing import CliRunner

from rbv.config import Settings
from rbv.errors import MigrationError
from rbv.jobs.grouping.cluster import ClusterOptions, cluster_pack
from rbv.store import Database, open_database
from rbv.store.queries.assignments import create_persons
from rbv.store.queries.faces import NewFace, insert_faces
from rbv.store.queries.neighbors import assigned_neighbors
from rbv.store.queries.packs import PackRow, has_pack_index, index_expr, pack_fingerprint
from rbv.store.server import migrations as migrations_module
from rbv.store.server.migrations import apply_pending, migrations_dir
from tests.conftest import run_cli

pytestmark = pytest.mark.slow  # ~25 s: re-embeds a library

VERSION = 10
FACES = 12_000
DIM = 128


def _old_schema(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                version: int = VERSION) -> None:
    """The schema as it was just before migration ``version``."""
    older = tmp_path / "older_migrations"
    older.mkdir()
    for path in migrations_dir().glob("*.sql"):
        if int(path.name[:4]) < version:
            shutil.copy(path, older / path.name)
    with monkeypatch.context() as m:
        m.setattr(migrations_module, "migrations_dir", lambda: older)
        apply_pending(db)


def _populate(conn: psycopg.Connection) -> int:
    """A library in the old layout: faces with their vectors in face_detections (and the
    per-pack HNSW index on them), persons made by clustering, a named person, manual
    assignments, links, a rejection, a hidden person."""
    pack = conn.execute(
        "INSERT INTO model_packs (name, fingerprint, files, embedding_dim) "
        "VALUES ('sface', %s, '{}', %s) RETURNING id", ("f" * 64, DIM)).fetchone()[0]  # type: ignore[index]
    images = [r[0] for r in conn.execute(
        "INSERT INTO images (sha256, size_bytes, status) SELECT md5(g::text) || md5('x' || g), "
        "1, 'ok' FROM generate_series(1, %s) g RETURNING id", (FACES // 2,))]
    rng = np.random.default_rng(5)
    x = rng.normal(size=(FACES, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with conn.cursor() as cur, cur.copy(
        "COPY face_detections (image_id, pack_id, x1, y1, x2, y2, det_score, embedding) "
        "FROM STDIN WITH (FORMAT BINARY)"
    ) as copy:
        copy.set_types(["int8", "int4", "float4", "float4", "float4", "float4", "float4",
                        "vector"])
        for i in range(FACES):
            copy.write_row((images[i // 2], pack, 0.0, 0.0, 50.0, 60.0, 0.9, x[i]))
    conn.execute(f"CREATE INDEX face_detections_hnsw_pack{pack} ON face_detections USING hnsw "
                 f"((embedding::vector({DIM})) vector_cosine_ops) WHERE pack_id = {pack}")
    persons = [r[0] for r in conn.execute(
        "INSERT INTO persons (pack_id) SELECT %s FROM generate_series(1, 40) RETURNING id",
        (pack,))]
    conn.execute("UPDATE face_detections SET person_id = (%s::uuid[])[1 + id %% 40], "
                 "assigned_by = 'cluster', assigned_at = now() WHERE id %% 3 = 0", (persons,))
    conn.execute("UPDATE face_detections SET person_id = %s, assigned_by = 'manual' "
                 "WHERE id %% 97 = 1", (persons[0],))
    conn.execute("INSERT INTO person_names VALUES (%s, 'Ada'), (%s, 'Grace')",
                 (persons[0], persons[1]))
    conn.execute("UPDATE persons SET hidden = true WHERE id = %s", (persons[2],))
    conn.execute("INSERT INTO persons (pack_id, source) VALUES (%s, 'manual')", (pack,))
    ids = [r[0] for r in conn.execute("SELECT id FROM face_detections ORDER BY id LIMIT 10")]
    conn.execute("INSERT INTO must_links (face_a, face_b) VALUES (%s, %s)", (ids[1], ids[2]))
    conn.execute("INSERT INTO cannot_links (face_a, face_b) VALUES (%s, %s)", (ids[3], ids[4]))
    conn.execute("INSERT INTO person_rejections (face_id, person_id) VALUES (%s, %s)",
                 (ids[5], persons[1]))
    return int(pack)


def _snapshot(conn: psycopg.Connection, embeddings_from: str) -> dict[str, Any]:
    return {
        "faces": conn.execute("SELECT id, image_id, pack_id, person_id, assigned_by, x2, "
                              "det_score FROM face_detections ORDER BY id").fetchall(),
        "embeddings": [(i, e.to_numpy().tobytes()) for i, e in conn.execute(embeddings_from)],
        "persons": conn.execute("SELECT id, hidden, source, merged_into FROM persons "
                                "ORDER BY id").fetchall(),
        "names": conn.execute("SELECT * FROM person_names ORDER BY name").fetchall(),
        "must": conn.execute("SELECT face_a, face_b FROM must_links").fetchall(),
        "cannot": conn.execute("SELECT face_a, face_b FROM cannot_links").fetchall(),
        "rejections": conn.execute("SELECT face_id, person_id FROM person_rejections"
                                   ).fetchall(),
    }


OLD = "SELECT id, embedding FROM face_detections ORDER BY id"
NEW = "SELECT face_id, embedding FROM face_embeddings ORDER BY face_id"


def _interrupt_migration(db: Database, url: str) -> BaseException | None:
    """Run the pending migrations in a thread and kill their server process mid-way."""
    failure: list[BaseException] = []

    def migrate() -> None:
        try:
            apply_pending(db)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            failure.append(exc)

    worker = threading.Thread(target=migrate)
    worker.start()
    with psycopg.connect(url, autocommit=True) as watcher:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and worker.is_alive():
            row = watcher.execute(
                "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND pid <> "
                "pg_backend_pid() AND query LIKE '%%CREATE TABLE face_embeddings%%' AND "
                "now() - query_start > interval '300 ms'").fetchone()
            if row:
                watcher.execute("SELECT pg_terminate_backend(%s)", (row[0],))
                break
            time.sleep(0.02)
    worker.join()
    return failure[0] if failure else None


def test_migration_keeps_every_face_name_and_decision_even_when_interrupted(
    empty_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(database_url=empty_db_url, data_dir=tmp_path / "data")
    db = open_database(settings, require_schema=False)
    _old_schema(db, tmp_path, monkeypatch)
    with db.transaction() as conn:
        pack = _populate(conn)
    with db.connect() as conn:
        before = _snapshot(conn, OLD)

    failure = _interrupt_migration(db, empty_db_url)
    assert isinstance(failure, MigrationError | psycopg.Error), failure
    with db.connect() as conn:  # nothing half-done: still the old layout, all there
        assert conn.execute("SELECT max(version) FROM schema_migrations").fetchone() == (
            VERSION - 1,)
        assert conn.execute("SELECT to_regclass('face_embeddings')").fetchone() == (None,)
        assert _snapshot(conn, OLD) == before

    applied = [m.version for m in apply_pending(db)]  # later migrations follow it
    assert applied[0] == VERSION, applied
    with db.connect() as conn:
        after = _snapshot(conn, NEW)
        columns = {r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_name = 'face_detections'")}
        indexes = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes")}
    assert after == before
    assert len(after["faces"]) == FACES and "embedding" not in columns
    assert f"face_embeddings_hnsw_pack{pack}" in indexes
    assert f"face_detections_hnsw_pack{pack}" not in indexes

    # The migrated library clusters, and the user's decisions hold.
    report = cluster_pack(open_database(settings), "sface",
                          ClusterOptions(threshold=0.5, full=True))
    assert report.faces == FACES
    with db.connect() as conn:
        manual = conn.execute("SELECT id, person_id FROM face_detections "
                              "WHERE assigned_by = 'manual' ORDER BY id").fetchall()
        names = conn.execute("SELECT * FROM person_names ORDER BY name").fetchall()
    assert manual == [(f[0], f[3]) for f in before["faces"] if f[4] == "manual"]
    assert names == before["names"]
    assert all(isinstance(p, uuid.UUID) for _, p in manual)


def _old_pack(conn: psycopg.Connection, name: str, files: dict[str, str], dim: int
              ) -> PackRow:
    """A pack row as schema 21 had it (no folder)."""
    fingerprint = pack_fingerprint(files)
    row = conn.execute("INSERT INTO model_packs (name, fingerprint, files, embedding_dim) "
                       "VALUES (%s, %s, %s, %s) RETURNING id, name, fingerprint, embedding_dim",
                       (name, fingerprint, json.dumps(files), dim)).fetchone()
    assert row is not None
    return PackRow(*row)


def test_half_precision_migration_rebuilds_each_packs_index_and_searches_use_it(
    empty_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(database_url=empty_db_url, data_dir=tmp_path / "data")
    db = open_database(settings, require_schema=False)
    _old_schema(db, tmp_path, monkeypatch, version=21)
    rng = np.random.default_rng(8)
    x = rng.normal(size=(2_000, DIM)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with db.transaction() as conn:
        pack = _old_pack(conn, "sface", {"r.onnx": "a" * 64}, DIM)
        empty = _old_pack(conn, "other", {"r.onnx": "b" * 64}, 512)
        images = [r[0] for r in conn.execute(
            "INSERT INTO images (sha256, size_bytes, status) SELECT md5(g::text) || "
            "md5('y' || g), 1, 'ok' FROM generate_series(1, %s) g RETURNING id", (len(x),))]
        insert_faces(conn, [NewFace(i, pack.id, (0, 0, 50, 60), None, 0.9, None, v)
                            for i, v in zip(images, x, strict=True)])
        ids = [r[0] for r in conn.execute("SELECT id FROM face_detections ORDER BY id")]
        person = create_persons(conn, pack, 1)[0]
        conn.execute("UPDATE face_detections SET person_id = %s WHERE id %% 2 = 0", (person,))
        # the index as schema 20's rbv built it
        conn.execute(f"CREATE INDEX face_embeddings_hnsw_pack{pack.id} ON face_embeddings "
                     f"USING hnsw ((embedding::vector({DIM})) vector_cosine_ops) "
                     f"WHERE pack_id = {pack.id}")
    new = [f for f in ids if f % 2 == 1]
    with db.connect() as conn:
        before = assigned_neighbors(conn, pack, new, 5)

    # `rbv migrate` says what it applies before each step of an upgrade (this one rebuilds
    # every pack's index: minutes at a million faces)
    result = run_cli(CliRunner(), "--database", empty_db_url, "migrate")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[0] == "Applying 0021_half_precision_index.sql …"
    assert result.stdout.splitlines()[0] == "Applied 0021_half_precision_index.sql"
    with db.connect() as conn:
        indexes = dict(conn.execute(
            "SELECT c.relname, o.opcname FROM pg_index i JOIN pg_class c ON c.oid = "
            "i.indexrelid JOIN pg_opclass o ON o.oid = i.indclass[0] "
            "WHERE c.relname LIKE 'face_embeddings_hnsw_pack%%'").fetchall())
        conn.execute("SET enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            sql.SQL("EXPLAIN SELECT face_id FROM face_embeddings WHERE pack_id = %s "
                    "ORDER BY {} <=> %s::halfvec({}) LIMIT 5").format(
                index_expr(pack), sql.Literal(DIM)), (pack.id, x[0].tolist())))
        conn.execute("RESET enable_seqscan")
        after = assigned_neighbors(conn, pack, new, 5)
    # the pack's index rebuilt under its name; a pack without faces gets one later
    assert indexes == {f"face_embeddings_hnsw_pack{pack.id}": "halfvec_cosine_ops"}
    assert f"face_embeddings_hnsw_pack{pack.id}" in plan
    with db.transaction() as conn:
        assert not has_pack_index(conn, empty)
    # the same neighbours, with the same (full-precision) similarities
    assert after.query.tolist() == before.query.tolist()
    pairs = [set(zip(n.query.tolist(), n.face.tolist(), strict=True)) for n in (before, after)]
    assert len(pairs[0] & pairs[1]) >= 0.98 * len(pairs[0])  # near-ties may swap
    sims = [dict(zip(zip(n.query.tolist(), n.face.tolist(), strict=True),
                     n.similarity.tolist(), strict=True)) for n in (before, after)]
    assert all(sims[0][pair] == sims[1][pair] for pair in pairs[0] & pairs[1])

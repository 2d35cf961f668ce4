"""The foundation: migrations, embedded and URL databases, SQL resets, bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import psycopg
import pytest
from psycopg import sql

from rbv.config import Settings
from rbv.errors import PackNotFound, Remedy, SchemaNotReady
from rbv.store import Database, open_database
from rbv.store.queries.assignments import create_persons, local_settings
from rbv.store.queries.faces import NewFace, insert_faces
from rbv.store.queries.neighbors import assigned_neighbors
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.queries.packs import (
    ensure_pack_index,
    has_pack_index,
    index_expr,
    register_pack,
)
from rbv.store.server.migrations import apply_pending, available_migrations
from tests.conftest import run_cli
from tests.pgserver import PASSWORD, PasswordServer

README = Path(__file__).resolve().parents[1] / "README.md"


def test_migrate_twice_applies_nothing_the_second_time(cli, empty_db_url: str) -> None:
    first = run_cli(cli, "--database", empty_db_url, "migrate")
    assert first.exit_code == 0, first.output
    assert "Applied 0001_init.sql" in first.stdout
    assert "Applying" not in first.output  # a new schema is made at once
    second = run_cli(cli, "migrate", "--database", empty_db_url)
    assert second.exit_code == 0, second.output
    assert "Applied" not in second.output
    assert "up to date" in second.output


def test_migrate_list_shows_pending_then_applied_without_writing(cli, empty_db_url: str) -> None:
    before = run_cli(cli, "-d", empty_db_url, "migrate", "--list")
    assert before.exit_code == 0, before.output
    assert re.search(r"0001_init\.sql\s+pending", before.output)
    with psycopg.connect(empty_db_url) as conn:  # --list created nothing
        assert conn.execute("SELECT to_regclass('images')").fetchone() == (None,)
    run_cli(cli, "-d", empty_db_url, "migrate")
    after = run_cli(cli, "-d", empty_db_url, "migrate", "--list", "--json")
    assert after.exit_code == 0, after.output
    assert '"applied_at": null' not in after.output
    assert len(available_migrations()) >= 1


def test_other_commands_refuse_an_unmigrated_database(cli, empty_db_url: str) -> None:
    result = run_cli(cli, "-d", empty_db_url, "stats")
    assert result.exit_code == 1
    assert result.output.strip() == (
        "Error: the database has no rbv schema yet; run `rbv migrate`"
    )
    with pytest.raises(SchemaNotReady):
        open_database(Settings(database_url=empty_db_url))


def test_older_schema_is_refused_with_run_migrate(empty_db_url: str, tmp_path: Path) -> None:
    db = open_database(Settings(database_url=empty_db_url), require_schema=False)
    from rbv.store.server.migrations import apply_pending

    apply_pending(db)
    with db.connect() as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = 1")
        conn.commit()
    with pytest.raises(SchemaNotReady, match="this rbv needs") as refused:
        open_database(Settings(database_url=empty_db_url))
    assert [r.action for r in refused.value.remedies] == ["migrate"]


def test_a_pack_not_found_says_what_would_find_one(cli, settings: Settings) -> None:
    """The lookup says what it found and carries the remedies; the CLI words them."""
    url = str(settings.database_url)
    with psycopg.connect(url) as conn, pytest.raises(PackNotFound) as err:
        find_pack(conn, "nonesuch")
    assert "rbv " not in str(err.value) and "--" not in str(err.value)
    assert err.value.remedies == (Remedy("index_first"), Remedy("choose_pack"))
    result = run_cli(cli, "-d", url, "cluster", "--model-pack", "nonesuch")
    assert result.exit_code == 1
    assert result.stderr == ("Error: no faces for model pack 'nonesuch' in this database "
                             "(packs: none yet); run `rbv index` first or pass --model-pack "
                             "NAME or set RBV_MODEL_PACK\n")


def test_vectors_round_trip_through_binary_copy(db: Database) -> None:
    with db.transaction() as conn:
        pack = register_pack(conn, "test128", {"det.onnx": "a" * 64}, 128)
        image_id = _image(conn, "1")
        emb = np.random.default_rng(0).normal(size=128).astype(np.float32)
        n = insert_faces(conn, [NewFace(image_id, pack.id, (1, 2, 30, 50), [0.0] * 10, 0.9, 55.0,
                                        emb)])
        assert n == 1
        stored, short = conn.execute(
            "SELECT e.embedding, f.face_short FROM face_detections f "
            "JOIN face_embeddings e ON e.face_id = f.id"
        ).fetchone()
    np.testing.assert_allclose(stored.to_numpy(), emb, rtol=1e-6)
    assert short == 29  # least(x2-x1, y2-y1), a generated column


def test_one_database_opened_before_its_migration_reads_vectors_after_it(
        empty_db_url: str) -> None:
    """A process that connects first, migrates, then works (`rbv index` on a new data
    folder does) gets pgvector's types on its later connections; before, there are none
    to register and connecting still works."""
    db = Database(empty_db_url, "the test database")
    with db.connect() as conn:
        assert conn.execute("SELECT to_regtype('vector')").fetchone() == (None,)
    apply_pending(db)
    for _ in range(2):  # the connection that finds the types, then one that is given them
        with db.connect() as conn:
            got = conn.execute("SELECT '[1,2,3]'::vector, '[1,2]'::halfvec",
                               binary=True).fetchone()
            sent = conn.execute("SELECT %s::vector", (np.array([4.0, 5.0]),)).fetchone()
            assert got is not None and sent is not None
            assert got[0].to_list() == [1, 2, 3] and got[1].to_list() == [1, 2]
            assert sent[0].to_list() == [4, 5]


def test_a_faces_short_edge_follows_its_box_and_costs_no_write(db: Database) -> None:
    """``face_short`` is the box's short edge after the box is moved too; on PostgreSQL 18
    it is computed when read (schema 31): a stored one made every UPDATE of faces that
    leaves the box alone prepare its expression again row by row (14 % of a first full
    run's write of 1M persons)."""
    with db.transaction() as conn:
        pack = register_pack(conn, "test128", {"det.onnx": "a" * 64}, 128)
        image_id = _image(conn, "1")
        insert_faces(conn, [NewFace(image_id, pack.id, (1, 2, 30, 50), None, 0.9, None,
                                    np.ones(128, np.float32))])
        conn.execute("UPDATE face_detections SET x2 = 11, y1 = 40")
        assert conn.execute("SELECT face_short FROM face_detections").fetchone() == (10,)
        version, kind = conn.execute(
            "SELECT current_setting('server_version_num')::int, a.attgenerated "
            "FROM pg_attribute a WHERE a.attrelid = 'face_detections'::regclass "
            "AND a.attname = 'face_short' AND NOT a.attisdropped").fetchone()
    assert kind == ("v" if version >= 180000 else "s")


def test_local_settings_hold_inside_and_are_set_back_to_what_they_were(db: Database
                                                                          ) -> None:
    with db.transaction() as conn:
        conn.execute("SET LOCAL work_mem = '7MB'")  # set earlier in the transaction
        with local_settings(conn, {"work_mem": "64MB", "random_page_cost": "1.1"}):
            assert conn.execute("SELECT current_setting('work_mem'), "
                                "current_setting('random_page_cost')").fetchone() \
                == ("64MB", "1.1")
        assert conn.execute("SELECT current_setting('work_mem'), "
                            "current_setting('random_page_cost')").fetchone() == ("7MB", "4")


def test_faces_of_different_widths_coexist_with_an_index_per_pack(db: Database) -> None:
    rng = np.random.default_rng(1)
    with db.transaction() as conn:
        small = register_pack(conn, "sface", {"r.onnx": "b" * 64}, 128)
        large = register_pack(conn, "buffalo_l", {"r.onnx": "c" * 64}, 512)
        image_id = _image(conn, "2")
        insert_faces(conn, [
            NewFace(image_id, small.id, (0, 0, 10, 10), None, 0.8, None,
                    rng.normal(size=128).astype(np.float32)),
            NewFace(image_id, large.id, (0, 0, 10, 10), None, 0.8, None,
                    rng.normal(size=512).astype(np.float32)),
        ])
        assert not has_pack_index(conn, small)  # built once the faces are in, not before
        assert ensure_pack_index(conn, small) and ensure_pack_index(conn, large)
        assert not ensure_pack_index(conn, small)
        indexes = {r[0] for r in conn.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'face_embeddings'")}
        conn.execute("SET LOCAL enable_seqscan = off")
        plan = "\n".join(r[0] for r in conn.execute(
            sql.SQL("EXPLAIN SELECT face_id FROM face_embeddings WHERE pack_id = %s "
                    "ORDER BY {} <=> %s::halfvec(128) LIMIT 5").format(index_expr(small)),
            (small.id, rng.normal(size=128).astype(np.float32).tolist()),
        ))
        opclasses = {r[0] for r in conn.execute(
            "SELECT DISTINCT o.opcname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "JOIN pg_opclass o ON o.oid = ANY(i.indclass) WHERE c.relname = ANY(%s)",
            ([f"face_embeddings_hnsw_pack{p.id}" for p in (small, large)],))}
    names = {f"face_embeddings_hnsw_pack{p.id}" for p in (small, large)}
    assert names <= indexes
    assert f"face_embeddings_hnsw_pack{small.id}" in plan
    assert opclasses == {"halfvec_cosine_ops"}  # half the size of the vectors


def _image(conn: psycopg.Connection, seed: str) -> int:
    row = conn.execute(
        "INSERT INTO images (sha256, size_bytes, status) VALUES (%s, 1, 'ok') RETURNING id",
        (seed * 64,),
    ).fetchone()
    assert row
    return int(row[0])


def _readme_reset_statements() -> list[str]:
    block = re.search(r"## Resetting with SQL.*?```sql\n(.*?)```", README.read_text(), re.S)
    assert block, "README lost its SQL reset recipes"
    return [line.split("--")[0].strip() for line in block[1].splitlines() if line.strip()]


def test_readme_sql_resets_do_what_they_say(db: Database) -> None:
    statements = _readme_reset_statements()
    assert len(statements) == 4
    rng = np.random.default_rng(2)
    with db.transaction() as conn:
        pack = register_pack(conn, "sface", {"r.onnx": "d" * 64}, 128)
        image_id = _image(conn, "3")
        insert_faces(conn, [NewFace(image_id, pack.id, (0, 0, 9, 9), None, 0.9, None,
                                    rng.normal(size=128).astype(np.float32)) for _ in range(6)])
        people = [r[0] for r in conn.execute(
            "INSERT INTO persons (pack_id) SELECT %s FROM generate_series(1, 3) RETURNING id",
            (pack.id,))]
        faces = [r[0] for r in conn.execute("SELECT id FROM face_detections ORDER BY id")]
        for i, face in enumerate(faces):
            conn.execute("UPDATE face_detections SET person_id = %s WHERE id = %s",
                         (people[i % 3], face))
        for i, person in enumerate(people):
            conn.execute("INSERT INTO person_names VALUES (%s, %s)", (person, f"P{i}"))
        before = conn.execute("SELECT face_id, embedding FROM face_embeddings "
                              "ORDER BY face_id").fetchall()

    target = str(people[0])
    one_unassign, one_delete = (s.replace("<uuid>", target) for s in statements[2:4])
    with db.transaction() as conn:
        conn.execute(one_unassign.encode())
        assert conn.execute("SELECT count(*) FROM face_detections WHERE person_id = %s",
                            (people[0],)).fetchone() == (0,)
        conn.execute(one_delete.encode())
        assert conn.execute("SELECT count(*) FROM persons").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM person_names").fetchone() == (2,)
        assert conn.execute("SELECT count(*) FROM face_detections WHERE person_id IS NOT NULL"
                            ).fetchone() == (4,)

    with db.transaction() as conn:
        conn.execute(statements[0].encode())
        assert conn.execute("SELECT count(*) FROM face_detections WHERE person_id IS NOT NULL"
                            ).fetchone() == (0,)
        conn.execute(statements[1].encode())
        assert conn.execute("SELECT count(*) FROM persons").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM person_names").fetchone() == (0,)
        after = conn.execute("SELECT face_id, embedding FROM face_embeddings "
                             "ORDER BY face_id").fetchall()
    assert [r[0] for r in after] == [r[0] for r in before]
    for (_, a), (_, b) in zip(after, before, strict=True):
        np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


@pytest.mark.parametrize("case", ["unreachable", "wrong_password", "no_pgvector", "bad_url"])
def test_bad_database_input_gives_one_clear_error_line(
    cli, case: str, pg_server: PasswordServer
) -> None:
    if case == "unreachable":
        url, expect = f"postgresql://postgres:{PASSWORD}@127.0.0.1:1/x", "Connection refused"
    elif case == "wrong_password":
        url, expect = pg_server.url(password="not-" + PASSWORD), "password authentication failed"
    elif case == "bad_url":
        url, expect = f"postgresql://postgres:{PASSWORD}@127.0.0.1:notaport/x", "invalid"
    else:
        # A database on which pgvector cannot be found, as on a server without it.
        with psycopg.connect(pg_server.url(), autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS no_pgvector")
            conn.execute("CREATE DATABASE no_pgvector")
            conn.execute("ALTER DATABASE no_pgvector SET extension_control_path = '/nonexistent'")
        url, expect = pg_server.url("no_pgvector"), "no pgvector extension"
    result = run_cli(cli, "--database", url, "migrate")
    lines = result.output.strip().splitlines()
    # A server that does not answer may be back later (2); the rest is the user's to fix.
    assert result.exit_code == (2 if case == "unreachable" else 1), result.output
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert expect in lines[0]
    if case == "no_pgvector":  # the remedy, worded by the CLI
        assert lines[0].endswith("; or omit --database / DATABASE_URL to use rbv's embedded "
                                 "PostgreSQL, which includes it"), lines[0]
    assert PASSWORD not in result.output
    assert "Traceback" not in result.output


def _rbv(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "rbv", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow  # embedded servers started in rbv subprocesses
def test_embedded_database_is_created_and_shared_by_concurrent_processes(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RBV_DATABASE_URL")}
    env["RBV_DATA_DIR"] = str(tmp_path / "rbv")
    # Two processes start the (not yet existing) embedded server at the same moment.
    racers = [_rbv("migrate", env=env) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in racers]
    assert [p.returncode for p in racers] == [0, 0], outs
    assert sum("Applied 0001_init.sql" in out for out, _ in outs) == 1
    assert (tmp_path / "rbv" / "pg" / "PG_VERSION").exists()

    # One process holds a connection open while another uses the same server.
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import os,sys,time; from rbv.config import Settings; from rbv.store import "
         "open_database; db=open_database(Settings.from_env(os.environ)); c=db.connect(); "
         "c.execute('SELECT 1'); print('ready', flush=True); sys.stdin.readline(); "
         "print(c.execute('SELECT count(*) FROM images').fetchone()[0])"],
        env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )
    assert holder.stdout and holder.stdout.readline().strip() == "ready"
    other = _rbv("stats", "--json", env=env)
    out, err = other.communicate(timeout=60)
    assert other.returncode == 0, err
    assert '"images": 0' in out
    rest, _ = holder.communicate("\n", timeout=60)
    assert holder.returncode == 0 and rest.strip() == "0"

    # The last process to leave stopped the server; the next run starts it again.
    assert _until(lambda: not (tmp_path / "rbv" / "pg" / "postmaster.pid").exists())
    again = _rbv("migrate", "--list", env=env)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert re.search(r"0001_init\.sql\s+applied", out)


def _server_runs(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A function that runs Python code in a process of its own holding ``c``, an
    autocommit connection to rbv's database on the embedded server under ``tmp_path``
    (started by that process, stopped as it exits), and returns what it printed."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RBV_DATABASE_URL")}
    env["RBV_DATA_DIR"] = str(tmp_path / "rbv")
    env["RBV_SERVER_LINGER"] = "0"
    connect = ("import os; from rbv.config import Settings; from rbv.store import "
               "open_database; c = open_database(Settings.from_env(os.environ), "
               "require_schema=False)"
               ".connect(autocommit=True); ")

    def run(code: str) -> str:
        done = subprocess.run([sys.executable, "-c", connect + code], env=env, text=True,
                              capture_output=True, timeout=120, check=False)
        assert done.returncode == 0, done.stderr
        # The last process out stopped the server: the next one starts it again.
        assert _until(lambda: not (tmp_path / "rbv" / "pg" / "postmaster.pid").exists())
        return done.stdout.strip()

    return run


@pytest.mark.slow  # embedded servers started in rbv subprocesses
def test_embedded_server_sizes_its_buffer_cache_from_the_next_start(tmp_path: Path) -> None:
    """Issue 33: PostgreSQL's default 128 MB cache held no pack's HNSW index past ~50k
    faces × 512-d, so each search of ``rbv cluster`` copied its pages in again. The
    embedded server gets 1/8 of the memory (128 MB to 4 GB) from its next start, and a
    value the user set with ALTER SYSTEM stays."""
    from rbv.store.server.embedded import shared_buffers_mb

    run = _server_runs(tmp_path)

    def buffers_mb() -> int:
        return int(run("print(c.execute(\"SELECT setting::bigint * 8 / 1024 FROM "
                       "pg_settings WHERE name = 'shared_buffers'\").fetchone()[0])"))

    assert buffers_mb() == 128  # the first start: initdb's default
    assert buffers_mb() == shared_buffers_mb() > 128
    assert shared_buffers_mb(2 << 30) == 256 and shared_buffers_mb(512 << 20) == 128
    assert shared_buffers_mb(256 << 30) == 4096
    run("c.execute(\"ALTER SYSTEM SET shared_buffers = '160MB'\")")  # the user's own
    assert buffers_mb() == 160


@pytest.mark.slow  # embedded servers started in rbv subprocesses
def test_embedded_server_keeps_its_cache_across_restarts(tmp_path: Path) -> None:
    """Issue 33: the first ``rbv cluster`` after the server started read the HNSW
    index's pages in one search at a time (1,000 new faces into 1M: 3.7 s cold, 1.8 s
    warm). From its second start the embedded server loads pg_prewarm, whose worker
    lists the cached pages at shutdown and reads them back in when the server starts
    again; a ``shared_preload_libraries`` the user set stays."""
    run = _server_runs(tmp_path)
    loaded = "print(c.execute('SHOW shared_preload_libraries').fetchone()[0])"
    assert run(loaded) == ""  # the first start: initdb's default
    # The second start: a table read whole, so its pages are cached at shutdown.
    assert run(loaded + """
c.execute("CREATE EXTENSION pg_buffercache")
c.execute("CREATE TABLE kept AS SELECT g, repeat(md5(g::text), 8) AS pad "
          "FROM generate_series(1, 20000) g")
c.execute("SELECT count(*) FROM kept")""") == "pg_prewarm"
    # The third start reads them back in the background: wait until they are all there
    # (the bound only keeps a failure from hanging).
    pages, cached = run("""
import time
pages = c.execute("SELECT pg_relation_size('kept') / 8192").fetchone()[0]
deadline, cached = time.monotonic() + 60, 0
while cached < pages and time.monotonic() < deadline:
    time.sleep(0.05)
    cached = c.execute("SELECT count(*) FROM pg_buffercache WHERE relfilenode = "
                       "pg_relation_filenode('kept') AND reldatabase = (SELECT oid FROM "
                       "pg_database WHERE datname = current_database())").fetchone()[0]
print(pages, cached)""").split()
    assert int(pages) > 100 and cached == pages
    run("c.execute(\"ALTER SYSTEM SET shared_preload_libraries = 'auto_explain'\")")
    assert run(loaded) == "auto_explain"  # the user's own


def _postmaster(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _until(condition, bound_s: float = 600) -> bool:  # type: ignore[no-untyped-def]
    """Whether ``condition`` came true; the bound only keeps a hang from blocking."""
    deadline = time.time() + bound_s
    while not condition() and time.time() < deadline:
        time.sleep(0.1)
    return bool(condition())


@pytest.mark.slow  # embedded servers started in rbv subprocesses
def test_embedded_server_lingers_for_the_next_command_then_stops(tmp_path: Path) -> None:
    """Issue 24 #8: with RBV_SERVER_LINGER, the last rbv out leaves the server to a
    detached watcher (in its place in the handle list); the next command attaches to that
    same server; with no rbv process for the linger the watcher stops it and leaves, and
    a SIGTERM to the watcher stops it at once."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RBV_DATABASE_URL")}
    env["RBV_DATA_DIR"] = str(tmp_path / "rbv")
    pgdata = (tmp_path / "rbv" / "pg").resolve()
    handles = pgdata / ".handle_pids.json"
    # With a long linger: the next command attaches, and a SIGTERM stops the watcher.
    env["RBV_SERVER_LINGER"] = "600"
    done = subprocess.run([sys.executable, "-m", "rbv", "migrate"], env=env, text=True,
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    server = _postmaster(pgdata)
    assert server is not None and psutil.pid_exists(server)  # still up after exit
    [watcher] = json.loads(handles.read_text())
    assert "rbv.store.server.linger" in psutil.Process(watcher).cmdline()
    stats = subprocess.run([sys.executable, "-m", "rbv", "stats", "--json"], env=env,
                           text=True, capture_output=True, timeout=120, check=False)
    assert stats.returncode == 0, stats.stderr
    assert _postmaster(pgdata) == server  # attached; no second start
    assert json.loads(handles.read_text()) == [watcher]
    os.kill(watcher, signal.SIGTERM)
    _assert_gone(pgdata, handles, server, watcher)
    # With a short one, the watcher stops the server by itself (how soon the next
    # command would have come is the machine's business: nothing here depends on it).
    env["RBV_SERVER_LINGER"] = "1"
    done = subprocess.run([sys.executable, "-m", "rbv", "migrate"], env=env, text=True,
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    server = _postmaster(pgdata) or 0
    watchers = json.loads(handles.read_text()) if handles.exists() else []
    _assert_gone(pgdata, handles, server, *watchers)


def _assert_gone(pgdata: Path, handles: Path, *pids: int) -> None:
    assert _until(lambda: not any(map(psutil.pid_exists, [p for p in pids if p]))), \
        "the server outlived its linger"
    assert _until(lambda: json.loads(handles.read_text()) == [])
    assert _postmaster(pgdata) is None


def test_psql_runs_sql_on_the_database(settings: Settings) -> None:
    assert settings.database_url
    env = {**os.environ, "DATABASE_URL": settings.database_url}
    proc = _rbv("psql", "-c", "SELECT count(*) AS n FROM persons", env=env)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert re.search(r"^\s*n\s*$", out, re.M) and re.search(r"^\s*0\s*$", out, re.M)


def test_hnsw_neighbours_on_two_connections_match_one(db: Database) -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1200, 128)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    with db.transaction() as conn:
        pack = register_pack(conn, "sface", {"r.onnx": "e" * 64}, 128)
        image_id = _image(conn, "4")
        insert_faces(conn, [NewFace(image_id, pack.id, (0, 0, 9, 9), None, 0.9, None, v)
                            for v in x])
        person = create_persons(conn, pack, 1)[0]
        conn.execute("UPDATE face_detections SET person_id = %s WHERE id %% 2 = 0", (person,))
        ids = [r[0] for r in conn.execute("SELECT id FROM face_detections ORDER BY id")]
        new = [f for f in ids if f % 2 == 1]
    with db.connect() as conn:
        one = assigned_neighbors(conn, pack, new, 5)
    with db.connect() as conn:
        two = assigned_neighbors(conn, pack, new, 5, db=db, connections=2)
        # the planner settings are back to the session's after the search
        assert conn.execute("SHOW enable_seqscan").fetchone() == ("on",)
    # each face's 5 neighbours, grouped in the order asked
    assert one.query.tolist() == two.query.tolist() == [f for f in new for _ in range(5)]
    same = (one.face == two.face).sum()
    assert same >= 0.99 * 600 * 5  # HNSW with iterative scan: the same, give or take order
    assert two.persons == [person] and not two.person.any()
    # Found in half precision, measured in full: each similarity is the exact one ...
    row = {f: i for i, f in enumerate(ids)}
    exact = (x[[row[f] for f in two.query.tolist()]]
             * x[[row[f] for f in two.face.tolist()]]).sum(axis=1)
    np.testing.assert_allclose(two.similarity, exact, atol=1e-6)
    # ... and of the nearest faces (a half-precision order differs only in near-ties).
    assigned = x[[row[f] for f in ids if f % 2 == 0]]
    best = np.sort(x[[row[f] for f in new]] @ assigned.T, axis=1)[:, ::-1][:, :5]
    found = np.sort(two.similarity.reshape(-1, 5), axis=1)[:, ::-1]
    assert np.mean(np.abs(found - best) < 1e-6) >= 0.99


def test_psql_url_of_the_embedded_server_is_refused_with_what_to_do(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    result = run_cli(CliRunner(), "--data-dir", str(tmp_path / "rbv"), "psql", "--url")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: --url needs a server that outlives this command, and the embedded server "
        "stops when rbv exits; `rbv db start` keeps it up and prints its URL (`rbv db url` "
        "again later)")
    assert not (tmp_path / "rbv" / "pg").exists()  # nothing was started


def test_a_pooled_database_reuses_connections_but_never_a_lock_or_a_transaction(
        db: Database) -> None:
    """rbv serve's pool: a connection comes back committed or rolled back, with no
    session advisory lock (the pack's person lock) left held, and a closed one is
    never handed out again."""
    from rbv.errors import ClusterBusy
    from rbv.store.server.connection import PooledDatabase
    from rbv.store.server.locks import person_lock

    pooled = PooledDatabase(db)
    with pooled.connect() as conn:
        pid = conn.info.backend_pid
        conn.execute("CREATE TABLE pool_probe (x int)")
        conn.execute("INSERT INTO pool_probe VALUES (1)")
    with pytest.raises(ZeroDivisionError), pooled.connect() as conn:
        assert conn.info.backend_pid == pid  # the same connection, not a new one
        conn.execute("INSERT INTO pool_probe VALUES (2)")
        raise ZeroDivisionError
    with db.connect() as other:
        assert other.execute("SELECT array_agg(x) FROM pool_probe").fetchone()[0] == [1]

    with pooled.connect(autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(1, 2)")  # a lock someone forgot
    with person_lock(pooled, 7, "p"), pytest.raises(ClusterBusy), person_lock(db, 7, "p"):
        pass
    with db.connect() as other:
        got = other.execute("SELECT pg_try_advisory_lock(1, 2)").fetchone()[0]
        assert got is True  # released when it went back
        other.execute("SELECT pg_advisory_unlock_all()")
    with person_lock(db, 7, "p"):
        pass  # the pooled person lock is gone too

    with pooled.connect() as conn:
        conn.close()
    with pooled.connect() as conn:
        assert not conn.closed and conn.execute("SELECT 1").fetchone() == (1,)
    pooled.close()


@pytest.mark.slow  # embedded servers started in rbv subprocesses
def test_a_pid_taken_over_by_another_process_does_not_keep_the_server_up(
        tmp_path: Path) -> None:
    """Issue 31 #4: the handle list names an rbv process that died without detaching,
    whose pid another (unrelated, long-lived) process now holds. The pid exists, but it
    is not the process that joined (it started later than the one recorded), so the
    next rbv process, the last real one, still stops the server when it exits."""
    from rbv.store.server.embedded import STARTS, live_handles

    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RBV_DATABASE_URL")}
    env |= {"RBV_DATA_DIR": str(tmp_path / "rbv"), "RBV_SERVER_LINGER": "0"}
    pgdata = (tmp_path / "rbv" / "pg").resolve()
    handles = pgdata / ".handle_pids.json"
    done = subprocess.run([sys.executable, "-m", "rbv", "migrate"], env=env, text=True,
                          capture_output=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert _postmaster(pgdata) is None
    stranger = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                                stdin=subprocess.PIPE)
    try:
        started = psutil.Process(stranger.pid).create_time()
        # the rbv process that held this pid started an hour before the one holding it now
        handles.write_text(json.dumps([stranger.pid]))
        (pgdata / STARTS).write_text(json.dumps({str(stranger.pid): started - 3600}))
        stats = subprocess.run([sys.executable, "-m", "rbv", "stats", "--json"], env=env,
                               text=True, capture_output=True, timeout=120, check=False)
        assert stats.returncode == 0, stats.stderr
        left = _postmaster(pgdata)
        assert left is None, "the server outlived the last rbv process"
        assert json.loads(handles.read_text()) == []
        # The same pid with its own start recorded is a process attached, and kept.
        handles.write_text(json.dumps([stranger.pid]))
        (pgdata / STARTS).write_text(json.dumps({str(stranger.pid): started}))
        assert live_handles(pgdata) == [stranger.pid]
    finally:
        stranger.kill()
        stranger.wait()
        server = _postmaster(pgdata)
        if server is not None and psutil.pid_exists(server):
            os.kill(server, signal.SIGINT)
            psutil.Process(server).wait(60)

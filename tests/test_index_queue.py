"""The embed work queue on a real PostgreSQL: claims never overlap, failures are
retried on later runs up to a cap, dead workers' claims are taken back."""

from __future__ import annotations

import socket
import threading

import numpy as np
import psycopg

from rbv.store import Database
from rbv.store.queries.faces import NewFace
from rbv.store.queries.packs import register_pack
from rbv.store.queries.scans import (
    ScanFailure,
    claim_pending_images,
    complete_scans,
    enqueue_catalogued,
    release_dead_claims,
)


def _setup(db: Database, n: int) -> int:
    with db.transaction() as conn:
        pack = register_pack(conn, "sface", {"r.onnx": "e" * 64}, 4)
        conn.execute(
            "INSERT INTO images (sha256, size_bytes, status) "
            "SELECT lpad(to_hex(g), 64, '0'), 1, 'ok' FROM generate_series(1, %s) g", (n,))
        conn.execute("INSERT INTO image_paths (image_id, path) "
                     "SELECT id, '/photos/' || id || '.jpg' FROM images")
        assert enqueue_catalogued(conn, pack.id) == n
        assert enqueue_catalogued(conn, pack.id) == 0
    return pack.id


def _now(conn: psycopg.Connection):  # type: ignore[no-untyped-def]
    return conn.execute("SELECT now()").fetchone()[0]  # type: ignore[index]


def test_concurrent_workers_never_claim_the_same_image(db: Database) -> None:
    pack_id = _setup(db, 60)
    done: dict[str, list[int]] = {}

    def worker(name: str) -> None:
        mine: list[int] = []
        with db.connect(autocommit=True) as conn:
            start = _now(conn)
            while claims := claim_pending_images(conn, pack_id, name, 4, max_attempts=3,
                                                 failed_before=start):
                faces = {c.image_id: [NewFace(c.image_id, pack_id, (0, 0, 9, 9), None, 0.9,
                                              None, np.ones(4, np.float32))] for c in claims}
                complete_scans(conn, pack_id, name, faces, [])
                mine += [c.image_id for c in claims]
        done[name] = mine

    threads = [threading.Thread(target=worker, args=(f"h:{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [i for ids in done.values() for i in ids]
    assert len(claimed) == len(set(claimed)) == 60
    with db.connect() as conn:
        assert conn.execute("SELECT count(*), count(DISTINCT image_id) FROM face_detections"
                            ).fetchone() == (60, 60)
        assert conn.execute("SELECT DISTINCT status, face_count, attempts FROM face_scans"
                            ).fetchall() == [("done", 1, 1)]


def test_failures_wait_for_the_next_run_and_stop_at_the_attempt_cap(db: Database) -> None:
    pack_id = _setup(db, 2)
    with db.connect(autocommit=True) as conn:
        seen = []
        for _run in range(4):
            start = _now(conn)
            claims = claim_pending_images(conn, pack_id, "w:1", 10, max_attempts=3,
                                          failed_before=start)
            seen.append([(c.image_id, c.attempts) for c in claims])
            complete_scans(conn, pack_id, "w:1", {c.image_id: [] for c in claims[:1]
                                                  if c.image_id == 1},
                           [ScanFailure(c.image_id, "broken") for c in claims
                            if c.image_id == 2])
            # Within one run, a failure is not retried.
            assert claim_pending_images(conn, pack_id, "w:1", 10, max_attempts=3,
                                        failed_before=start) == []
        # Image 1 succeeded once and is done; image 2 is retried on each run up to 3 tries.
        assert seen == [[(1, 1), (2, 1)], [(2, 2)], [(2, 3)], []]
        rows = conn.execute("SELECT image_id, status, attempts, error FROM face_scans "
                            "ORDER BY image_id").fetchall()
        assert rows == [(1, "done", 1, None), (2, "failed", 3, "broken")]


def test_claims_of_dead_workers_are_taken_back(db: Database) -> None:
    pack_id = _setup(db, 3)
    host = socket.gethostname()
    with db.connect(autocommit=True) as conn:
        start = _now(conn)
        dead = claim_pending_images(conn, pack_id, f"{host}:999999", 1, max_attempts=3,
                                    failed_before=start)
        alive = claim_pending_images(conn, pack_id, f"{host}:1", 1, max_attempts=3,
                                     failed_before=start)
        other = claim_pending_images(conn, pack_id, "elsewhere:5", 1, max_attempts=3,
                                     failed_before=start)
        assert release_dead_claims(conn, pack_id, host, lambda pid: pid != 999999, 600) == 1
        again = claim_pending_images(conn, pack_id, f"{host}:2", 5, max_attempts=3,
                                     failed_before=start)
        assert [c.image_id for c in again] == [dead[0].image_id]
        # A result from a worker whose claim was taken back is not written, nor counted
        # as its own (issue 62 #9: a frozen worker reported images another one scanned).
        late = complete_scans(conn, pack_id, f"{host}:999999", {dead[0].image_id: []},
                              [ScanFailure(dead[0].image_id, "late")])
        assert (late.images, late.failed, late.faces) == ([], [], 0)
        status = conn.execute("SELECT worker FROM face_scans WHERE image_id = %s",
                              (dead[0].image_id,)).fetchone()
        assert status == (f"{host}:2",)
        mine = complete_scans(conn, pack_id, f"{host}:2", {dead[0].image_id: []}, [])
        assert mine.images == [dead[0].image_id]
        # Claims not renewed for the lease are taken back whoever holds them.
        conn.execute("UPDATE face_scans SET renewed_at = now() - interval '2 hours' "
                     "WHERE image_id = %s", (other[0].image_id,))
        assert release_dead_claims(conn, pack_id, host, lambda pid: True, 600) == 1
        assert alive

"""`rbv serve` at scale: p50/p95 of each kind of request over HTTP on N synthetic faces
(default 100k) in P persons (default 5,000, a tenth of them split in two, so 5,500),
against the same library call without HTTP (the store query or job function the route
runs) in the same process; the time the whole-pack ranking of merge suggestions takes
(in the background) and so the first suggestion on a library never ranked, against the
ranking before #22 in the same process; the time to the first suggestion on a restarted
server, with the library unchanged and after an edit made elsewhere.

Embeddings are synthetic (128-d: a random direction per person plus noise, so faces of
one person are alike), persons' sizes follow a Zipf-like law. Photos do not exist, so
face crops are not measured here (tests/test_serve.py checks them on real photos).

    uv run python scripts/bench_serve.py                       # scratch embedded server
    uv run python scripts/bench_serve.py --faces 20k --persons 1k --database postgresql://…
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench_cluster import _size
from rbv.cluster.suggestions import suggest_merges
from rbv.config import Settings
from rbv.jobs.persons import edit_log
from rbv.jobs.persons import edits as editing
from rbv.jobs.persons.evidence import load_evidence
from rbv.jobs.persons.review import review
from rbv.serve.app import ReviewServer
from rbv.store import open_database
from rbv.store.queries.faces import NewFace, insert_faces
from rbv.store.queries.review_pages import PeopleFilter, people_page
from rbv.store.server.migrations import apply_pending
from suggest_baseline import face_knn_suggest_merges

DIM = 128


def _load(db, faces: int, persons: int, seed: int = 7) -> int:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    tag = f"serve{time.time_ns()}"
    sizes = np.floor(persons * rng.random(faces) ** 3).astype(np.int64)  # person per face
    # A tenth of the persons split in two, as clustering does: merges to suggest.
    split = (sizes < persons // 10) & (rng.random(faces) < 0.5)
    centres = rng.standard_normal((persons, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    noise = rng.standard_normal((faces, DIM)).astype(np.float32) * 0.085
    vectors = centres[sizes] + noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    with db.transaction() as conn:
        pack = conn.execute(
            "INSERT INTO model_packs (name, fingerprint, files, embedding_dim) "
            "VALUES (%s, %s, '{}', %s) RETURNING id", (tag, tag, DIM)).fetchone()[0]
        images = (faces + 3) // 4
        first = conn.execute(
            "INSERT INTO images (sha256, size_bytes, status, width, height) "
            "SELECT md5(%s || g::text) || md5(g::text || %s), 1, 'ok', 4000, 3000 "
            "FROM generate_series(0, %s - 1) g RETURNING id",
            (tag, tag, images)).fetchall()[0][0]
        # Faces of one photo go to different persons (one face per photo per person).
        order = np.argsort(rng.random(faces))
        image_of = np.empty(faces, np.int64)
        image_of[order] = np.arange(faces) // 4
        insert_faces(conn, (NewFace(int(first + image_of[i]), pack,
                                    (100.0 * (i % 4), 100.0, 100.0 * (i % 4) + 90, 190.0),
                                    None, 0.9, None, vectors[i]) for i in range(faces)))
        ids = [r[0] for r in conn.execute(
            "INSERT INTO persons (pack_id, source) SELECT %s, 'cluster' "
            "FROM generate_series(1, %s) RETURNING id", (pack, persons + persons // 10))]
        face_ids = [int(r[0]) for r in conn.execute(
            "SELECT id FROM face_detections WHERE pack_id = %s ORDER BY id", (pack,))]
        conn.execute(
            "UPDATE face_detections f SET person_id = t.p, assigned_by = 'cluster' FROM "
            "unnest(%s::bigint[], %s::uuid[]) AS t(f, p) WHERE f.id = t.f",
            (face_ids, [ids[p + persons if half else p]
                        for p, half in zip(sizes.tolist(), split.tolist(), strict=True)]))
        conn.execute("DELETE FROM face_detections a USING face_detections b WHERE "
                     "a.image_id = b.image_id AND a.person_id = b.person_id AND a.id > b.id "
                     "AND a.pack_id = %s", (pack,))
        conn.execute("INSERT INTO person_names (person_id, name) SELECT id, 'P' || "
                     "row_number() OVER (ORDER BY id) FROM persons WHERE pack_id = %s "
                     "AND id IN (SELECT person_id FROM face_detections) "
                     "ORDER BY id LIMIT %s", (pack, persons // 5))
        # As `rbv cluster` leaves it: the recognizer's impostor model in the pack's
        # settings (random 128-d directions: mean 0, spread 1/sqrt(128)).
        conn.execute("UPDATE model_packs SET settings = %s WHERE id = %s", (json.dumps(
            {"impostor": {"mu": 0.0, "sigma": DIM ** -0.5, "tau": 0.02, "estimated": True,
                          "source": "synthetic"}}), pack))
        conn.execute("ANALYZE")
    return int(pack)


def _times(call: Callable[[], object], repeat: int) -> tuple[float, float]:
    call()  # warm
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.95 * len(times)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=_size, default=100_000)
    parser.add_argument("--persons", type=_size, default=5_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database", default=None)
    args = parser.parse_args()
    settings = Settings(database_url=args.database,
                        data_dir=Path(tempfile.mkdtemp(prefix="rbv-bench-")))
    db = open_database(settings, require_schema=False)
    apply_pending(db)
    t = time.perf_counter()
    _load(db, args.faces, args.persons)
    print(f"{args.faces:,} faces, {args.persons + args.persons // 10:,} persons on "
          f"{db.display}: "
          f"load {time.perf_counter() - t:.1f} s")
    cache = settings.data_dir / "serve-cache"
    server = ReviewServer(db, cache, port=0)
    server.start_in_thread()
    base = f"http://127.0.0.1:{server.port}"

    def get(path: str) -> Callable[[], object]:
        return lambda: urllib.request.urlopen(base + path, timeout=600).read()

    def post(action: str, body: dict[str, object]) -> Any:
        req = urllib.request.Request(base + "/api/" + action, json.dumps(body).encode(),
                                     {"Content-Type": "application/json",
                                      "X-RBV-Token": server.token})
        return json.load(urllib.request.urlopen(req, timeout=600))

    with db.connect() as conn:
        tiles, _ = people_page(conn, offset=0, limit=60)
        mid = str(tiles[len(tiles) // 2].id)
    t = time.perf_counter()
    server.queue.warm().join()
    ranked = time.perf_counter() - t
    page = urllib.request.urlopen(base + "/suggestions", timeout=600).read()
    assert b"data-keep=" in page, page[-400:]
    print(f"first suggestion, never ranked (the whole pack ranked in the background, then "
          f"the page): {time.perf_counter() - t:.2f} s (ranking {ranked:.2f} s)")
    # Baseline: the ranking before #22 (candidates from a k-NN graph over every face), on
    # the same arrays, in this process.
    with db.connect() as conn:
        evidence = load_evidence(conn, None)
    args_ = (evidence.faces.embeddings, evidence.codes, evidence.faces.image_ids,
             evidence.model)
    t = time.perf_counter()
    suggest_merges(*args_)
    new = time.perf_counter() - t
    t = time.perf_counter()
    face_knn_suggest_merges(*args_)
    old = time.perf_counter() - t
    print(f"ranking alone (evidence read): {new:.2f} s; before #22 (face k-NN graph "
          f"candidates) {old:.2f} s; ratio new/old {new / old:.2f}")
    first = server.queue.next()
    assert first is not None
    keep, other = first.suggestion.keep.id, first.suggestion.other.id
    t = time.perf_counter()
    post("accept", {"keep": str(keep), "other": str(other)})
    get("/suggestions")()
    print(f"accept a suggestion and show the next: {time.perf_counter() - t:.2f} s")
    server.shutdown()
    server.server_close()

    # A restart finds the ranking kept in the cache; after an edit made elsewhere (a
    # command) it shows the kept one, less settled pairs, while ranking afresh.
    for when in ("restart, library unchanged", "restart after a command's edit"):
        if "edit" in when:
            editing.name(db, mid, "Renamed elsewhere")
        server = ReviewServer(db, cache, port=0)
        server.start_in_thread()
        base = f"http://127.0.0.1:{server.port}"
        t = time.perf_counter()
        page = urllib.request.urlopen(base + "/suggestions", timeout=600).read()
        assert b"data-keep=" in page, page[-400:]
        print(f"first suggestion, {when}: {time.perf_counter() - t:.3f} s")
        if "edit" in when:
            server.queue.warm().join()
        else:
            server.shutdown()
            server.server_close()

    # The baseline calls go through the server's kept connections too, so the ratio is
    # what HTTP, routing and rendering add.
    db = server.db

    def direct_people() -> object:
        with db.connect() as conn:
            return people_page(conn, which=PeopleFilter.unnamed, offset=1200, limit=60)

    name_n = iter(range(10**9))

    def named_over_http() -> object:
        return post("name", {"person": mid, "name": f"Bench {next(name_n)}"})

    def named_direct() -> object:
        return editing.name(db, mid, f"Bench {next(name_n)}")

    cases = [
        ("people, page 21 of unnamed", get("/?filter=unnamed&page=21"), direct_people),
        ("person page, first 200 faces", get(f"/person/{mid}"),
         lambda: review(db, mid, 200)),
        ("next suggestion (cached)", get("/suggestions"), None),
        ("name a person (logged edit)", named_over_http, named_direct),
        ("history", get("/history"), lambda: edit_log.history(db, 100)),
    ]
    print(f"{'request':34} {'p50 ms':>8} {'p95 ms':>8} {'direct p95':>11} {'ratio':>6}")
    for label, over_http, direct in cases:
        p50, p95 = _times(over_http, args.repeat)
        line = f"{label:34} {p50 * 1000:8.1f} {p95 * 1000:8.1f}"
        if direct is not None:
            _, d95 = _times(direct, args.repeat)
            line += f" {d95 * 1000:11.1f} {p95 / d95:6.2f}"
        print(line)
    p50, p95 = _times(lambda: post("undo", {"count": 1}), min(args.repeat, 10))
    print(f"{'undo the last edit':34} {p50 * 1000:8.1f} {p95 * 1000:8.1f}")
    # Take one face out ("not this person"), undone after each timing (not timed).
    with db.connect() as conn:
        face = int(conn.execute("SELECT min(id) FROM face_detections WHERE person_id = %s",
                                (mid,)).fetchone()[0])
    out, direct_out = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        post("reject", {"person": mid, "faces": [face]})
        out.append(time.perf_counter() - t)
        edit_log.undo(db, 1)
        t = time.perf_counter()
        editing.reject(db, mid, [face])
        direct_out.append(time.perf_counter() - t)
        edit_log.undo(db, 1)
    out.sort()
    direct_out.sort()
    p95, d95 = (v[min(len(v) - 1, int(0.95 * len(v)))] for v in (out, direct_out))
    print(f"{'not this person, 1 face':34} {statistics.median(out) * 1000:8.1f} "
          f"{p95 * 1000:8.1f} {d95 * 1000:11.1f} {p95 / d95:6.2f}")
    server.shutdown()
    server.server_close()

if __name__ == "__main__":
    main()

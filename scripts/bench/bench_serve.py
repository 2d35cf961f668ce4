"""`rbv serve` at scale, against issue 30's targets: the first prompt of each kind ("which
pairs?", "which of these?", "same person?") from the server accepting connections to the
page served with a prompt (polled over HTTP), on a library never ranked (against the
whole-pack ranking it waited for before), after a restart (library unchanged) and after
an edit made elsewhere; answer -> next prompt p50/p95 of each kind (against the same
through the queue without HTTP). Then p50/p95 of each kind of request over HTTP on N
synthetic faces (default 100k) in P persons (default 5,000, a tenth of them split in
two, so 5,500), against the same library call without HTTP in the same process, and the
ranking alone against the ranking before #22.

Embeddings are synthetic (128-d: a random direction per person plus noise, so faces of
one person are alike), persons' sizes follow a Zipf-like law. Photos do not exist, so
face crops are not measured here (tests/test_serve.py checks them on real photos).

    uv run python scripts/bench/bench_serve.py                       # scratch embedded server
    uv run python scripts/bench/bench_serve.py --faces 20k --persons 1k --database postgresql://…
"""

from __future__ import annotations

import argparse
import atexit
import json
import re
import shutil
import statistics
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench_cluster import _size
from rbv.cluster.centroids import label_sums
from rbv.cluster.suggestions import suggest_merges
from rbv.config import Settings
from rbv.jobs.persons import edit_log, face_moves, person_details
from rbv.jobs.persons.evidence import load_evidence
from rbv.jobs.persons.review import review
from rbv.serve.app import ReviewServer
from rbv.serve.interpreter import behind_the_answers
from rbv.serve.ranking import rank
from rbv.store import open_database
from rbv.store.queries.faces import NewFace, insert_faces
from rbv.store.queries.person_lookup import names_of
from rbv.store.queries.person_sums import SUM_MIN_FACES, store_sums
from rbv.store.queries.review_pages import PeopleFilter, people_page
from rbv.store.server.connection import Database
from rbv.store.server.migrations import apply_pending
from suggest_baseline import face_knn_suggest_merges

DIM = 128


def scratch(database: str | None) -> tuple[Settings, Database]:
    """The server at ``database``, else a scratch embedded one; its schema current."""
    data_dir = tempfile.mkdtemp(prefix="rbv-bench-")
    # Registered before the server starts, so it runs after the server is stopped (the
    # folder, 370 MB at 100k faces, was left in /tmp by every run).
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    settings = Settings(database_url=database, data_dir=Path(data_dir), server_linger_s=0)
    db = open_database(settings, require_schema=False)
    apply_pending(db)
    return settings, db


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
        # Faces of one photo are of different people (one face per photo per identity:
        # the two halves of a split identity never share a photo, or they could never
        # be suggested; a later face of an identity already in the photo is dropped).
        order = np.argsort(rng.random(faces))
        image_of = np.empty(faces, np.int64)
        image_of[order] = np.arange(faces) // 4
        _, kept = np.unique(image_of * persons + sizes, return_index=True)
        kept.sort()
        faces, sizes, split, vectors, image_of = (
            len(kept), sizes[kept], split[kept], vectors[kept], image_of[kept])
        insert_faces(conn, (NewFace(int(first + image_of[i]), pack,
                                    (100.0 * (i % 4), 100.0, 100.0 * (i % 4) + 90, 190.0),
                                    None, 0.9, None, vectors[i]) for i in range(faces)))
        ids = [r[0] for r in conn.execute(
            "INSERT INTO persons (pack_id, source) SELECT %s, 'cluster' "
            "FROM generate_series(1, %s) RETURNING id", (pack, persons + persons // 10))]
        face_ids = [int(r[0]) for r in conn.execute(
            "SELECT id FROM face_detections WHERE pack_id = %s ORDER BY id", (pack,))]
        person_of = [ids[p + persons if half else p]
                     for p, half in zip(sizes.tolist(), split.tolist(), strict=True)]
        conn.execute(
            "UPDATE face_detections f SET person_id = t.p, assigned_by = 'cluster' FROM "
            "unnest(%s::bigint[], %s::uuid[]) AS t(f, p) WHERE f.id = t.f",
            (face_ids, person_of))
        # As `rbv cluster` leaves it: each person's sum cached (answers that move faces
        # log the moves against them, or drop them).
        store_sums(conn, *label_sums(vectors, person_of, SUM_MIN_FACES))
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


# The unlikely pairs too (as a person who went on past "nothing likely left"): the
# synthetic library's pairs are mostly unlikely, and the bench answers many.
KINDS = (("grid", "/grid?unlikely=1"), ("pair", "/suggestions?unlikely=1"),
         ("pairs", "/pairs?unlikely=1"))
PROMPT = {"pairs": 'class="candidates pairs"', "grid": 'class="candidates" data-keep=',
          "pair": 'class="pair" data-keep='}
PAIR_TICK = re.compile(r'data-keep="([0-9a-f-]+)" data-other="([0-9a-f-]+)"')
"""What a page with a prompt holds, per kind: "which of these are X?" and "same person?"."""


def _open(url: str, cookie: str, body: dict[str, object] | None = None, token: str = ""
          ) -> str:
    headers = {"Cookie": cookie}
    if body is not None:
        headers |= {"Content-Type": "application/json", "X-RBV-Token": token}
    req = urllib.request.Request(url, None if body is None else json.dumps(body).encode(),
                                 headers)
    try:
        with urllib.request.urlopen(req, timeout=600) as answer:
            return str(answer.read().decode())
    except urllib.error.HTTPError as exc:  # the server's own words, not urllib's
        raise SystemExit(f"{url}: HTTP {exc.code}: {exc.read().decode(errors='replace')}"
                         ) from None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _Client:
    """Signed in as the browser that opened the printed URL (its session cookie)."""

    def __init__(self, server: ReviewServer) -> None:
        self.base = f"http://127.0.0.1:{server.port}{server.access.base}"  # its folder
        self.token = server.token
        try:
            urllib.request.build_opener(_NoRedirect).open(server.url, timeout=600)
        except urllib.error.HTTPError as exc:  # the 303 that sets the cookie
            self.cookie = str(exc.headers["set-cookie"]).split(";", 1)[0]

    def get(self, path: str) -> str:
        return _open(self.base + path, self.cookie)

    def post(self, action: str, body: dict[str, object]) -> Any:
        return json.loads(_open(self.base + "/api/" + action, self.cookie, body, self.token))


def _mergeable(db: Database, pairs: list[list[str]]) -> list[list[str]]:
    """Of ``pairs`` (persons' ids), those whose merge needs no name chosen: at most one
    side named (a merge of two names is refused until the user says which stays)."""
    with db.connect() as conn:
        named = names_of(conn, [uuid.UUID(p) for pair in pairs for p in pair])
    return [pair for pair in pairs if sum(uuid.UUID(p) in named for p in pair) < 2]


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
    parser.add_argument("--answers", type=int, default=20,
                        help="answers timed per prompt kind")
    parser.add_argument("--database", default=None)
    args = parser.parse_args()
    settings, db = scratch(args.database)
    t = time.perf_counter()
    _load(db, args.faces, args.persons)
    print(f"{args.faces:,} faces, {args.persons + args.persons // 10:,} persons on "
          f"{db.display}: "
          f"load {time.perf_counter() - t:.1f} s")
    cache = settings.data_dir / "serve-cache"
    with db.connect() as conn:
        tiles, _ = people_page(conn, offset=0, limit=60)
        mid = str(tiles[len(tiles) // 2].id)

    # Baseline: the whole-pack ranking the queue makes (what the first prompt waited for
    # before issue 30's first pass), and the ranking before #22, in this process.
    t = time.perf_counter()
    with behind_the_answers(), db.connect() as conn:
        rank(conn, None, 0.0)
    full = time.perf_counter() - t
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
    print(f"whole-pack ranking as the queue makes it (read, rank, conflicts): {full:.2f} s; "
          f"ranking alone {new:.2f} s, before #22 (face k-NN graph candidates) {old:.2f} s; "
          f"ratio new/old {new / old:.2f}")

    # The first prompt: from the moment the server accepts connections to the first
    # prompt page served with a prompt (polled over HTTP as a browser would reload it),
    # each kind on a server of its own; against the whole ranking above (the old wait).
    print(f"{'first prompt (target 1 s)':44} {'kind':6} {'start':>7} {'prompt':>7} "
          f"{'/ranking':>8}")
    server = None

    def first_prompt(when: str) -> None:
        nonlocal server
        for kind, path in KINDS:
            if server is not None:
                server.shutdown()
                server.server_close()
                if server.queue.ranker.thread is not None:  # its ranking ends with it
                    server.queue.ranker.thread.join()  # (untimed)
            if "never" in when:
                (cache / "suggestions.json").unlink(missing_ok=True)
            t0 = time.perf_counter()
            server = ReviewServer(db, cache, port=0)
            server.start_in_thread()  # returns once uvicorn accepts connections
            t1 = time.perf_counter()
            client = _Client(server)
            while PROMPT[kind] not in client.get(path):
                time.sleep(0.02)  # polled every 20 ms (a browser reloads the page in 3 s)
            t2 = time.perf_counter()
            print(f"{when:44} {kind:6} {t1 - t0:7.3f} {t2 - t1:7.3f} {(t2 - t1) / full:8.2f}")

    first_prompt("fresh start, never ranked")
    assert server is not None
    server.queue.warm().join()
    first_prompt("restart, library unchanged (kept ranking)")
    server.queue.warm().join()
    person_details.name(db, uuid.UUID(mid), "Renamed elsewhere")
    first_prompt("restart after a command's edit")
    assert server is not None
    server.queue.warm().join()

    # Answer -> next prompt: the answer's POST and the page reload that shows the next
    # prompt (what the page's script does), as fast as the bench can answer (so rankings
    # that learn from the answers run behind it all the time); against the same answer
    # through the queue and the next prompt without HTTP (queue.next/next_grid).
    client = _Client(server)
    queue = server.queue
    print(f"{'answer -> next prompt (target p95 200 ms)':44} {'p50 ms':>8} {'p95 ms':>8} "
          f"{'direct p95':>11} {'ratio':>6}")
    for kind, path in KINDS:
        by_http, by_queue = [], []
        for i in range(args.answers):
            page = client.get(path)
            if kind == "pairs":
                shown_pairs = [list(p) for p in PAIR_TICK.findall(page)]
                action, body = "pairs", {
                    "same": _mergeable(server.db, shown_pairs)[:1] if i % 2 else [],
                    "shown": shown_pairs}
            elif kind == "grid":
                keep = re.search(r'class="candidates" data-keep="([^"]+)"', page)
                assert keep is not None, page[-400:]
                shown = re.findall(r'<label class="candidate" data-person="([^"]+)"', page)
                same = [o for _, o in _mergeable(server.db, [[keep[1], o] for o in shown])]
                action, body = "grid", {"keep": keep[1], "same": same[:1] if i % 2 else [],
                                        "shown": shown}
            else:
                found = re.search(r'class="pair" data-keep="([^"]+)" data-other="([^"]+)"',
                                  page)
                assert found is not None, page[-400:]
                merge = i % 2 and _mergeable(server.db, [[found[1], found[2]]])
                action, body = ("accept" if merge else "dismiss",
                                {"keep": found[1], "other": found[2]})
            t = time.perf_counter()
            client.post(action, body)
            page = client.get(path)
            by_http.append(time.perf_counter() - t)
            assert PROMPT[kind] in page, page[-400:]
            # the same through the library: the next answer, without HTTP
            t = time.perf_counter()
            if kind == "pairs":
                shown_page = queue.next_pairs(unlikely=True)[0]
                assert shown_page is not None
                ids = [(s.keep.id, s.other.id) for s in shown_page.pairs]
                queue.answer_pairs(ids, [p for p, s in zip(ids, shown_page.pairs, strict=True)
                                         if not (s.keep.name and s.other.name)][:1]
                                   if i % 2 else [])
                queue.next_pairs(unlikely=True)
            elif kind == "grid":
                g = queue.next_grid(unlikely=True)[0]
                assert g is not None
                shown_ids = [c.person.id for c in g.candidates]
                same_ids = [c.person.id for c in g.candidates
                            if not (g.keep.name and c.person.name)]
                queue.answer_grid(g.keep.id, same_ids[:1] if i % 2 else [], shown_ids)
                queue.next_grid(unlikely=True)
            else:
                pair = queue.next(unlikely=True)
                assert pair is not None
                s = pair.suggestion
                merge = i % 2 and not (s.keep.name and s.other.name)
                (queue.accept if merge else queue.dismiss)(s.keep.id, s.other.id)
                queue.next(unlikely=True)
            by_queue.append(time.perf_counter() - t)
        by_http.sort()
        by_queue.sort()
        p95, d95 = (v[min(len(v) - 1, int(0.95 * len(v)))] for v in (by_http, by_queue))
        print(f"{kind + ': answer, then the next prompt':44} "
              f"{statistics.median(by_http) * 1000:8.1f} {p95 * 1000:8.1f} "
              f"{d95 * 1000:11.1f} {p95 / d95:6.2f}")
    queue.warm().join()
    base = client.base
    token = server.token
    cookie = client.cookie

    def get(path: str) -> Callable[[], object]:
        return lambda: _open(base + path, cookie)

    def post(action: str, body: dict[str, object]) -> Any:
        return json.loads(_open(base + "/api/" + action, cookie, body, token))

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
        return person_details.name(db, uuid.UUID(mid), f"Bench {next(name_n)}")

    cases = [
        ("people, page 21 of unnamed", get("/?filter=unnamed&page=21"), direct_people),
        ("person page, first 200 faces", get(f"/person/{mid}"),
         lambda: review(db, uuid.UUID(mid), 200)),
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
    # Take one face out ("not this person"), undone after each timing (not timed); of a
    # person still there (the answers above may have merged ``mid`` into another).
    with db.connect() as conn:
        face, owner = conn.execute("SELECT id, person_id::text FROM face_detections "
                                   "WHERE person_id IS NOT NULL ORDER BY id LIMIT 1").fetchone()
    out, direct_out = [], []
    for _ in range(args.repeat):
        t = time.perf_counter()
        post("reject", {"person": owner, "faces": [face]})
        out.append(time.perf_counter() - t)
        edit_log.undo(db, 1)
        t = time.perf_counter()
        face_moves.reject(db, uuid.UUID(owner), [face])
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

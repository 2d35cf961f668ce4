"""The HNSW searches of an incremental `rbv cluster` on a kept library, at several
``ef_search`` values: time, the neighbours each shares with the first value's, and the
buffers a search touches (EXPLAIN ANALYZE BUFFERS: hit in PostgreSQL's cache, read from
the OS).

    uv run python scripts/bench/bench_cluster_db.py --faces 1M --dim 512 --no-baseline \
        --keep /tmp/b1m
    uv run python scripts/bench/bench_hnsw_search.py /tmp/b1m --ef 40 30

``--faces`` random faces that have a person are searched (as new faces would be: their
``k`` nearest faces that have a person, on two connections), once to warm the cache,
then ``--rounds`` times at each value, alternated. Last line: ``first / each other =``
the median times' ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import psycopg

from rbv.config import Settings
from rbv.jobs.grouping.cluster_update import HNSW_CONNECTIONS, MATCH_NEIGHBORS
from rbv.store import open_database
from rbv.store.queries.neighbors import Neighbors, assigned_neighbors
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.queries.packs import PackRow, index_expr


def buffers(conn: psycopg.Connection, pack: PackRow, ids: list[int], ef: int
            ) -> tuple[int, int]:
    """Buffers the searches of ``ids`` hit and read, in all."""
    vec = index_expr(pack).as_string(conn)
    conn.execute("SELECT set_config('hnsw.ef_search', %s, true), "
                 "set_config('hnsw.iterative_scan', 'relaxed_order', true)", (str(ef),))
    for name in ("enable_seqscan", "enable_hashjoin", "enable_mergejoin"):
        conn.execute(f"SET LOCAL {name} = off")
    row = conn.execute(
        f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT q.face_id, m.id FROM "
        f"face_embeddings q CROSS JOIN LATERAL (SELECT f.id FROM face_embeddings e "
        f"JOIN face_detections f ON f.id = e.face_id WHERE e.pack_id = {pack.id} "
        f"AND f.person_id IS NOT NULL ORDER BY e.{vec} <=> q.{vec} "
        f"LIMIT {MATCH_NEIGHBORS}) m WHERE q.face_id = ANY(%s)", (ids,)).fetchone()
    conn.rollback()
    assert row is not None
    plan = (row[0] if isinstance(row[0], list) else json.loads(row[0]))[0]["Plan"]
    return int(plan["Shared Hit Blocks"]), int(plan["Shared Read Blocks"])


def pairs(found: Neighbors) -> set[tuple[int, int]]:
    return set(zip(found.query.tolist(), found.face.tolist(), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="the folder bench_cluster_db.py --keep kept")
    parser.add_argument("--ef", type=int, nargs="+", default=[40, 30])
    parser.add_argument("--faces", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    db = open_database(Settings(data_dir=args.data))
    times: dict[int, list[float]] = {ef: [] for ef in args.ef}
    found: dict[int, Neighbors] = {}
    with db.connect() as conn:
        pack = find_pack(conn, None, sole_fallback=True)
        conn.execute("SELECT setseed(0.5)")
        ids = [f for (f,) in conn.execute(
            "SELECT id FROM face_detections WHERE pack_id = %s AND person_id IS NOT NULL "
            "ORDER BY random() LIMIT %s", (pack.id, args.faces))]
        conn.rollback()
        print(f"{len(ids):,} faces of pack {pack.name} searched, k {MATCH_NEIGHBORS}, "
              f"{HNSW_CONNECTIONS} connections", flush=True)
        assigned_neighbors(conn, pack, ids, MATCH_NEIGHBORS, args.ef[0], db=db,
                           connections=HNSW_CONNECTIONS)  # the cache warmed
        conn.rollback()
        for round_ in range(args.rounds):
            for ef in args.ef if round_ % 2 == 0 else args.ef[::-1]:
                t = time.perf_counter()
                found[ef] = assigned_neighbors(conn, pack, ids, MATCH_NEIGHBORS, ef, db=db,
                                               connections=HNSW_CONNECTIONS)
                times[ef].append(time.perf_counter() - t)
                conn.rollback()
        first = pairs(found[args.ef[0]])
        for ef in args.ef:
            hit, read = buffers(conn, pack, ids, ef)
            print(f"ef_search {ef}: {', '.join(f'{s:.3f}' for s in times[ef])} s; neighbours "
                  f"shared with ef_search {args.ef[0]}: "
                  f"{len(first & pairs(found[ef])) / max(1, len(first)):.3f}; buffers a "
                  f"search {hit / len(ids):.0f} hit, {read / len(ids):.1f} read", flush=True)
    base = statistics.median(times[args.ef[0]])
    print("first / each other = " + ", ".join(
        f"{base / statistics.median(times[ef]):.2f} (ef_search {ef})" for ef in args.ef[1:]))


if __name__ == "__main__":
    main()

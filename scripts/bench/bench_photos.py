"""`rbv photos` at scale: the person query on N synthetic faces (default 1M), against
the same query with index scans switched off (PostgreSQL's sequential-scan plan).

Faces are spread over photos four at a time and over persons by a Zipf-like law (a few
persons with tens of thousands of faces, most with a few), with dates over 20 years.
Queries: the two biggest persons together, two mid-sized ones, one small one with a
--without and a date range.

    uv run python scripts/bench/bench_photos.py                 # 1M faces, scratch embedded server
    uv run python scripts/bench/bench_photos.py --faces 100k --database postgresql://…
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

from bench_cluster import _size
from rbv.config import Settings
from rbv.jobs.persons.lookup import resolve_all
from rbv.jobs.persons.photos import PhotoQuery, find_photos
from rbv.store import open_database
from rbv.store.server.migrations import apply_pending

DIM = 8  # the query never reads embeddings (they live in face_embeddings): none stored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=_size, default=1_000_000)
    parser.add_argument("--persons", type=_size, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database", default=None, help="a server URL (default: a "
                        "scratch embedded server)")
    args = parser.parse_args()
    settings = Settings(database_url=args.database,
                        data_dir=Path(tempfile.mkdtemp(prefix="rbv-bench-")))
    db = open_database(settings, require_schema=False)
    apply_pending(db)
    tag = f"photos{time.time_ns()}"
    images = args.faces // 4
    t = time.perf_counter()
    with db.transaction() as conn:
        pack = conn.execute(
            "INSERT INTO model_packs (name, fingerprint, files, embedding_dim) "
            "VALUES (%s, %s, '{}', %s) RETURNING id", (tag, tag, DIM)).fetchone()[0]
        first_image = conn.execute(
            "INSERT INTO images (sha256, size_bytes, status, width, height, taken_at) "
            "SELECT md5(%s || g::text) || md5(g::text || %s), 1, 'ok', 4000, 3000, "
            "timestamp '2005-01-01' + g * (interval '20 years' / %s) "
            "FROM generate_series(0, %s - 1) g RETURNING id",
            (tag, tag, images, images)).fetchall()[0][0]
        conn.execute("INSERT INTO image_paths (image_id, path) SELECT id, '/library/' || "
                     "to_char(taken_at, 'YYYY/MM/') || id || '.jpg' FROM images "
                     "WHERE id >= %s", (first_image,))
        persons = [r[0] for r in conn.execute(
            "INSERT INTO persons (pack_id, source) SELECT %s, 'manual' "
            "FROM generate_series(1, %s) RETURNING id", (pack, args.persons))]
        conn.execute("INSERT INTO person_names (person_id, name) "
                     "SELECT id, 'P' || row_number() OVER (ORDER BY created_at, id) "
                     "FROM persons WHERE pack_id = %s", (pack,))
        # Zipf-like: person rank floor(P * u^3) for uniform u (rank 0 the biggest)
        conn.execute(
            """
            CREATE TEMP TABLE ranked AS
            SELECT id, row_number() OVER (ORDER BY id) - 1 AS rank FROM unnest(%s::uuid[]) id
            """, (persons,))
        conn.execute(
            """
            INSERT INTO face_detections (image_id, pack_id, x1, y1, x2, y2, det_score,
                                         person_id, assigned_by)
            SELECT %(first)s + d.g / 4, %(pack)s, 100 * (d.g %% 4), 100, 100 * (d.g %% 4) + 90, 190,
                   0.9, r.id, 'cluster'
            FROM (SELECT g, floor(%(p)s * power(random(), 3))::int AS rank
                  FROM generate_series(0, %(n)s - 1) g) d
            JOIN ranked r ON r.rank = d.rank
            """,
            {"first": first_image, "pack": pack, "n": args.faces, "p": args.persons})
        conn.execute("ANALYZE face_detections; ANALYZE images; ANALYZE image_paths")
        sizes = dict(conn.execute(
            "SELECT n.name, count(*) FROM face_detections f JOIN person_names n "
            "ON n.person_id = f.person_id WHERE f.pack_id = %s GROUP BY n.name", (pack,)))
    print(f"{args.faces:,} faces, {images:,} photos, {args.persons:,} persons on "
          f"{db.display}: load {time.perf_counter() - t:.1f} s")

    mid = sorted(sizes, key=lambda n: -sizes[n])[50:52]
    ids = dict(zip(["P1", "P2", "P500", *mid],
                   resolve_all(db, ["P1", "P2", "P500", *mid]), strict=True))
    queries = {
        f"P1 + P2 ({sizes['P1']:,} + {sizes['P2']:,} faces)":
            PhotoQuery((ids["P1"], ids["P2"])),
        f"{mid[0]} + {mid[1]} ({sizes[mid[0]]:,} + {sizes[mid[1]]:,} faces)":
            PhotoQuery((ids[mid[0]], ids[mid[1]])),
        f"P500 without P1, 2010-2014 ({sizes.get('P500', 0):,} faces)":
            PhotoQuery((ids["P500"],), (ids["P1"],), "2010", "2014"),
    }
    for label, query in queries.items():
        indexed = _median(db, query, args.repeat, seqscan=False)
        scanned = _median(db, query, max(1, args.repeat // 2), seqscan=True)
        hits = len(find_photos(db, query).photos)
        print(f"  {label}: {hits:,} photos; indexed {indexed * 1000:.1f} ms, sequential "
              f"scan {scanned * 1000:.1f} ms, ratio {scanned / indexed:.1f}×")


def _median(db, query: PhotoQuery, repeat: int, *, seqscan: bool) -> float:  # type: ignore[no-untyped-def]
    """Median seconds of the query (resolve persons + photos + who else), warm cache."""
    url = db.url
    if seqscan:
        options = quote("-c enable_indexscan=off -c enable_bitmapscan=off", safe="")
        url += ("&" if "?" in url else "?") + f"options={options}"
    target = type(db)(url, db.display, 30)
    find_photos(target, query)  # warm
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        find_photos(target, query)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


if __name__ == "__main__":
    main()

"""`rbv cluster` end to end against PostgreSQL: full re-cluster of N synthetic faces and
1,000 new faces matched incrementally through the pack's pgvector HNSW index.

Complements ``bench_cluster.py`` (algorithms in memory) with what a user waits for:
reading embeddings (binary COPY), clustering, writing persons, and the HNSW queries
of the incremental path. Baseline in the same run: the incremental run's time per new
face against the full run's time per face.

    uv run python scripts/bench_cluster_db.py --faces 100k --dim 128
    uv run python scripts/bench_cluster_db.py --database postgresql://… --faces 1M
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench_cluster import THRESHOLD, _size, synthetic
from rbv.config import Settings
from rbv.jobs.cluster import ClusterOptions, cluster_pack
from rbv.store import open_database
from rbv.store.faces import NewFace, insert_faces
from rbv.store.migrations import apply_pending
from rbv.store.packs import ensure_pack_index, register_pack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=_size, default=20_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--new", type=_size, default=1_000)
    parser.add_argument("--vacuum", action="store_true", help="VACUUM between the runs")
    parser.add_argument("--database", default=None, help="a server URL (default: a "
                        "scratch embedded server)")
    args = parser.parse_args()
    scratch = tempfile.mkdtemp(prefix="rbv-bench-")
    settings = Settings(database_url=args.database, data_dir=Path(scratch))
    db = open_database(settings, require_schema=False)
    apply_pending(db)
    x, _, images = synthetic(args.faces + args.new, args.dim)
    old, new = slice(0, args.faces), slice(args.faces, None)
    name = f"bench{args.dim}_{time.time_ns()}"

    with db.transaction() as conn:
        rows = conn.execute(
            "INSERT INTO images (sha256, size_bytes, status) "
            "SELECT md5(%s || g::text) || md5(g::text || %s), 1, 'ok' "
            "FROM generate_series(0, %s) g RETURNING id", (name, name, len(x) - 1)).fetchall()
    image_id = {i: int(r[0]) for i, r in enumerate(rows)}

    def load(rows: slice, pack_id: int) -> None:
        with db.transaction() as conn:
            insert_faces(conn, (NewFace(image_id[int(img)], pack_id, (0, 0, 100, 100), None,
                                        0.9, None, emb)
                                for img, emb in zip(images[rows], x[rows], strict=True)))

    t = time.perf_counter()
    with db.transaction() as conn:
        pack = register_pack(conn, name, {"r.onnx": name}, args.dim)
        conn.execute(f"DROP INDEX face_detections_hnsw_pack{pack.id}")
    load(old, pack.id)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    with db.transaction() as conn:
        ensure_pack_index(conn, pack)
        conn.execute("ANALYZE face_detections")
    index_s = time.perf_counter() - t
    print(f"{args.faces:,} faces × {args.dim}-d on {db.display}: load {load_s:.1f} s, "
          f"HNSW build {index_s:.1f} s")

    clock = [time.perf_counter()]
    current = [""]

    def stage(text: str) -> None:
        """Print the stage that just ended with its duration."""
        now = time.perf_counter()
        if current[0]:
            print(f"  {now - clock[0]:7.2f} s  {current[0]}")
        clock[0], current[0] = now, text

    def end_stages() -> None:
        stage("")

    full = cluster_pack(db, name, ClusterOptions(threshold=THRESHOLD, full=True), stage)
    end_stages()
    print(f"rbv cluster --full: {full.seconds:.1f} s for {full.faces:,} faces "
          f"({full.new_persons:,} persons)")
    clock[0] = time.perf_counter()
    again = cluster_pack(db, name, ClusterOptions(threshold=THRESHOLD, full=True), stage)
    end_stages()
    print(f"rbv cluster --full again (nightly case): {again.seconds:.1f} s, "
          f"{again.reassigned:,} faces changed person")
    if args.vacuum:
        t = time.perf_counter()
        with db.connect(autocommit=True) as conn:
            conn.execute("VACUUM (ANALYZE) face_detections")
        print(f"VACUUM (ANALYZE) after the full run: {time.perf_counter() - t:.1f} s")
    load(new, pack.id)
    clock[0] = time.perf_counter()
    inc = cluster_pack(db, name, ClusterOptions(threshold=THRESHOLD), stage)
    end_stages()
    print(f"rbv cluster (incremental): {inc.seconds:.2f} s for {inc.considered:,} new faces "
          f"({inc.matched:,} matched, {inc.new_persons:,} new persons)")
    per_full = full.seconds / max(1, full.faces)
    per_inc = inc.seconds / max(1, inc.considered)
    print(f"ratio: incremental costs {per_inc / per_full:.1f}× per face what --full does "
          f"(and {inc.seconds / full.seconds:.3f}× the time of a full run)")


if __name__ == "__main__":
    main()

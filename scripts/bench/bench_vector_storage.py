"""Reading every vector of a pack with binary COPY: pgvector's default EXTERNAL storage
(a 512-d vector, 2 KB, goes to the TOAST table) against MAIN (kept in the row, what
``face_embeddings`` uses). Same rows, interleaved rounds, best of each.

    uv run python scripts/bench/bench_vector_storage.py --faces 100k --dim 512
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from bench_cluster import _size
from rbv.config import Settings
from rbv.store import open_database
from rbv.store.server.migrations import apply_pending


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=_size, default=100_000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    db = open_database(Settings(data_dir=Path(tempfile.mkdtemp(prefix="rbv-bench-"))),
                       require_schema=False)
    x = np.random.default_rng(0).normal(size=(args.faces, args.dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    tables = {"external": "EXTERNAL", "main": "MAIN"}
    apply_pending(db)  # the vector extension, registered on each connection after it
    with db.transaction() as conn:
        for name, storage in tables.items():
            conn.execute(f"CREATE TABLE v_{name} (id bigint PRIMARY KEY, embedding vector)")
            conn.execute(f"ALTER TABLE v_{name} ALTER COLUMN embedding SET STORAGE {storage}")
            with conn.cursor() as cur, cur.copy(
                    f"COPY v_{name} (id, embedding) FROM STDIN WITH (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "vector"])
                for i, row in enumerate(x):
                    copy.write_row((i, row))
            conn.execute(f"ANALYZE v_{name}")
    best = {name: float("inf") for name in tables}
    for _ in range(args.repeat):
        for name in tables:
            with db.connect() as conn:
                t = time.perf_counter()
                size = 0
                with conn.cursor() as cur, cur.copy(
                        f"COPY (SELECT id, embedding::vector({args.dim}) FROM v_{name} "
                        "ORDER BY id) TO STDOUT (FORMAT BINARY)") as copy:
                    for block in copy:
                        size += len(block)
                best[name] = min(best[name], time.perf_counter() - t)
    for name in tables:
        print(f"{name:>8}: {best[name]:.2f} s to read {args.faces:,} × {args.dim}-d")
    print(f"external/main = {best['external'] / best['main']:.1f}")


if __name__ == "__main__":
    main()

"""How close `embed`'s pipeline gets to pure model time, and what decode overlap buys.

On the same images and pack, in one process:
  (c) pure inference: analyzer.analyze_many on images decoded beforehand (no I/O);
  (d) decode only: decode_for_detection of every image, one thread;
  (b1) run_embed end to end (claim, decode, analyze, COPY, commit) with --concurrency 1;
  (b)  run_embed end to end with --concurrency N (default 4).
Prints images/s and faces/s of each, and b/c (share of pure model throughput reached).

    DATABASE_URL=postgresql://... uv run python scripts/bench_pipeline.py \\
        --pack ../shared/models/scrfd_sface ../shared/data/faces
(without DATABASE_URL a throw-away embedded database under a temp folder is used;
every leg of b uses a fresh database).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import psycopg

from rbv.config import Settings
from rbv.faces.analyzer import load_analyzer
from rbv.jobs.catalogue import run_catalogue
from rbv.jobs.embed import EmbedSummary, run_embed
from rbv.media.decode import decode_for_detection
from rbv.media.discovery import FoundFile, discover
from rbv.media.hashing import digest_file
from rbv.media.sniff import sniff_format
from rbv.store import open_database
from rbv.store.migrations import apply_pending


def _fresh_settings(base: Settings, n: int) -> Settings:
    if not base.database_url:
        return base.with_overrides(data_dir=Path(tempfile.mkdtemp(prefix="rbv-bench-")))
    name = f"rbv_bench_{os.getpid()}_{n}"
    with psycopg.connect(base.database_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = psycopg.conninfo.make_conninfo(base.database_url, dbname=name)
    return base.with_overrides(database_url=url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("targets", nargs="+", type=Path)
    parser.add_argument("--pack", default="../shared/models/scrfd_sface")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=1, help="alternate the b legs")
    args = parser.parse_args()

    analyzer = load_analyzer(args.pack, device="cpu")
    files = [f for f in discover(args.targets) if isinstance(f, FoundFile)]
    images = []
    for f in files:
        fmt = sniff_format(digest_file(f.path).head)
        if fmt:
            images.append((f.path, fmt))
    images = images[: args.limit]
    print(f"{len(images)} images, pack {analyzer.pack.name}, providers {analyzer.providers}, "
          f"decode long edge {analyzer.decode_long_edge}")

    t = time.perf_counter()
    decoded = [decode_for_detection(p, fmt, image_id=i, long_edge=analyzer.decode_long_edge,
                                    max_pixels=10**9) for i, (p, fmt) in enumerate(images)]
    t_decode = time.perf_counter() - t
    analyzer.analyze_many(decoded[:2])  # warm-up
    t = time.perf_counter()
    faces = 0
    for start in range(0, len(decoded), 16):
        faces += sum(len(r.faces) for r in analyzer.analyze_many(decoded[start:start + 16]))
    t_pure = time.perf_counter() - t
    del decoded

    base = Settings.from_env(os.environ)
    legs: dict[int, list[EmbedSummary]] = {}
    for n, conc in enumerate((1, args.concurrency) * args.rounds):
        settings = _fresh_settings(base, n).with_overrides(concurrency=conc)
        db = open_database(settings, require_schema=False)
        apply_pending(db)
        run_catalogue(db, settings, [p for p, _ in images])
        summary = run_embed(db, settings, analyzer)
        legs.setdefault(conc, []).append(summary)
    n_img = len(images)
    print(f"(d) decode only, 1 thread : {n_img / t_decode:6.1f} images/s")
    print(f"(c) pure inference        : {n_img / t_pure:6.1f} images/s, {faces / t_pure:6.1f} "
          "faces/s")
    for conc, runs in legs.items():
        for s in runs:
            print(f"(b) embed, concurrency {conc:<2} : {s.images_per_s:6.1f} images/s, "
                  f"{s.faces / s.seconds:6.1f} faces/s  (b/c = "
                  f"{s.images_per_s / (n_img / t_pure):.2f})")


if __name__ == "__main__":
    main()

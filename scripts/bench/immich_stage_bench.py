"""immich-stage throughput: 1 worker (baseline) vs 8 workers, same process, same
library, against the fake Immich server with a simulated network round trip.

    uv run python scripts/bench/immich_stage_bench.py [--rtt-ms 30] [--shared ../shared]

Prints assets/s and MB/s for each and the speed-up ratio. The library is the ~212-asset
test library built from ../shared/data (real photos, real detector boxes), served by
``tests/support``'s fake Immich with Immich's OpenAPI document from ../shared/immich.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from rbv.immich.client import ImmichClient
from rbv.jobs.exchange.immich_stage import StageOptions, stage_library

# The stand-in servers are test helpers (tests/support/), not part of the rbv package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.support.immich_library import build_library  # noqa: E402
from tests.support.immich_server import FakeImmich  # noqa: E402
from tests.support.openapi import OpenApi  # noqa: E402

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
API_KEY = "rbv-bench-key"  # what the fake server expects and the client sends


def run(server: FakeImmich, workers: int) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory() as tmp, ImmichClient(server.url, API_KEY) as client:
        server.downloads.clear()
        started = time.perf_counter()
        summary = stage_library(client, None, StageOptions(Path(tmp), workers=workers,
                                                           page_size=100))
        seconds = time.perf_counter() - started
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    return seconds, summary.seen, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtt-ms", type=float, default=30.0,
                        help="simulated network round trip added to every answer")
    parser.add_argument("--shared", type=Path, default=SHARED,
                        help="the shared folder with data/faces, data/misc, models/ and "
                        f"immich/ (default: {SHARED})")
    parser.add_argument("--pack", type=Path, default=None,
                        help="model pack whose detector finds the library's face boxes "
                        "(default: SHARED/models/scrfd_sface)")
    parser.add_argument("--spec", type=Path, default=None,
                        help="Immich's OpenAPI document "
                        "(default: SHARED/immich/immich-openapi-specs.json)")
    args = parser.parse_args()
    pack = args.pack or args.shared / "models" / "scrfd_sface"
    spec = args.spec or args.shared / "immich" / "immich-openapi-specs.json"
    library = build_library(args.shared, pack)
    server = FakeImmich(library, API_KEY, OpenApi(spec)).start()
    server.faults.delay_s = args.rtt_ms / 1000
    try:
        results = {w: run(server, w) for w in (1, 8)}
    finally:
        server.stop()
    for workers, (seconds, seen, size) in results.items():
        print(f"{workers} worker(s): {seen} assets in {seconds:.2f} s = {seen / seconds:.1f} "
              f"assets/s, {size / seconds / 1e6:.1f} MB/s staged")
    print(f"speed-up 8 vs 1 workers (RTT {args.rtt_ms:g} ms): "
          f"{results[1][0] / results[8][0]:.2f}x")


if __name__ == "__main__":
    main()

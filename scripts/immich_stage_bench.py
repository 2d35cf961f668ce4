"""immich-stage throughput: 1 worker (baseline) vs 8 workers, same process, same
library, against the fake Immich server with a simulated network round trip.

    uv run python scripts/immich_stage_bench.py [--rtt-ms 30]

Prints assets/s and MB/s for each and the speed-up ratio. The library is the ~212-asset
test library built from ../shared/data (real photos, real detector boxes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.conftest import IMMICH_KEY, IMMICH_SPEC, PACK, SHARED  # noqa: E402
from tests.fakes.immich_library import build_library  # noqa: E402
from tests.fakes.immich_server import FakeImmich  # noqa: E402
from tests.fakes.openapi import OpenApi  # noqa: E402

from rbv.immich.client import ImmichClient  # noqa: E402
from rbv.immich.stage import StageOptions, stage_library  # noqa: E402


def run(server: FakeImmich, workers: int) -> tuple[float, int, int]:
    with tempfile.TemporaryDirectory() as tmp, ImmichClient(server.url, IMMICH_KEY) as client:
        server.downloads.clear()
        started = time.perf_counter()
        summary = stage_library(client, None, StageOptions(Path(tmp), workers=workers,
                                                           page_size=100))
        seconds = time.perf_counter() - started
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
    return seconds, summary.seen, size


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rtt-ms", type=float, default=30.0)
    args = parser.parse_args()
    library = build_library(SHARED, PACK)
    server = FakeImmich(library, IMMICH_KEY, OpenApi(IMMICH_SPEC)).start()
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

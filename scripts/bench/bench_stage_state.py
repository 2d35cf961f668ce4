"""immich-stage state: the old full rewrite vs the journal append, at 1M simulated assets.

    uv run python scripts/bench/bench_stage_state.py [--assets 1000000] [--appends 2000]
        [--repeats 3] [--dir DIR]

Builds a StageState of ``--assets`` simulated per-asset outcomes (the mix of a real
library: staged with sha256/size/path, duplicates, no face, small face, failed), then in
the same run and the same folder times

* the old save: the whole state written to a temporary file, fsynced, renamed
  (``StageState.save``, what the run used to do every 60 s), ``--repeats`` times;
* the new save: one outcome appended to the journal, flushed and fsynced
  (``StageState.record``), ``--appends`` times, with no compaction in between;
* the compaction the journal needs every ``assets // COMPACT_RATIO`` outcomes, amortised
  per outcome;
* loading: snapshot + a journal of ``assets // COMPACT_RATIO`` lines (the most it holds).

Prints the time and bytes written per save for each, and the ratios old / new.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from rbv.jobs.exchange import immich_state as state_module
from rbv.jobs.exchange.immich_state import (
    DUP_DB,
    DUP_RUN,
    FAILED,
    NO_FACE,
    SMALL_FACE,
    STAGED,
    StageState,
)

SERVER = "http://immich.bench:2283"
USER = "bench"


def _record(i: int) -> tuple[str, dict[str, object]]:
    asset_id = f"{i:08x}-1c2d-4e5f-8a9b-{i * 2654435761 % 16**12:012x}"
    sha = f"{i * 11400714819323198485 % 16**64:064x}"
    kind = i % 20
    if kind < 12:  # most assets with a face large enough are staged
        return asset_id, {"status": STAGED, "attempts": 0, "sha256": sha, "size": 3_000_000 + i,
                          "path": f"library/2023/2023-{i % 12 + 1:02d}-{i % 28 + 1:02d}/"
                                  f"IMG_{i % 10000:04d}.jpg", "face_short": 212.5}
    if kind < 14:
        return asset_id, {"status": DUP_DB if kind == 12 else DUP_RUN, "attempts": 0,
                          "sha256": sha, "size": 2_000_000 + i, "face_short": 150.0}
    if kind < 18:
        return asset_id, {"status": NO_FACE, "attempts": 0}
    if kind < 19:
        return asset_id, {"status": SMALL_FACE, "attempts": 0, "face_short": 41.3}
    return asset_id, {"status": FAILED, "attempts": 1, "error": "download: HTTP 502"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--assets", type=int, default=1_000_000)
    parser.add_argument("--appends", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=None, help="where to write (a temp folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "immich-stage-state.json"
        state = StageState.load(path, SERVER, USER)
        state.assets = dict(_record(i) for i in range(args.assets))
        print(f"{args.assets} simulated assets in {path.parent} "
              f"(COMPACT_RATIO {state_module.COMPACT_RATIO})")

        rewrite_s = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            state.save()
            rewrite_s.append(time.perf_counter() - t0)
        snapshot_bytes = path.stat().st_size
        old_s = statistics.median(rewrite_s)
        print(f"old full rewrite : {old_s * 1000:10.1f} ms/save  {snapshot_bytes / 1e6:10.1f} MB"
              f"/save  (median of {args.repeats})")

        append_s = []
        for i in range(args.appends):
            asset_id, record = _record(args.assets + i)
            details = {k: v for k, v in record.items() if k not in ("status", "attempts")}
            t0 = time.perf_counter()
            state.record(asset_id, str(record["status"]), **details)
            append_s.append(time.perf_counter() - t0)
        assert state.journal_entries == args.appends, "compacted mid-bench: raise --assets"
        journal_bytes = state.journal_path.stat().st_size
        new_s = statistics.median(append_s)
        line_bytes = journal_bytes / args.appends
        print(f"new journal append: {new_s * 1000:10.3f} ms/save  {line_bytes:10.0f} B/save"
              f"  (median of {args.appends}; mean {statistics.fmean(append_s) * 1000:.3f} ms)")

        # Compaction every assets // COMPACT_RATIO outcomes, amortised per outcome.
        every = max(state_module.COMPACT_MIN_ENTRIES,
                    len(state.assets) // state_module.COMPACT_RATIO)
        amortised_s = new_s + old_s / every
        amortised_bytes = line_bytes + snapshot_bytes / every
        print(f"  + compaction every {every} outcomes: {amortised_s * 1000:.3f} ms, "
              f"{amortised_bytes:.0f} B per outcome amortised")

        # Load with the longest journal it can have: snapshot + `every` lines.
        with open(state.journal_path, "a", encoding="utf-8") as journal:
            line = state.journal_path.read_text(encoding="utf-8").splitlines()[0] + "\n"
            journal.write(line * (every - args.appends))
        t0 = time.perf_counter()
        loaded = StageState.load(path, SERVER, USER)
        load_s = time.perf_counter() - t0
        assert loaded.journal_entries == every
        print(f"load (snapshot + {every}-line journal, "
              f"{state.journal_path.stat().st_size / 1e6:.1f} MB): {load_s:.2f} s")

        print(f"ratio old/new per save: time {old_s / new_s:,.0f}x, "
              f"bytes {snapshot_bytes / line_bytes:,.0f}x")
        print(f"ratio old/new per outcome incl. amortised compaction: time "
              f"{old_s / amortised_s:,.0f}x, bytes {snapshot_bytes / amortised_bytes:,.0f}x")
        os.sync()


if __name__ == "__main__":
    main()

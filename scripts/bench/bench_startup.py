"""Start-up time of `rbv --help`, `rbv stats`, `rbv persons list` and persons edits
(`persons name`, `persons hide`, each a logged edit of a real person) and `rbv cluster`
with nothing new: every command's libraries are imported only when that command runs.
Baseline in the same run: a bare Python interpreter start; with ``--baseline SRC``
also another source tree of rbv, each command run alternately with it and with this
checkout, and the ratio of their medians.

    uv run python scripts/bench/bench_startup.py
    uv run python scripts/bench/bench_startup.py --runs 9 --data-dir /tmp/rbv-startup
    uv run python scripts/bench/bench_startup.py --baseline ../rbv-main/src
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

RBV = [sys.executable, "-m", "rbv"]
SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def timed(make_args: Callable[[int], list[str]], runs: int,
          baseline: str | None = None) -> tuple[list[float], list[float]]:
    """Seconds of each run with this checkout, and (``baseline``: a source tree) with
    the baseline, the two alternated."""
    mine: list[float] = []
    theirs: list[float] = []
    trees = [(None, mine)] + ([(baseline, theirs)] if baseline else [])
    for i in range(runs):
        for source, out in trees if i % 2 == 0 else trees[::-1]:
            env = None if source is None else {**os.environ, "PYTHONPATH": source}
            t = time.perf_counter()
            subprocess.run(make_args(i), check=True, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            out.append(time.perf_counter() - t)
    return mine, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="embedded database (default: a scratch one)")
    parser.add_argument("--photo", type=Path,
                        default=next((SHARED / "data" / "faces" / "Barack_Obama").iterdir()),
                        help="a photo with one face: the person the edits change")
    parser.add_argument("--model-pack", default=str(SHARED / "models" / "scrfd_sface"))
    parser.add_argument("--baseline", default=None,
                        help="a source tree of rbv (its src folder) to run against")
    args = parser.parse_args()
    data = args.data_dir or Path(tempfile.mkdtemp(prefix="rbv-startup-"))
    rbv = [*RBV, "--data-dir", str(data)]
    folder = Path(tempfile.mkdtemp(prefix="rbv-startup-photos-"))
    (folder / args.photo.name).symlink_to(args.photo.resolve())
    for setup in (["migrate"], ["index", str(folder), "--model-pack", args.model_pack],
                  ["cluster"]):
        subprocess.run([*rbv, *setup], check=True, stdout=subprocess.DEVNULL)
    person = json.loads(subprocess.run([*rbv, "persons", "list", "--json"], check=True,
                                       capture_output=True, text=True).stdout)[0]["id"]
    runs, tree = args.runs, args.baseline
    rows = [("python -c pass (baseline)", timed(lambda i: [sys.executable, "-c", "pass"],
                                                runs)),
            ("rbv --help", timed(lambda i: [*RBV, "--help"], runs, tree)),
            ("rbv stats (embedded)", timed(lambda i: [*rbv, "stats"], runs, tree)),
            ("rbv persons list (embedded)", timed(lambda i: [*rbv, "persons", "list"],
                                                  runs, tree)),
            ("rbv persons name (embedded)", timed(
                lambda i: [*rbv, "persons", "name", person, f"Ada {i}"], runs, tree)),
            ("rbv persons hide/unhide", timed(
                lambda i: [*rbv, "persons", "unhide" if i % 2 else "hide", person],
                runs, tree)),
            ("rbv cluster (nothing new)", timed(lambda i: [*rbv, "cluster"], runs, tree))]
    base = statistics.median(rows[0][1][0])
    print(f"{'command':<30} {'min s':>7} {'median s':>9} {'× python':>9}"
          + (f" {'baseline s':>11} {'baseline / this':>16}" if tree else ""))
    for name, (times, theirs) in rows:
        median = statistics.median(times)
        line = f"{name:<30} {min(times):>7.2f} {median:>9.2f} {median / base:>9.1f}"
        if theirs:
            other = statistics.median(theirs)
            line += f" {other:>11.2f} {other / median:>16.2f}"
        print(line)


if __name__ == "__main__":
    main()

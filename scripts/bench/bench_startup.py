"""Start-up time of `rbv --help`, `rbv stats`, `rbv persons list` and persons edits
(`persons name`, `persons hide`, each a logged edit of a real person): every command's
libraries are imported only when that command runs. Baseline in the same run: a bare
Python interpreter start.

    uv run python scripts/bench/bench_startup.py
    uv run python scripts/bench/bench_startup.py --runs 9 --data-dir /tmp/rbv-startup
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

RBV = [sys.executable, "-m", "rbv"]
SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def timed(make_args: Callable[[int], list[str]], runs: int) -> list[float]:
    out = []
    for i in range(runs):
        args = make_args(i)
        t = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="embedded database (default: a scratch one)")
    parser.add_argument("--photo", type=Path,
                        default=next((SHARED / "data" / "faces" / "Barack_Obama").iterdir()),
                        help="a photo with one face: the person the edits change")
    parser.add_argument("--model-pack", default=str(SHARED / "models" / "scrfd_sface"))
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
    rows = [("python -c pass (baseline)", timed(lambda i: [sys.executable, "-c", "pass"],
                                                args.runs)),
            ("rbv --help", timed(lambda i: [*RBV, "--help"], args.runs)),
            ("rbv stats (embedded)", timed(lambda i: [*rbv, "stats"], args.runs)),
            ("rbv persons list (embedded)", timed(lambda i: [*rbv, "persons", "list"],
                                                  args.runs)),
            ("rbv persons name (embedded)", timed(
                lambda i: [*rbv, "persons", "name", person, f"Ada {i}"], args.runs)),
            ("rbv persons hide/unhide", timed(
                lambda i: [*rbv, "persons", "unhide" if i % 2 else "hide", person],
                args.runs))]
    base = statistics.median(rows[0][1])
    print(f"{'command':<30} {'min s':>7} {'median s':>9} {'× baseline':>11}")
    for name, times in rows:
        median = statistics.median(times)
        print(f"{name:<30} {min(times):>7.2f} {median:>9.2f} {median / base:>11.1f}")


if __name__ == "__main__":
    main()

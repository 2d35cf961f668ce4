"""Start-up time of `rbv --help`, `rbv stats`, `rbv persons list` and a persons edit: every command's
libraries are imported only when that command runs. Baseline in the same run: a bare
Python interpreter start. The edit names a person that does not exist (an empty
database has none): it pays the imports, the embedded server's start and the lookup,
all but the write.

    uv run python scripts/bench_startup.py
    uv run python scripts/bench_startup.py --runs 9 --data-dir /tmp/rbv-startup
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RBV = [sys.executable, "-m", "rbv"]


def timed(args: list[str], runs: int, check: bool = True) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(args, check=check, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="embedded database for `rbv stats` (default: a scratch one)")
    args = parser.parse_args()
    data = args.data_dir or Path(tempfile.mkdtemp(prefix="rbv-startup-"))
    stats = [*RBV, "--data-dir", str(data), "stats"]
    subprocess.run([*RBV, "--data-dir", str(data), "migrate"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(stats, check=True, stdout=subprocess.DEVNULL)  # server files warm
    rows = [("python -c pass (baseline)", timed([sys.executable, "-c", "pass"], args.runs)),
            ("rbv --help", timed([*RBV, "--help"], args.runs)),
            ("rbv stats (embedded, empty)", timed(stats, args.runs)),
            ("rbv persons list (embedded)", timed(
                [*RBV, "--data-dir", str(data), "persons", "list"], args.runs)),
            ("rbv persons name (embedded)", timed(
                [*RBV, "--data-dir", str(data), "persons", "name", "nobody", "Ada"],
                args.runs, check=False))]
    base = statistics.median(rows[0][1])
    print(f"{'command':<30} {'min s':>7} {'median s':>9} {'× baseline':>11}")
    for name, times in rows:
        median = statistics.median(times)
        print(f"{name:<30} {min(times):>7.2f} {median:>9.2f} {median / base:>11.1f}")


if __name__ == "__main__":
    main()

"""The whole test suite on a busy machine: README's test command, ``--runs`` times, beside
``stress-ng --cpu N`` (not a benchmark: a check that nothing in the suite depends on how
fast the machine is).

    uv run python scripts/tools/loaded_suite.py  # 3 runs in a row, stress-ng --cpu 4
    uv run python scripts/tools/loaded_suite.py --runs 3 --at-once  # 3 runs side by side
    uv run python scripts/tools/loaded_suite.py --runs 1 -- -m "not slow"

Each run is a fresh clone of this checkout's HEAD (so untracked files cannot help it) in
a scratch folder beside a link to this checkout's ``../shared``, installed with README's
install command, then README's test command with its own ``--basetemp`` (pytest's default
folder is shared by concurrent runs) and any arguments after ``--``. Prints one line per
run (passed, failed, errors, skipped, minutes, the 1-minute load average seen during it:
mean and max) and exits 1 if any run failed. ``stress-ng`` is Debian's
(``apt-get install stress-ng``).
"""

from __future__ import annotations

import argparse
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped)")


def readme_block(heading: str) -> str:
    """The first ```bash block under ``## heading`` in README.md (as .ci/run reads it)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index(f"## {heading}")
    body = lines[start + 1:]
    first = body.index("```bash")
    return "\n".join(body[first + 1:body.index("```", first + 1)])


@dataclass
class Run:
    number: int
    folder: Path
    log: Path
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    minutes: float = 0.0
    loads: list[float] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        last = [ln for ln in self.log.read_text(errors="replace").splitlines()
                if re.search(r"\d+ (passed|failed)", ln)]
        found = {"passed": 0, "failed": 0, "errors": 0, "skipped": 0}
        for number, kind in COUNT.findall(last[-1] if last else ""):
            found["errors" if kind.startswith("error") else kind] = int(number)
        return found


def start(run: Run, extra: list[str]) -> None:
    subprocess.run(["git", "clone", "-q", str(ROOT), str(run.folder)], check=True)
    install, test = readme_block("Install"), readme_block("Tests")
    basetemp = run.folder.parent / f"basetemp{run.number}"
    # Lines, not "; ": a comment on the install block's last line would swallow the rest.
    command = (f"set -e\n{{\n{install}\n}} >/dev/null\n{test} -p no:cacheprovider "
               f"--basetemp={shlex.quote(str(basetemp))} {shlex.join(extra)}")
    run.started = time.monotonic()
    with run.log.open("wb") as out:
        run.process = subprocess.Popen(["bash", "-c", command], cwd=run.folder, stdout=out,
                                       stderr=subprocess.STDOUT)


def sample_load(runs: list[Run], stop: threading.Event) -> None:
    while not stop.wait(15):
        load = float(Path("/proc/loadavg").read_text().split()[0])
        for run in runs:
            if run.process is not None and run.process.poll() is None:
                run.loads.append(load)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stress", type=int, default=4, help="stress-ng --cpu workers (0: none)")
    parser.add_argument("--at-once", action="store_true", help="the runs side by side")
    parser.add_argument("--keep", type=Path, help="keep clones and logs here")
    parser.add_argument("pytest_args", nargs="*", help="after --: more pytest arguments")
    args = parser.parse_args()
    if args.stress and shutil.which("stress-ng") is None:
        print("Error: stress-ng is not installed (apt-get install stress-ng)", file=sys.stderr)
        return 2
    scratch = args.keep or Path(tempfile.mkdtemp(prefix="rbv-loaded-"))
    scratch.mkdir(parents=True, exist_ok=True)
    shared = scratch / "shared"  # the tests read ../shared beside their checkout
    if not shared.exists():
        shared.symlink_to(ROOT.parent / "shared")
    runs = [Run(i, scratch / f"clone{i}", scratch / f"run{i}.log") for i in range(1, args.runs + 1)]
    stress = (subprocess.Popen(["stress-ng", "--cpu", str(args.stress), "--quiet"])
              if args.stress else None)
    stop = threading.Event()
    sampler = threading.Thread(target=sample_load, args=(runs, stop), daemon=True)
    sampler.start()
    try:
        waves = [runs] if args.at_once else [[run] for run in runs]
        for wave in waves:
            for run in wave:
                start(run, args.pytest_args)
            for run in wave:
                assert run.process is not None
                run.process.wait()
                run.minutes = (time.monotonic() - run.started) / 60
                report(run)
    finally:
        stop.set()
        if stress is not None:
            stress.terminate()
            stress.wait()
    failed = [run for run in runs if run.process is None or run.process.returncode != 0
              or run.counts()["passed"] == 0]  # as .ci/run: a run where no test ran failed
    print(f"{len(runs) - len(failed)} of {len(runs)} run(s) passed; logs in {scratch}")
    if not args.keep and not failed:
        shutil.rmtree(scratch, ignore_errors=True)
    return 1 if failed else 0


def report(run: Run) -> None:
    c = run.counts()
    loads = run.loads or [float("nan")]
    code = run.process.returncode if run.process else "-"
    print(f"run {run.number}: exit {code}, {c['passed']} passed, {c['failed']} failed, "
          f"{c['errors']} errors, {c['skipped']} skipped, {run.minutes:.1f} min, load "
          f"mean {sum(loads) / len(loads):.1f} max {max(loads):.1f}", flush=True)
    for line in run.log.read_text(errors="replace").splitlines():
        if line.startswith(("FAILED ", "ERROR ")):
            print(f"  {line}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

"""Fuzz the user's decisions: thousands of random sequences of edits, automatic runs,
SQL resets and new photos against real faces in a real PostgreSQL, each step checked
against what the user decided (the machine: tests/support/decisions.py, issue 28).

    uv run python scripts/tools/decision_fuzz.py --examples 2000 --steps 20
    uv run python scripts/tools/decision_fuzz.py --minutes 30
    uv run python scripts/tools/decision_fuzz.py --minutes 10 --face-lists

Prints how many sequences and steps ran, how long they took, and every distinct failure
found (shrunk by hypothesis to its shortest sequence), then exits 1 if there was one.
``--face-lists``: incremental runs search the face lists (rbv's way from 100,000 faces),
the added faces merged into their base at every run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from rbv.faces.analyzer import load_analyzer
from rbv.jobs.grouping import cluster_update, face_lists

# The machine and the test server are test helpers (tests/), not part of the rbv package.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.pgserver import PasswordServer  # noqa: E402
from tests.support.decisions import (  # noqa: E402
    SHARED,
    DecisionMachine,
    Environment,
    make_template,
)


def _rounds(server: PasswordServer, data: Path, args: argparse.Namespace) -> dict[str, str]:
    """Rounds of random sequences until ``args.minutes``: each distinct failure (its
    first line) and the whole of it, shrunk sequence included."""
    started = time.perf_counter()
    failures: dict[str, str] = {}
    analyzer = load_analyzer(str(SHARED / "models" / "scrfd_sface"), device="cpu")
    template = make_template(server.url, analyzer, data)
    env = Environment(server.url, template, analyzer, data)
    DecisionMachine.env = env
    while True:  # each round draws new random sequences (not the suite's profile)
        try:
            run_state_machine_as_test(DecisionMachine, settings=settings(
                max_examples=args.examples, stateful_step_count=args.steps,
                deadline=None, database=None))  # a step: seconds
        except Exception as exc:  # noqa: BLE001 - every failure is reported, then counted
            first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            notes = "\n".join(getattr(exc, "__notes__", []))  # the shrunk sequence
            failures.setdefault(first, f"{exc}\n{notes}")
            print(f"FAILURE: {exc}\n{notes}", flush=True)
        minutes = (time.perf_counter() - started) / 60
        print(f"{env.sequences:,} sequences, {env.steps:,} steps, {minutes:.1f} min, "
              f"{len(failures)} distinct failure(s)", flush=True)
        if minutes >= args.minutes:
            return failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200,
                        help="sequences per round (hypothesis examples)")
    parser.add_argument("--steps", type=int, default=20, help="steps per sequence at most")
    parser.add_argument("--minutes", type=float, default=0.0,
                        help="keep running rounds until this long (0: one round)")
    parser.add_argument("--face-lists", action="store_true",
                        help="incremental runs search the face lists whatever the size")
    args = parser.parse_args()
    if args.face_lists:
        cluster_update.LISTS_MIN_FACES = 0
        face_lists.ADDED_SHARE = 0.0

    root = Path(tempfile.mkdtemp(prefix="rbv-fuzz-"))
    with PasswordServer.running() as server:
        failures = _rounds(server, root / "data", args)
    for first, whole in failures.items():
        print(f"\n=== {first}\n{whole}")
    print(f"\n{len(failures)} distinct failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

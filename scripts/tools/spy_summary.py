"""(Not a benchmark) Where the threads of a profiled `rbv index` spent their samples: a
`py-spy record --format raw` output (``--subprocesses``: a helper process's stacks are
nested under the run's) summed by process and by what a thread was doing, then one
kind of work split by the deepest rbv function on the stack and what it called.

    uv run python scripts/tools/spy_summary.py /tmp/out/spy-idle.txt
    uv run python scripts/tools/spy_summary.py /tmp/out/spy-gil.txt --role decoding --top 8

With ``--idle`` a sample is a thread's stack whether it ran or waited; with ``--gil``
only the thread holding the interpreter's lock is sampled. `device_parts.py`'s
``PROFILE=idle`` / ``PROFILE=gil`` write such files on a GPU machine.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

ROLES = (
    ("inference", ("_analyze_slice",)),  # an inference thread analysing a batch's slice
    ("decoding", ("_prepared",)),  # a decoding thread: decode, cut the detector's input
    ("writing", ("_finish_batch",)),  # the scan's thread: waits for a batch, stores it
    ("catalogue", ("run_catalogue", "read_file")),  # its thread and its reading threads
    ("model loading", ("load_analyzer",)),
)
"""A role and the functions that mark it (the first role one of whose functions is on
the stack); a stack whose deepest frame is a thread pool's loop waits for work."""
_FRAME = re.compile(r"^(?P<name>.*?) \((?P<file>[^()]*?):\d+\)$")


def frames(stack: str) -> tuple[str, list[tuple[str, str]]]:
    """(the process, [(function, file), ...] outermost first) of one raw stack: the
    process is ``helper`` where a nested ``process N:`` frame follows the first."""
    parts = stack.split(";")
    nested = len(parts) > 1 and parts[1].startswith("process ")
    out = []
    for part in parts[2 if nested else 1:]:
        match = _FRAME.match(part)
        out.append((match["name"], match["file"]) if match else (part, ""))
    return ("helper" if nested else "run"), out


def role_of(stack: list[tuple[str, str]]) -> str:
    names = {name for name, _ in stack}
    waiting = "Future.result" in names
    for role, markers in ROLES:
        if names.intersection(markers):
            return f"{role}: waits for a decode" if role == "inference" and waiting else role
    if stack and stack[-1][0] == "_worker":
        return "a pool thread: waits for work"
    return "other"


def where(stack: list[tuple[str, str]]) -> str:
    """The deepest rbv function of a stack and the function it was in below it."""
    ours = [i for i, (_, file) in enumerate(stack) if file.startswith("rbv/")]
    if not ours:
        return stack[-1][0] if stack else "?"
    i = ours[-1]
    below = stack[i + 1][0] if i + 1 < len(stack) else "(itself)"
    return f"{stack[i][0]} > {below}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("profile", type=Path, help="py-spy's raw output (--format raw)")
    parser.add_argument("--role", default="inference",
                        help="the kind of work to split (default inference; see ROLES)")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    by_role: Counter[tuple[str, str]] = Counter()
    split: Counter[str] = Counter()
    for line in args.profile.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        process, stack_frames = frames(stack)
        role = role_of(stack_frames)
        by_role[(process, role)] += int(count)
        if role == args.role:
            split[where(stack_frames)] += int(count)
    total = sum(by_role.values())
    print(f"{total:,} samples")
    for (process, role), n in sorted(by_role.items()):
        print(f"  {process:<6} {role:<26} {n:>8,}  {n / total:6.1%}")
    chosen = sum(split.values())
    print(f"{args.role}: {chosen:,} samples, by the deepest rbv function > what it was in")
    for name, n in split.most_common(args.top):
        print(f"  {n:>8,}  {n / max(1, chosen):6.1%}  {name}")


if __name__ == "__main__":
    main()

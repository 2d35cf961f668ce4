"""The test cache's build lock (``tests/support/cache_lock.py``): under ``pytest -n 2``
two workers that need the same Immich build or environment build it once; the second
waits for the first and reuses its result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# ensure_build's and ensure_venv's pattern: look, lock, look again, build, mark complete.
# The builder holds on (until told on stdin) before it marks its entry complete.
BUILD = """
import sys
from pathlib import Path
from tests.support.cache_lock import building

entry = Path(sys.argv[1])
print("trying", flush=True)
with building(entry):
    if (entry / ".complete").is_file():
        print("reused", flush=True)
    else:
        print("building", flush=True)
        sys.stdin.readline()
        entry.mkdir(exist_ok=True)
        (entry / ".complete").write_text("done")
        print("built", flush=True)
"""


def _builder(entry: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", BUILD, str(entry)], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)


def test_a_second_builder_waits_for_the_first_and_reuses_its_entry(tmp_path: Path) -> None:
    entry = tmp_path / "cache" / "immich-server-0123456789abcdef"
    first = _builder(entry)
    assert first.stdout is not None
    assert first.stdout.readline().strip() == "trying"
    assert first.stdout.readline().strip() == "building"  # it holds the lock now
    second = _builder(entry)
    assert second.stdout is not None
    assert second.stdout.readline().strip() == "trying"
    out, _ = first.communicate("\n", timeout=60)  # the first one finishes its build
    assert out.split() == ["built"]
    out, _ = second.communicate("\n", timeout=60)
    assert out.split() == ["reused"], "the second builder built the entry again"
    assert first.returncode == second.returncode == 0

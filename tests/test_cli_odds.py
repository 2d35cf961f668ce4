"""Odds and ends of daily use at the terminal (issue 24 #6)."""

from __future__ import annotations

import os
import subprocess
import sys

from rbv.config import Settings


def _into_a_closed_pipe(*args: str) -> subprocess.CompletedProcess[str]:
    """`rbv ARGS | head` where head has already exited: the reader end is closed before
    rbv writes a byte (it takes far longer to start than this takes to close it)."""
    reader, writer = os.pipe()
    os.close(reader)
    env = {**os.environ, "DATABASE_URL": "", "RBV_DATABASE_URL": ""}
    try:
        return subprocess.run([sys.executable, "-m", "rbv", *args], stdout=writer,
                              stderr=subprocess.PIPE, text=True, env=env, timeout=120,
                              check=False)
    finally:
        os.close(writer)


def test_a_pipe_closed_early_ends_quietly(settings: Settings) -> None:
    url = str(settings.database_url)
    for args in (["-d", url, "stats", "--json"], ["-d", url, "stats"],
                 ["import-folders", "--help"]):
        done = _into_a_closed_pipe(*args)
        assert (done.returncode, done.stderr) == (1, ""), args  # was "Error: Broken pipe"

"""One process at a time builds an entry of the test cache (``~/.cache/rbv-tests``):
the pytest-xdist workers of one run, or two runs at once, would otherwise each build the
same Immich server or environment (minutes of both cores) and keep one. The others
wait on the lock and reuse what the first one built."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def building(entry: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``entry`` (a lock file beside it) for the block; a
    process that dies holding it lets it go with its file descriptors."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    with open(entry.parent / f".{entry.name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

"""One writer per output folder: ``refine`` and ``export-swap`` replace whole folders
under OUT, so two runs on the same OUT would delete each other's files."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from rbv.errors import ConfigError, writing

LOCK_NAME = ".rbv-writing.lock"


@contextlib.contextmanager
def writing_folder(out: Path, command: str) -> Iterator[None]:
    """Hold OUT for ``command`` until the block ends; a second writer gets a clear error.

    The lock is an OS file lock, so a killed run releases it with its process.
    """
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out} exists and is not a folder; pass a folder for OUT")
    out.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks, no guard
        yield
        return
    fd = os.open(out / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"another rbv {command} (or refine/export-swap) is writing "
                              f"{out}; wait for it to finish, or pick another folder") from None
        yield
    finally:
        os.close(fd)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the whole new one,
    never a half-written one (a run killed mid-write leaves the previous manifest)."""
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with writing(path):
        tmp.write_text(text)
        os.replace(tmp, path)

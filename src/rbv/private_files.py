"""Files rbv keeps for itself (``rbv serve``'s face crops, downsized photos, ranking of
suggestions with every person's name and the page that opens the browser; the face
lists an incremental ``rbv cluster`` searches): its user's alone, folders 0700 and files
0600, made so explicitly rather than left to the umask of whoever started it. A cache
folder an older rbv left open to others is closed, with what it holds."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

PRIVATE_FOLDER = 0o700
PRIVATE_FILE = 0o600


def private_folder(path: Path) -> Path:
    """``path``, made (with each missing parent) as a folder only its owner can enter;
    one that exists and is open to others is closed, with the files in it. A parent that
    exists is never changed."""
    missing = []
    for folder in (path, *path.parents):
        if folder.is_dir():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir(mode=PRIVATE_FOLDER, exist_ok=True)
        os.chmod(folder, PRIVATE_FOLDER)  # mkdir's mode passes through the umask
    if path.stat().st_mode & 0o077:
        os.chmod(path, PRIVATE_FOLDER)
        for child in path.iterdir():
            if child.is_file() and not child.is_symlink():
                os.chmod(child, PRIVATE_FILE)
    return path


@contextmanager
def private_file(path: Path, *, durable: bool = False) -> Iterator[IO[bytes]]:
    """Write ``path`` whole or not at all (a temporary file renamed over it), readable by
    its owner only; one thread's or process's writes never mix with another's.
    ``durable``: on the disk before the rename (a crash leaves the old file or the new
    one, never a new name over missing data)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise

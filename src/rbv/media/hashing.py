"""Content identity: a streaming sha256 that also keeps the first bytes for sniffing."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from rbv.media.sniff import HEAD_BYTES
from rbv.regular_files import open_regular

_CHUNK = 1 << 20


@dataclass(frozen=True)
class FileDigest:
    """What one read of a file tells: its hash, size and leading bytes."""

    sha256: str
    size: int
    head: bytes


def digest_file(path: Path) -> FileDigest:
    """Hash ``path`` in 1 MiB chunks (memory stays flat for any file size).

    Raises OSError when the file cannot be read, :class:`rbv.regular_files.NotRegular` (an
    OSError) when it is not a regular file: a FIFO is never opened for reading.
    """
    h = hashlib.sha256()
    size = 0
    head = b""
    with os.fdopen(open_regular(path), "rb") as f:
        while chunk := f.read(_CHUNK):
            if not head:
                head = chunk[:HEAD_BYTES]
            h.update(chunk)
            size += len(chunk)
    return FileDigest(h.hexdigest(), size, head)

"""sha256 of model files, remembered so a 170 MB recognizer is not re-read every run.

A hash is reused while the file's (path, size, mtime) is unchanged: within a process
from memory, across processes from a small JSON file under rbv's data directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from pathlib import Path

_CHUNK = 1 << 20
_lock = threading.Lock()
_memory: dict[tuple[str, int, int], str] = {}


def _key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def sha256_file(path: Path) -> str:
    """The file's sha256 as 64 lowercase hex digits (no caching)."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def cached_sha256(path: Path, cache_file: Path | None = None) -> str:
    """``sha256_file(path)``, reused while path, size and mtime are unchanged.

    ``cache_file`` (optional) keeps hashes across processes; a missing, unreadable or
    corrupt cache is ignored and rewritten, never an error.
    """
    key = _key(path)
    with _lock:
        if key in _memory:
            return _memory[key]
    stored = _read_cache(cache_file) if cache_file else {}
    entry = stored.get(key[0])
    if entry and entry.get("size") == key[1] and entry.get("mtime_ns") == key[2]:
        digest = str(entry["sha256"])
    else:
        digest = sha256_file(path)
        if cache_file:
            stored[key[0]] = {"size": key[1], "mtime_ns": key[2], "sha256": digest}
            _write_cache(cache_file, stored)
    with _lock:
        _memory[key] = digest
    return digest


def _read_cache(cache_file: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(cache_file: Path, data: dict[str, dict[str, object]]) -> None:
    # Atomic replace: concurrent rbv processes may write the cache at the same time;
    # the last writer wins and nobody reads a half-written file. Failing to write
    # (read-only data dir) only costs a re-hash next run.
    with contextlib.suppress(OSError):
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
        os.replace(tmp, cache_file)

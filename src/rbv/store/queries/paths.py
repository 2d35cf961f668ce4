"""How the catalogue keeps a file path: its exact bytes, and a text to read.

Linux file names are bytes. Python hands rbv a name that is not UTF-8 as a ``str`` with
surrogate escapes (PEP 383: byte 0xE9 becomes U+DCE9), which ``open`` and ``stat`` turn
back into the same bytes, but which PostgreSQL text cannot hold. So ``path_bytes``
(bytea) keeps the bytes and is what every lookup uses, and ``path`` (text) is for people
and SQL: the same string for a UTF-8 name, ``\\xNN`` for each byte that is not UTF-8.
The escaped text is not an identity (a file may be literally named ``caf\\xe9.jpg``),
which is why nothing is looked up by it.
"""

from __future__ import annotations


def path_bytes(path: str) -> bytes:
    """The bytes of a path as the file system has them."""
    return path.encode("utf-8", "surrogateescape")


def path_text(path: str) -> str:
    """The readable text of a path: UTF-8 names as they are, other bytes as ``\\xNN``."""
    return path_bytes(path).decode("utf-8", "backslashreplace")


def path_from_bytes(raw: bytes) -> str:
    """The path (as Python's file functions take it) of stored bytes."""
    return bytes(raw).decode("utf-8", "surrogateescape")


def prefix_range(folder: str) -> tuple[bytes, bytes]:
    """Bounds ``lo <= path_bytes < hi`` of every path inside ``folder``: a range the
    unique index on ``path_bytes`` answers (bytea sorts byte by byte)."""
    lo = path_bytes(folder.rstrip("/") + "/")
    return lo, lo[:-1] + b"0"  # "0" is the byte after "/"

"""Opening only regular files: a FIFO, a device or a folder where a photo or a sidecar
should be is never opened (opening a FIFO for reading blocks until a writer comes), and
a symlink is followed only where the caller says so."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device"),
          (stat.S_ISLNK, "a symlink"))


class NotRegular(OSError):
    """The path is not a regular file (its ``strerror`` says what it is)."""


def kind_of(mode: int) -> str:
    """What a file of ``mode`` is, in words ("a regular file", "a FIFO (named pipe)")."""
    return next((name for test, name in _KINDS if test(mode)), "a regular file")


def regular_stat(path: Path, *, follow: bool = True) -> os.stat_result:
    """The status of ``path``, a regular file (through symlinks when ``follow``).
    Raises :class:`NotRegular` for anything else (a symlink loop included) and OSError
    when it cannot be looked at."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular(exc.errno, "a symlink loop", str(path)) from None
        raise
    if not stat.S_ISREG(st.st_mode):
        raise NotRegular(errno.EINVAL, f"not a regular file but {kind_of(st.st_mode)}",
                         str(path))
    return st


def open_regular(path: Path, *, follow: bool = True) -> int:
    """A read-only descriptor of ``path``, opened without blocking (a FIFO swapped in
    after a check cannot hang the open) and checked to be a regular file. Raises
    :class:`NotRegular` or OSError."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise NotRegular(exc.errno, "a symlink loop" if follow else "a symlink",
                             str(path)) from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegular(errno.EINVAL, f"not a regular file but {kind_of(st.st_mode)}",
                             str(path))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path, limit: int = -1, *, follow: bool = True) -> bytes:
    """The bytes of a regular file (at most ``limit`` when given)."""
    with os.fdopen(open_regular(path, follow=follow), "rb") as f:
        return f.read(limit)


def is_read_only(st: os.stat_result) -> bool:
    """Nobody may write the file by its mode (root could, but rbv respects the mode)."""
    return st.st_mode & 0o222 == 0

"""Holding a photo alone while rbv swaps it: a Linux write lease.

A program that keeps a photo open and writes through its descriptor after rbv renamed
its new file over the photo writes into the old, unlinked file: its save is lost. A
Linux write lease (``F_SETLEASE``) is granted only while no other process has the file
open, and another process that opens the file while it is held waits (at most
``/proc/sys/fs/lease-break-time`` seconds) until rbv lets go, the lease telling rbv that
someone is waiting. rbv takes one on the photo for its last check and its swap: a photo
open in another program is not written (:class:`OpenElsewhere`), and the caller puts the
photo back when one opened it for writing during the swap.

Where no lease is to be had (not Linux, a file system or network share without them,
another user's file that rbv may not lease) nothing is held and the caller checks as
before. A lease on a file rbv has just written beside the photo tells the two apart: a
share that refuses every lease refuses that one too.
"""

from __future__ import annotations

import errno
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rbv.errors import RbvError
from rbv.regular_files import open_regular

try:
    import fcntl
except ImportError:  # not a POSIX system: no leases
    fcntl = None  # type: ignore[assignment]

_SETLEASE: int | None = getattr(fcntl, "F_SETLEASE", None)
# A broken lease signals its holder, with SIGIO unless told otherwise, and SIGIO ends a
# process that has no handler for it: rbv asks for SIGURG, which is ignored unless
# handled, and reads the lease's state instead.
_BREAK_SIGNAL = signal.SIGURG
_BUSY = (errno.EAGAIN, errno.EBUSY)


class OpenElsewhere(RbvError):
    """Another program has the file open (or opened it while rbv replaced it): rbv's
    version was not written."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"{path}: open in another program")
        self.path = path


class Lease:
    """A write lease held on an open descriptor of a file."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def names_it(self, path: Path) -> bool:
        """``path`` (a symlink is not followed) is the leased file."""
        try:
            st = os.lstat(path)  # a stat opens nothing: the lease stays unbroken
        except OSError:
            return False
        held = os.fstat(self.fd)
        return (st.st_dev, st.st_ino) == (held.st_dev, held.st_ino)

    def alone(self) -> bool:
        """No other process opened the file for writing since the lease was taken
        (one that opened it to read only cannot change it)."""
        assert fcntl is not None  # a lease was taken
        return bool(fcntl.fcntl(self.fd, fcntl.F_GETLEASE) != fcntl.F_UNLCK)


@contextmanager
def held_alone(path: Path, probe: Path) -> Iterator[Lease | None]:
    """A write lease on the regular file ``path`` while the block runs; None where no
    lease is to be had here (then nothing is held). ``probe``: a file rbv wrote in the
    same folder, that no one else has open.

    Raises :class:`OpenElsewhere` when another process has ``path`` open."""
    try:
        fd = open_regular(path, follow=False)
    except OSError:
        yield None  # gone, or not a regular file: the caller's own check says so
        return
    try:
        refused = _take(fd)
        if refused in _BUSY and _leases_work(probe):
            raise OpenElsewhere(path)
        yield Lease(fd) if refused == 0 else None
    finally:
        os.close(fd)  # lets go of the lease: whoever waits on it goes on


def _take(fd: int) -> int:
    """0 when a write lease on ``fd`` is held now, else the errno that refused it."""
    if fcntl is None or _SETLEASE is None:
        return errno.ENOSYS
    try:
        fcntl.fcntl(fd, fcntl.F_SETSIG, _BREAK_SIGNAL)  # before the lease: no gap
        fcntl.fcntl(fd, _SETLEASE, fcntl.F_WRLCK)
    except OSError as exc:
        return exc.errno or errno.EIO
    return 0


def _leases_work(probe: Path) -> bool:
    """Whether this file system grants leases: on ``probe``, open nowhere else."""
    try:
        fd = open_regular(probe, follow=False)
    except OSError:
        return False
    try:
        return _take(fd) == 0
    finally:
        os.close(fd)

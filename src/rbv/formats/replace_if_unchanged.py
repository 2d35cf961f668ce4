"""Replacing a user's file only while it is still the file rbv read.

Another program may save a photo (or its sidecar) while rbv works on it. rbv keeps what
it saw when it read the file (:class:`Seen`: device, inode, size, mtime and sha256) and,
right before its new file takes the name, checks that the name still holds that file:
the same device, inode, size and mtime, then the same sha256. The two files then swap
names in one step (Linux ``renameat2(RENAME_EXCHANGE)``), which leaves the replaced file
in rbv's hands: it is checked once more, and when another program wrote in the instant
between the check and the swap, the swap is undone, so the name holds the other
program's version again. On a file system that cannot swap (some network shares) the new
file is renamed over the checked one; an edit in that last instant is then lost.

A program that keeps the file open would write into the replaced file after the swap:
where Linux grants a write lease (:mod:`rbv.formats.lease`), rbv holds one across the
check and the swap, so a file open in another program is not replaced, and one opened
for writing during the swap is put back.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from rbv.errors import RbvError
from rbv.formats.atomic import Digest, give_owner, sync_folder, temp_path, write_temp
from rbv.formats.lease import Lease, OpenElsewhere, held_alone
from rbv.regular_files import open_regular


class ChangedUnderneath(RbvError):
    """The file changed since rbv read it: rbv's version was not written."""

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"{path}: {why}")
        self.path = path


@dataclass(frozen=True)
class Seen:
    """A file as rbv read it."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    uid: int
    gid: int
    digest: Digest

    def is_it(self, st: os.stat_result) -> bool:
        """``st`` is the status of this file, as it was."""
        return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns) == (
            self.dev, self.ino, self.size, self.mtime_ns)


def read_seen(path: Path, limit: int = -1) -> tuple[bytes, Seen]:
    """The bytes of the regular file ``path`` (at most ``limit``) and what was read.
    The status is taken before the bytes: a write during the read makes the file differ
    from what was seen. Raises :class:`rbv.regular_files.NotRegular` or OSError."""
    with os.fdopen(open_regular(path), "rb") as f:
        st = os.fstat(f.fileno())
        data = f.read(limit)
    return data, Seen(st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_uid,
                      st.st_gid, Digest.of(data))


def still_seen(path: Path, seen: Seen) -> bool:
    """``path`` (a symlink is not followed) is the file ``seen``, byte for byte."""
    try:
        with os.fdopen(open_regular(path, follow=False), "rb") as f:
            return seen.is_it(os.fstat(f.fileno())) and Digest.of_stream(f) == seen.digest
    except OSError:
        return False


def replace_unchanged(path: Path, data: bytes, seen: Seen) -> None:
    """Make ``path`` (a regular file, not a symlink) hold ``data``, synced, with the
    owner (where rbv may set it), mode, times and extended attributes of the file it
    replaces, unless ``path`` is no longer the file ``seen``.

    Raises :class:`ChangedUnderneath` (``path`` holds what the other program wrote),
    :class:`rbv.formats.lease.OpenElsewhere` (another program has it open; it is as it
    was) or OSError (``path`` is as it was). No temporary file is left, except when undoing a
    swap fails: then the other program's version is the temporary file it names."""
    tmp = temp_path(path)
    keep_tmp = False
    try:
        write_temp(tmp, data, durable=True)
        give_owner(tmp, seen.uid, seen.gid)
        try:
            shutil.copystat(path, tmp)
        except FileNotFoundError:
            raise ChangedUnderneath(path, "gone while rbv was writing it") from None
        with held_alone(path, probe=tmp) as lease:
            if not (_holds(lease, path, seen) if lease else still_seen(path, seen)):
                raise ChangedUnderneath(path, "changed since rbv read it")
            if not _exchange(tmp, path):
                os.replace(tmp, path)
            elif (opened := lease is not None and not lease.alone()) or not (
                    lease.names_it(tmp) if lease else still_seen(tmp, seen)):
                # opened to write, written or renamed over in the last instant: theirs
                # goes back
                why = OpenElsewhere(path) if opened else ChangedUnderneath(
                    path, "changed while rbv replaced it")
                try:
                    _exchange(tmp, path)
                except OSError as exc:
                    keep_tmp = True
                    raise ChangedUnderneath(
                        path, f"{str(why).removeprefix(f'{path}: ')}, and putting it back "
                        f"failed ({exc.strerror or exc}): the other program's version is "
                        f"{tmp}") from None
                raise why
    finally:
        if not keep_tmp:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    sync_folder(path.parent)


def _holds(lease: Lease, path: Path, seen: Seen) -> bool:
    """``path`` is the leased file and that is the file ``seen``, byte for byte (read
    through the lease's own descriptor: opening the file again would break the lease)."""
    if not (lease.names_it(path) and seen.is_it(os.fstat(lease.fd))):
        return False
    os.lseek(lease.fd, 0, os.SEEK_SET)
    with open(lease.fd, "rb", closefd=False) as f:
        return Digest.of_stream(f) == seen.digest


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
if _renameat2 is not None:
    _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                           ctypes.c_uint]
    _renameat2.restype = ctypes.c_int


def _exchange(a: Path, b: Path) -> bool:
    """Swap the names ``a`` and ``b`` in one step; False where the system or the file
    system cannot (nothing happened then). Raises OSError."""
    if _renameat2 is None:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(b))

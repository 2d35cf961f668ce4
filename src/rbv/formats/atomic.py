"""Writing the user's files without ever leaving them half-written.

Every file rbv writes beside the user's photos (a sidecar, a photo with regions, a
photo's backup) or under an output folder goes through a temporary file in the same
folder, ``.NAME.rbv-PID.tmp``, renamed over ``NAME`` once complete; a failed write
removes its temporary file at once. A temporary file that a killed run left behind
carries the dead run's process id in its name: :func:`remove_stale_temps` removes those
(and only those) on a later run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rbv.regular_files import open_regular

TEMP_NAME = re.compile(r"^\..+\.rbv-(?P<pid>\d+)\.tmp$")
"""rbv's temporary files: ``.NAME.rbv-PID.tmp``."""
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Digest:
    """A file's size and sha256, as written or as read back."""

    size: int
    sha256: str

    @classmethod
    def of(cls, data: bytes) -> Digest:
        return cls(len(data), hashlib.sha256(data).hexdigest())

    @classmethod
    def of_file(cls, path: Path) -> Digest:
        with os.fdopen(open_regular(path), "rb") as f:
            return cls.of_stream(f)

    @classmethod
    def of_stream(cls, f: BinaryIO) -> Digest:
        """The digest of what is left to read from ``f``."""
        h = hashlib.sha256()
        size = 0
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
        return cls(size, h.hexdigest())


class BackupMismatch(OSError):
    """A backup read back from disk is not the bytes written (nothing was renamed)."""


def temp_path(path: Path) -> Path:
    """This process's temporary file for ``path``."""
    return path.with_name(f".{path.name}.rbv-{os.getpid()}.tmp")


def write_atomically(path: Path, data: bytes, *, durable: bool, like: Path | None = None,
                     verify: bool = False, replace: bool = True) -> None:
    """Make ``path`` hold ``data`` in one rename. ``durable``: the bytes (and the rename)
    are on disk before this returns. ``like``: copy that file's owner (where rbv may),
    mode and times. ``verify``: read the temporary file back and compare size and sha256
    before the rename.
    ``replace`` False: never replace an existing ``path`` (FileExistsError).

    Raises OSError (the temporary file is gone by then; ``path`` is as it was)."""
    tmp = temp_path(path)
    try:
        write_temp(tmp, data, durable=durable)
        if like is not None:
            st = os.stat(like)
            give_owner(tmp, st.st_uid, st.st_gid)
            shutil.copystat(like, tmp)
        if verify and Digest.of_file(tmp) != Digest.of(data):
            raise BackupMismatch(errno.EIO, "the copy read back differs from the original",
                                 str(path))
        if replace:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if durable:
        sync_folder(path.parent)


def write_temp(tmp: Path, data: bytes, *, durable: bool) -> None:
    """Write ``data`` into the temporary file ``tmp`` (synced when ``durable``); the
    caller removes it when anything fails."""
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view[:_CHUNK]):]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


def give_owner(path: Path, uid: int, gid: int) -> None:
    """Make ``path`` owned by ``uid``:``gid`` where rbv may (as root, say: a photo rbv
    rewrites stays its owner's)."""
    if (uid, gid) != (os.geteuid(), os.getegid()):
        with contextlib.suppress(PermissionError):
            os.chown(path, uid, gid)


def _link_new(tmp: Path, path: Path) -> None:
    """Move ``tmp`` to ``path`` unless ``path`` exists (a hard link cannot clobber)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links here (FAT, some network shares)
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(path)) from None
        os.replace(tmp, path)
        return
    tmp.unlink()


def sync_folder(folder: Path) -> None:
    """Put a rename in ``folder`` on disk (some file systems cannot: then nothing)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # someone else's process, or not a pid: leave its file alone
    return True


def remove_stale_temps(folder: Path, pattern: re.Pattern[str] = TEMP_NAME,
                       alive: Callable[[int], bool] = _pid_alive) -> list[Path]:
    """Remove the temporary files of ``pattern`` (its ``pid`` group: the writer) in
    ``folder`` whose writer no longer runs; plain files only, never links or folders.
    Returns what was removed (a folder that cannot be listed: nothing)."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or alive(pid):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed

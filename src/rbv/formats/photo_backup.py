"""Rewriting a photo (``export-xmp --write-into-files``) without ever losing its original.

Before a photo is first rewritten, its bytes go to ``PHOTO.EXT_original`` (exiftool's
name, so ``exiftool -restore_original`` works) through a temporary file that is synced,
read back and compared (size and sha256) before it takes that name; only then is the
photo replaced, itself through a synced temporary file and one rename, and only while it
is still the file that was read (:mod:`rbv.formats.replace_if_unchanged`). A kill or a full disk at
any step leaves the photo as it was, or the photo rewritten with a complete backup
beside it.

A backup already there is trusted only when its size and sha256 are ones the caller
vouches for (the photo's content as indexed, or what rbv recorded when it wrote that
backup): anything else (a copy cut short by an older rbv, someone else's file) stops
the rewrite of that photo.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path

from rbv.formats.atomic import Digest, write_atomically
from rbv.formats.replace_if_unchanged import Seen, replace_unchanged
from rbv.formats.xmp import BACKUP_SUFFIX, XmpError


class BackupUntrusted(XmpError):
    """A photo's ``_original`` exists but is not a verified copy of its original."""


def photo_target(photo: Path) -> Path:
    """The file a rewrite replaces: where a symlink points (the link stays a link)."""
    return Path(os.path.realpath(photo))


def backup_of(target: Path) -> Path:
    return target.with_name(target.name + BACKUP_SUFFIX)


def existing_backup(target: Path, trusted: Collection[Digest]) -> Digest | None:
    """The verified backup of ``target`` (None: there is none yet). Raises
    :class:`BackupUntrusted` for a backup that does not verify."""
    backup = backup_of(target)
    if not os.path.lexists(backup):
        return None
    if backup.is_symlink() or not backup.is_file():
        raise BackupUntrusted(f"{target}: {backup.name} is not a plain file; rbv leaves the "
                              "photo as it is (move it away, then run again)")
    try:
        found = Digest.of_file(backup)
    except OSError as exc:
        raise XmpError(f"{target}: cannot read {backup.name} ({exc.strerror or exc})") from None
    if found not in trusted:
        raise BackupUntrusted(
            f"{target}: {backup.name} ({found.size:,} bytes, sha256 {found.sha256[:12]}…) is "
            "not a verified copy of the original (neither the photo rbv indexed nor the "
            "backup rbv wrote); rbv leaves the photo as it is: check the backup, move it "
            "away, then run again")
    return found


def write_backup(target: Path, original: bytes) -> None:
    """``original`` (the photo's bytes as read) as ``target``'s backup: synced, read back
    and verified, then named; an existing backup is never replaced.

    Raises OSError (no backup is left then, and the photo was not touched)."""
    write_atomically(backup_of(target), original, durable=True, like=target, verify=True,
                     replace=False)


def rewrite_photo(target: Path, data: bytes, seen: Seen) -> None:
    """Replace the photo (whose backup is in place) by ``data``: synced, one rename, and
    only while it is the file ``seen`` (else
    :class:`rbv.formats.replace_if_unchanged.ChangedUnderneath`)."""
    replace_unchanged(target, data, seen)

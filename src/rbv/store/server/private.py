"""Folders only their owner can reach, for the embedded server: its data folder, refused
when it is not the user's alone (:func:`refuse_foreign`), its socket folder (a short one
under /tmp when the data folder's path is too long for a Unix socket), and, when rbv
runs as root, a search-only ACL entry that lets the server's system user reach
its data folder through parents that are private (never a chmod of those parents)."""

from __future__ import annotations

import errno
import grp
import hashlib
import os
import pwd
import shlex
import stat
import struct
from pathlib import Path

from rbv.errors import EmbeddedServerError, Remedy, UnsafeFolder, printable

SOCKET_NAME = ".s.PGSQL.5432"
MAX_SOCKET_PATH = 107
"""Longest Unix socket path Linux takes (``sun_path`` is 108 bytes with its NUL)."""
SHORT_ROOT = Path("/tmp")


def socket_dir(pgdata: Path, server_uid: int) -> Path:
    """Where the server's socket goes: ``pgdata`` itself (private: PostgreSQL keeps it
    0700) when the socket's path fits, else ``/tmp/rbv-UID-HASH``, named after the
    server's user and the data folder (never a shared or world-writable folder)."""
    if len(os.fsencode(pgdata / SOCKET_NAME)) <= MAX_SOCKET_PATH:
        return pgdata
    digest = hashlib.sha256(os.fsencode(pgdata)).hexdigest()[:16]
    return SHORT_ROOT / f"rbv-{server_uid}-{digest}"


def ensure_private_dir(path: Path, owner_uid: int, owner_gid: int) -> None:
    """Create ``path`` (0700, owned by ``owner_uid``) if it is missing, then check with
    ``lstat`` that it is a real folder of that owner that no one else can reach; raise
    :class:`EmbeddedServerError` otherwise (another user made it first: a trap)."""
    try:
        path.mkdir(mode=0o700)
        if os.geteuid() != owner_uid:
            os.chown(path, owner_uid, owner_gid)
    except FileExistsError:
        pass
    except OSError as exc:
        raise EmbeddedServerError(f"cannot create the embedded server's socket folder "
                                  f"{printable(str(path))}: {exc.strerror}") from None
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != owner_uid:
        raise EmbeddedServerError(
            f"{printable(str(path))} (the embedded server's socket folder) is not a folder "
            f"of uid {owner_uid}: another user may have made it; remove it, or use a "
            "data folder of a shorter path", remedies=[Remedy("own_data_dir")])
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)  # ours (checked above): an older rbv left it open


def refuse_foreign(folder: Path, server_uid: int) -> None:
    """Raise :class:`UnsafeFolder` when ``folder`` (rbv's data folder, a resolved path) or
    a folder above it belongs to another user or another user can write to it, as ssh
    refuses a key file: whoever may rename an entry on the way can swap rbv's database
    for one of their own. Root and the server's user (``server_uid``, which holds the
    database anyway) are not others; sticky folders like /tmp above the data folder are
    fine (there only an entry's owner moves it). Missing folders are skipped (rbv makes
    them 0700); nothing is changed."""
    me = os.geteuid()
    trusted = {me, 0, server_uid}
    for path in (folder, *folder.parents):
        try:
            st = os.stat(path)
        except OSError:  # missing, or out of reach: rbv cannot use it either
            continue
        role = "rbv's data folder" if path == folder else "a folder above rbv's data folder"
        shown = printable(str(path))
        if st.st_uid not in trusted:
            raise UnsafeFolder(
                f"{shown} ({role}) belongs to {_user(st.st_uid)}, not to you: they could "
                "swap what rbv keeps there", remedies=[Remedy("own_data_dir")])
        if path != folder and st.st_mode & stat.S_ISVTX:
            continue
        writer = _other_writer(path, st, trusted)
        if writer is not None:
            fix = (f"; `chmod go-w {shlex.quote(shown)}` if no one else should"
                   if st.st_uid == me else "")
            raise UnsafeFolder(
                f"{shown} ({role}) is {stat.S_IMODE(st.st_mode):04o}: {writer} can write "
                f"to it, and so swap what rbv keeps there{fix}",
                remedies=[Remedy("own_data_dir")])


def _other_writer(path: Path, st: os.stat_result, trusted: set[int]) -> str | None:
    """Who besides the owner of ``path`` and the ``trusted`` users may write to it (its
    group when that group is not the owner's alone, a user or group of its ACL), in
    words; None: no one."""
    if st.st_mode & stat.S_IWOTH:
        return "every user"
    entries = _acl(path)
    if not entries:
        return f"group {_group(st.st_gid)}" if st.st_mode & stat.S_IWGRP \
            and not _owners_alone(st.st_gid, st.st_uid) else None
    mask = entries.get((_MASK, _NO_ID), 7)
    for (tag, ident), perm in sorted(entries.items()):
        if not perm & mask & _WRITE:
            continue
        if tag == _USER and ident not in trusted:
            return f"{_user(ident)} (an ACL entry)"
        if tag == _GROUP and not _owners_alone(ident, st.st_uid):
            return f"group {_group(ident)} (an ACL entry)"
        if tag == _GROUP_OBJ and not _owners_alone(st.st_gid, st.st_uid):
            return f"group {_group(st.st_gid)}"
    return None


def _owners_alone(gid: int, uid: int) -> bool:
    """Whether group ``gid`` holds user ``uid`` alone (a personal group, as Debian's ssh
    accepts): no other user names it as their group or is listed in it."""
    try:
        group, owner = grp.getgrgid(gid), pwd.getpwuid(uid)
    except KeyError:
        return False
    return all(m == owner.pw_name for m in group.gr_mem) and \
        all(p.pw_uid == uid for p in pwd.getpwall() if p.pw_gid == gid)


def _user(uid: int) -> str:
    try:
        return f"user {printable(pwd.getpwuid(uid).pw_name)} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def _group(gid: int) -> str:
    try:
        return f"{printable(grp.getgrgid(gid).gr_name)} (gid {gid})"
    except KeyError:
        return str(gid)


def make_private(path: Path) -> None:
    """``path`` (rbv's data folder, which exists) reachable by its owner alone: an older
    rbv made it 0755. Kept as is when it carries an ACL (rbv's own entry for the server's
    user: a chmod would reset its mask) or is not this user's."""
    st = path.stat()
    if st.st_uid != os.geteuid() or not stat.S_IMODE(st.st_mode) & 0o077 or _acl(path):
        return
    os.chmod(path, stat.S_IMODE(st.st_mode) & 0o700)


# POSIX ACLs as Linux stores them in the ``system.posix_acl_access`` attribute.
_ACL_XATTR = "system.posix_acl_access"
_ACL_VERSION = 2
_USER_OBJ, _USER, _GROUP_OBJ, _GROUP, _MASK, _OTHER = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
_NO_ID = 0xFFFFFFFF
_GROUP_CLASS = (_USER, _GROUP_OBJ, _GROUP)
_SEARCH = 0o1
_WRITE = 0o2


def grant_search(path: Path, uid: int) -> None:
    """Let user ``uid`` pass through every folder above ``path`` that stops it, with an
    ACL entry for that user alone allowing search (``--x``: it cannot list them), where
    ``chmod o+x`` would open them to every user. Raises :class:`EmbeddedServerError`
    where the file system takes no ACL."""
    for folder in reversed(path.parents):
        st = folder.stat()
        if st.st_uid == uid or st.st_mode & _SEARCH:
            continue
        entries = _acl(folder) or _acl_of_mode(st.st_mode)
        if (_USER, uid) in entries and entries[(_USER, uid)] & entries.get((_MASK, _NO_ID), 0) \
                & _SEARCH:
            continue
        entries = _unmasked(entries)
        entries[(_USER, uid)] = entries.get((_USER, uid), 0) | _SEARCH
        entries[(_MASK, _NO_ID)] = _group_class(entries)
        try:
            os.setxattr(folder, _ACL_XATTR, _pack(entries))
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            raise EmbeddedServerError(
                f"as root the embedded PostgreSQL runs as its own system user, which cannot "
                f"reach {printable(str(folder))} and that file system takes no ACL to let "
                "it through; run rbv as a regular user, or keep its data on another file "
                "system", remedies=[Remedy("own_data_dir")]) from None


def _acl(path: Path) -> dict[tuple[int, int], int]:
    try:
        raw = os.getxattr(path, _ACL_XATTR)
    except OSError:
        return {}
    (version,) = struct.unpack_from("<I", raw)
    if version != _ACL_VERSION:
        return {}
    return {(tag, ident): perm for tag, perm, ident in struct.iter_unpack("<HHI", raw[4:])}


def _acl_of_mode(mode: int) -> dict[tuple[int, int], int]:
    return {(_USER_OBJ, _NO_ID): (mode >> 6) & 7, (_GROUP_OBJ, _NO_ID): (mode >> 3) & 7,
            (_OTHER, _NO_ID): mode & 7}


def _unmasked(entries: dict[tuple[int, int], int]) -> dict[tuple[int, int], int]:
    """The same ACL with each group-class entry holding what it is allowed now (its
    rights within the mask), so a new mask grants nobody anything they lacked."""
    mask = entries.get((_MASK, _NO_ID), 7)
    return {key: perm & mask if key[0] in _GROUP_CLASS else perm
            for key, perm in entries.items()}


def _group_class(entries: dict[tuple[int, int], int]) -> int:
    """The mask: every permission a named entry or the owning group holds."""
    found = 0
    for (tag, _), perm in entries.items():
        if tag in _GROUP_CLASS:
            found |= perm
    return found


def _pack(entries: dict[tuple[int, int], int]) -> bytes:
    return struct.pack("<I", _ACL_VERSION) + b"".join(
        struct.pack("<HHI", tag, perm, ident) for (tag, ident), perm in sorted(entries.items()))

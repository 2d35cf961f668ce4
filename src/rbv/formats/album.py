"""A quick album: the photos a query found, copied or linked into one folder, each with
its XMP sidecars."""

from __future__ import annotations

import dataclasses
import filecmp
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rbv.errors import RbvError
from rbv.formats.xmp import sidecars_of


class AlbumError(RbvError):
    """A photo could not be copied or linked (reported per photo; the run goes on)."""


@dataclass(frozen=True)
class AlbumEntry:
    source: str
    target: str
    action: str  # copied | linked | present
    sidecars: tuple[str, ...] = ()  # the photo's XMP sidecars placed beside it


def album_name(source: str, image_id: int, used: set[str]) -> str:
    """The file name a photo gets in the album: its own name, with the image id added
    when another photo of the album has it. Only the last component of the path is
    used, so no name can lead outside the album."""
    name = os.path.basename(source.rstrip("/"))
    if name in ("", ".", ".."):
        name = f"{image_id}"
    if name in used:
        stem, dot, ext = name.rpartition(".")
        name = f"{stem}-{image_id}.{ext}" if dot and stem else f"{name}-{image_id}"
    used.add(name)
    return name


def place_photo(source: str, folder: Path, name: str, *, link: bool) -> AlbumEntry:
    """Copy (or symlink) ``source`` into ``folder`` as ``name``; a photo already there
    (same link target, or same bytes) is left as it is, so re-runs are cheap."""
    target = folder / name
    try:
        if link:
            if target.is_symlink() and os.readlink(target) == source:
                return AlbumEntry(source, str(target), "present")
            if target.exists() or target.is_symlink():
                raise AlbumError(f"{target}: exists and is not a link to {source}")
            os.symlink(source, target)
            return AlbumEntry(source, str(target), "linked")
        if target.exists() and filecmp.cmp(source, target, shallow=False):
            return AlbumEntry(source, str(target), "present")
        if target.exists() or target.is_symlink():
            raise AlbumError(f"{target}: exists with other content")
        copy_private(source, target)
        return AlbumEntry(source, str(target), "copied")
    except OSError as exc:
        raise AlbumError(f"{source}: {exc.strerror or exc}") from None


PRIVATE_COPY = 0o600


def copy_private(source: str, target: Path) -> None:
    """Copy ``source`` to the new file ``target``, readable by its owner alone whatever
    the source's mode or the umask (a 0644 photo of a library copied into a folder others
    can pass stays the user's), with the source's times; nothing is left when it fails."""
    with open(source, "rb") as src:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                     | os.O_CLOEXEC, PRIVATE_COPY)
        try:
            with os.fdopen(fd, "wb") as out:
                os.fchmod(out.fileno(), PRIVATE_COPY)  # the umask may have taken more
                shutil.copyfileobj(src, out, _CHUNK)
            st = os.fstat(src.fileno())
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        except BaseException:
            target.unlink(missing_ok=True)
            raise


_CHUNK = 1 << 20


def album_sidecars(source: str, name: str) -> list[tuple[str, str]]:
    """(sidecar, its name in the album) for each XMP sidecar of the photo: names, face
    regions and keywords other programs (and ``rbv export-xmp``) keep there travel with
    it. ``PHOTO.EXT.xmp`` becomes ``NAME.xmp`` beside the photo's album ``NAME``, and
    Lightroom's ``PHOTO.xmp`` becomes the album name's stem + ``.xmp``."""
    out = []
    for sidecar in sidecars_of(Path(source)):
        if sidecar.name == os.path.basename(source) + ".xmp":
            out.append((str(sidecar), name + ".xmp"))
        else:
            out.append((str(sidecar), (os.path.splitext(name)[0] or name) + ".xmp"))
    return out


def make_album(photos: Sequence[tuple[int, str]], folder: Path, *,
               link: bool) -> tuple[list[AlbumEntry], list[AlbumError]]:
    """Place every (image id, path) in ``folder`` (created when missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    entries: list[AlbumEntry] = []
    errors: list[AlbumError] = []
    for image_id, source in photos:
        name = album_name(source, image_id, used)
        try:
            entry = place_photo(source, folder, name, link=link)
        except AlbumError as exc:
            errors.append(exc)
            continue
        placed = []
        for sidecar, sidecar_name in album_sidecars(source, name):
            try:
                placed.append(place_photo(sidecar, folder, sidecar_name, link=link).target)
            except AlbumError as exc:  # the photo is there; its sidecar is reported
                errors.append(exc)
        entries.append(dataclasses.replace(entry, sidecars=tuple(placed)))
    return entries, errors

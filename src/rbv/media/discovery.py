"""Finding candidate photo files under the targets a user names.

A target may be a file, a *gallery* (a folder with ``index.json`` and ``tn/``; the
``tn/`` thumbnails are not photos), a *chunk* (its children are galleries), a *root*
(its children are chunks) or any folder. All four are walked the same way: recursively,
recognising galleries wherever they sit, so a mixed tree works too. Symlinks are
followed once; a loop, an unreadable folder or one whose path is too long for the
catalogue is reported and the walk goes on. A FIFO, socket or device named like a photo
is listed (its read says what it is, never opening it); other ones are not files.

Left out of every walk: hidden files (rbv's own temporary files are hidden), the copies
exiftool and ``rbv export-xmp --write-into-files`` keep of a photo before rewriting it
(``PHOTO.EXT_original``: a photo by content, but the same photo's earlier bytes) and XMP
sidecars (``*.xmp``): they belong to a photo, they are not photos.
"""

from __future__ import annotations

import errno
import fnmatch
import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from rbv.errors import ConfigError
from rbv.media.sniff import looks_like_image_name

MAX_PATH_BYTES = 2000
"""Longest path rbv catalogues (bytes): PostgreSQL cannot index much longer values."""
BACKUP_SUFFIX = "_original"
"""exiftool's name for the untouched copy of a file it rewrites (rbv uses it too)."""
SIDECAR_SUFFIX = ".xmp"
GALLERY_INDEX = "index.json"
GALLERY_THUMBS = "tn"


@dataclass(frozen=True)
class FoundFile:
    """A regular file to consider, with the gallery folder it belongs to (if any)."""

    path: Path  # absolute, as reached (symlinks in the path are kept)
    gallery: Path | None
    size: int
    mtime: float


@dataclass(frozen=True)
class WalkProblem:
    """A folder or file the walk could not enter; reported, not fatal. A ``lasting``
    one (a symlink loop, a broken symlink) is how the tree is, not a failure to retry."""

    path: Path
    reason: str
    lasting: bool = False


def is_gallery(folder: Path) -> bool:
    """A gallery is a folder with ``index.json`` and a ``tn/`` thumbnail folder (one
    that cannot be looked into is not: the walk says why it cannot list it)."""
    try:
        return (stat.S_ISREG(os.stat(folder / GALLERY_INDEX).st_mode)
                and stat.S_ISDIR(os.stat(folder / GALLERY_THUMBS).st_mode))
    except OSError:
        return False


def is_backup_or_sidecar(name: str) -> bool:
    """A backup ``PHOTO.EXT_original`` or an XMP sidecar: it goes with a photo."""
    return name.endswith(BACKUP_SUFFIX) or name.lower().endswith(SIDECAR_SUFFIX)


def is_companion(name: str) -> bool:
    """A file no walk catalogues: hidden, or a backup or sidecar of a photo."""
    return name.startswith(".") or is_backup_or_sidecar(name)


class PathFilter:
    """``--include`` / ``--exclude`` globs, matched against the full path and the name.

    With includes, a file must match one; a file matching any exclude is dropped.
    Excludes also prune folders (``--exclude '*/.thumbnails'``).
    """

    def __init__(self, include: Sequence[str] = (), exclude: Sequence[str] = ()) -> None:
        self.include = list(include)
        self.exclude = list(exclude)

    @staticmethod
    def _matches(path: Path, patterns: Sequence[str]) -> bool:
        text = path.as_posix()
        return any(fnmatch.fnmatch(text, p) or fnmatch.fnmatch(path.name, p) for p in patterns)

    def wants_file(self, path: Path) -> bool:
        if self.exclude and self._matches(path, self.exclude):
            return False
        return not self.include or self._matches(path, self.include)

    def wants_folder(self, path: Path) -> bool:
        return not (self.exclude and self._matches(path, self.exclude))


def walk_would_reach(path: Path, root: Path, path_filter: PathFilter | None) -> bool:
    """Whether walking ``root`` with ``path_filter`` would have listed the file at
    ``path`` (inside ``root``) had it been there: a file the filter or the walk leaves
    out was not looked for, so its absence says nothing."""
    keep = path_filter or PathFilter()
    if is_companion(path.name) or not keep.wants_file(path):
        return False
    return all(keep.wants_folder(folder) for folder in path.parents
               if folder != root and root in folder.parents)


def refuse_missing(targets: Sequence[Path]) -> None:
    """Refuse targets that do not exist (a typo or an unmounted disk: nothing to retry),
    naming the first."""
    missing = [t for t in targets if not os.path.exists(t.expanduser())]
    if missing:
        raise ConfigError(f"no such file or folder: {missing[0]}; check the path (is the "
                          "disk mounted?)")


def walk_root(target: Path) -> Path:
    """The absolute path a target is walked from: as given, symlinks kept (not resolved),
    so catalogued paths read as the user wrote them."""
    return Path(os.path.abspath(target.expanduser()))


def discover(
    targets: Sequence[Path], path_filter: PathFilter | None = None
) -> Iterator[FoundFile | WalkProblem]:
    """Every regular file under ``targets`` (in a stable order), and every problem met.

    Which of them are images is decided later, by content.
    """
    keep = path_filter or PathFilter()
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    for target in targets:
        target = walk_root(target)
        try:
            st = target.stat()
        except OSError as exc:
            yield WalkProblem(target, _why(exc, "cannot open target"))
            continue
        if target.is_dir():
            gallery = _gallery_of(target)
            yield from _walk(target, gallery, keep, seen_dirs, seen_files)
        elif target.is_file():
            unstorable = _unstorable_name(target)
            if unstorable:
                yield WalkProblem(target, unstorable)
            elif str(target) not in seen_files:
                seen_files.add(str(target))
                yield FoundFile(target, _gallery_of(target.parent), st.st_size, st.st_mtime)
        else:
            yield WalkProblem(target, "not a file or folder")


def _gallery_of(folder: Path) -> Path | None:
    """The gallery a folder is (or is inside, for a file named directly)."""
    return folder if is_gallery(folder) else None


def _walk(
    folder: Path,
    gallery: Path | None,
    keep: PathFilter,
    seen_dirs: set[tuple[int, int]],
    seen_files: set[str],
) -> Iterator[FoundFile | WalkProblem]:
    if len(os.fsencode(folder)) > MAX_PATH_BYTES:  # nothing under it fits the catalogue
        yield WalkProblem(folder, f"path longer than {MAX_PATH_BYTES} bytes; nothing under "
                          "it is catalogued (move it to a shorter path)")
        return
    try:
        st = folder.stat()
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            if folder.is_symlink() or any(p.is_symlink() for p in folder.parents):
                yield WalkProblem(folder, "symlink loop (folder already visited); skipped",
                                  lasting=True)
            return
    except OSError as exc:
        yield WalkProblem(folder, _why(exc, "cannot open folder"))
        return
    seen_dirs.add(key)
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield WalkProblem(folder, _why(exc, "cannot list folder"))
        return
    subfolders: list[Path] = []
    for entry in entries:
        path = folder / entry.name
        try:
            if entry.is_dir():
                if gallery == folder and entry.name == GALLERY_THUMBS:
                    continue  # a gallery's thumbnails are not photos
                if keep.wants_folder(path):
                    subfolders.append(path)
                continue
            if not entry.is_file() and not _special_photo(entry):
                if entry.is_symlink() and not os.path.exists(path):
                    yield WalkProblem(path, "broken symlink or symlink loop; skipped",
                                      lasting=True)
                continue
            if not keep.wants_file(path) or is_companion(entry.name):
                continue
            if str(path) in seen_files:
                continue
            seen_files.add(str(path))
            info = entry.stat()
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                yield WalkProblem(path, "symlink loop; skipped", lasting=True)
            else:
                yield WalkProblem(path, _why(exc, "cannot stat"))
            continue
        unstorable = _unstorable_name(path)
        if unstorable:
            yield WalkProblem(path, unstorable)
            continue
        yield FoundFile(path, gallery, info.st_size, info.st_mtime)
    for sub in subfolders:
        yield from _walk(sub, sub if is_gallery(sub) else gallery, keep, seen_dirs, seen_files)


def _special_photo(entry: os.DirEntry[str]) -> bool:
    """A FIFO, socket or device named like a photo: listed, so that reading it (which
    never opens it) says what it is, once per run, instead of a photo left out unsaid."""
    if not looks_like_image_name(Path(entry.name)):
        return False
    try:
        mode = entry.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def _unstorable_name(path: Path) -> str | None:
    """Why the catalogue cannot hold this path, if it cannot. A name that is not UTF-8
    is fine: the catalogue keeps a path's bytes (``os.fsencode``)."""
    if len(os.fsencode(path)) > MAX_PATH_BYTES:
        return f"path longer than {MAX_PATH_BYTES} bytes; move the file to a shorter path"
    return None


def _why(exc: OSError, what: str) -> str:
    return f"{what}: {exc.strerror or exc}"

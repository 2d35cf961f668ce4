"""Cataloguing: discovered files → ``images`` + ``image_paths`` rows.

Each new or changed file is read on a worker thread (streaming sha256, the header: type
by content, size after EXIF orientation, EXIF; and the hash of its image data, metadata
left out); results are written in batches. A path whose size and mtime match the
catalogue is skipped without hashing. A path whose bytes changed but whose image data
did not (its tags were edited) keeps its image and faces (``new_metadata``).

Then the walked folders are compared with the catalogue: a catalogued path inside a
target folder that the walk did not find, and that does not exist, is marked missing
(the image and its faces stay until ``rbv prune``); one whose content is at another
path is a move (the old path is dropped). Nothing is marked under a target that could
not be walked, under a folder the walk could not enter, or under a target or a folder
inside it that looks unmounted (it is still there but holds no file at all: the mount
point of a disk that is not mounted, or a folder emptied by hand), nor under folders not
named on this run.

With a path map (``--path-map STORED=LOCAL``: this machine has the library under another
root) the walk and every file read happen at the local paths and the catalogue keeps and
compares the stored ones: a photo seen under another root is not catalogued twice, nor
is its stored path marked missing for not existing here.
"""

from __future__ import annotations

import errno
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg

from rbv.config import Settings
from rbv.errors import ImageUnreadable, printable
from rbv.jobs.reporting import Problem, Reporter, SilentReporter
from rbv.media.decode import probe_image
from rbv.media.discovery import (
    FoundFile,
    PathFilter,
    WalkProblem,
    discover,
    is_backup_or_sidecar,
    walk_root,
    walk_would_reach,
)
from rbv.media.hashing import digest_file
from rbv.media.image_data import image_data_hash
from rbv.media.path_map import PathMap
from rbv.media.sniff import HEAD_BYTES, looks_like_image_name, sniff_format
from rbv.regular_files import read_regular
from rbv.store import Database
from rbv.store.queries.images import (
    CataloguedFile,
    known_paths,
    record_unreadable,
    save_catalogued,
    set_image_hashes,
)
from rbv.store.queries.missing import (
    failures_under,
    forget_failures,
    mark_missing,
    present_paths_under,
    settle_moves,
    unmark_missing,
)
from rbv.words import counted

_BATCH = 256


@dataclass
class CatalogueSummary:
    """What a catalogue pass found and did."""

    files: int = 0  # regular files considered
    unchanged: int = 0  # skipped: same size and mtime as catalogued
    new_images: int = 0  # new content catalogued
    new_metadata: int = 0  # new bytes, same image data: the photo and its faces kept
    aliases: int = 0  # new paths of content already catalogued
    not_images: int = 0  # files that are not images by content nor by name (ignored)
    failed: int = 0  # image files that could not be catalogued
    moved: int = 0  # old paths dropped: the content is at another path
    missing: int = 0  # paths newly marked missing (no other path shows the content)
    returned: int = 0  # paths marked missing before, found again
    problems: list[Problem] = field(default_factory=list)  # failed files + walk problems
    notes: list[str] = field(default_factory=list)  # said, not failures (an empty target)
    # paths whose image data changed: the old content's faces wait for the new ones
    new_image_data: int = 0

    def as_dict(self) -> dict[str, object]:
        return {"files": self.files, "unchanged": self.unchanged,
                "new_images": self.new_images, "new_metadata": self.new_metadata,
                "aliases": self.aliases,
                "not_images": self.not_images, "failed": self.failed,
                "moved": self.moved, "missing": self.missing, "returned": self.returned,
                "problems": [str(p) for p in self.problems], "notes": self.notes,
                "new_image_data": self.new_image_data}


@dataclass(frozen=True)
class _Unreadable:
    found: FoundFile
    reason: str


@dataclass(frozen=True)
class _NotImage:
    found: FoundFile


_ReadResult = CataloguedFile | _Unreadable | _NotImage


def _not_an_image(found: FoundFile) -> bool:
    """Whether :func:`read_file` would ignore the file (neither its content nor its name
    is an image's), from its first bytes alone: what a dry run can say of it."""
    if looks_like_image_name(found.path):
        return False
    try:
        head = read_regular(found.path, HEAD_BYTES)
    except OSError:
        return False  # the real run reports it
    return not head or sniff_format(head) is None


def read_file(found: FoundFile, max_pixels: int) -> _ReadResult:
    """Hash and probe one file; never raises for a bad file."""
    path = found.path
    try:
        digest = digest_file(path)
    except OSError as exc:
        return _Unreadable(found, f"cannot read: {exc.strerror or exc}")

    def entry(fmt: str | None, **fields: Any) -> CataloguedFile:
        return CataloguedFile(
            path=str(path), gallery=None if found.gallery is None else str(found.gallery),
            size=digest.size, mtime=found.mtime, sha256=digest.sha256, format=fmt, **fields)

    if digest.size == 0:
        if not looks_like_image_name(path):
            return _NotImage(found)
        return entry(None, error="empty file (0 bytes)")
    fmt = sniff_format(digest.head)
    if fmt is None:
        if not looks_like_image_name(path):
            return _NotImage(found)
        return entry(None, error="not an image: its content is not JPEG, PNG, WebP, TIFF, "
                     f"BMP, GIF or HEIF despite the name {path.suffix!r}")
    try:
        probe = probe_image(path, fmt, max_pixels)
    except ImageUnreadable as exc:
        return entry(fmt, error=str(exc))
    except OSError as exc:
        return _Unreadable(found, f"cannot read: {exc.strerror or exc}")
    try:
        image_hash = image_data_hash(path, fmt, max_pixels)
    except ImageUnreadable:
        image_hash = None  # odd structure that Pillow still reads: identity by sha256 alone
    except OSError as exc:
        return _Unreadable(found, f"cannot read: {exc.strerror or exc}")
    e = probe.exif
    return entry(
        fmt, width=probe.width, height=probe.height,
        taken_at=e.taken_at, gps=(e.gps_lat, e.gps_lon, e.gps_alt),
        camera=(e.camera_make, e.camera_model), orientation=e.orientation, exif=e.raw or None,
        image_hash=image_hash,
    )


def _image_hash_of(path: str, fmt: str | None, max_pixels: int) -> str | None:
    """The image-data hash of a catalogued file (None when it cannot be read now)."""
    if fmt is None:
        return None
    try:
        return image_data_hash(Path(path), fmt, max_pixels)
    except (ImageUnreadable, OSError):
        return None


def run_catalogue(
    db: Database,
    settings: Settings,
    targets: Sequence[Path],
    path_filter: PathFilter | None = None,
    *,
    dry_run: bool = False,
    reporter: Reporter | None = None,
) -> CatalogueSummary:
    """Discover files under ``targets`` and catalogue the new or changed ones.

    With ``dry_run`` nothing is read beyond ``stat`` and each new file's first bytes,
    and nothing is written: the summary's ``not_images`` counts the files the real run
    ignores (neither an image by content nor by name), ``new_images`` the files it
    would read. Paths are catalogued as ``settings.path_map`` names them.
    """
    stored = settings.path_map.to_stored
    report = reporter or SilentReporter()
    summary = CatalogueSummary()
    found: list[FoundFile] = []
    unwalked: list[str] = []
    for item in discover(targets, path_filter):
        if isinstance(item, WalkProblem):
            if not item.lasting or os.path.isdir(item.path):
                unwalked.append(str(item.path))  # nothing under it is marked missing
            if item.lasting:  # said, not retried: the next run would meet it again
                summary.notes.append(f"{printable(str(item.path))}: {item.reason}")
                continue
            problem = Problem(str(item.path), item.reason)
            summary.problems.append(problem)
            report.problem(problem)
        else:
            found.append(item)
    summary.files = len(found)
    alias_images: Counter[int] = Counter()  # image id -> new paths of it this run
    report.stage("catalogue", len(found))
    with db.connect(autocommit=True) as conn, ThreadPoolExecutor(
        max(1, settings.concurrency), thread_name_prefix="rbv-read"
    ) as pool:
        for batch in _chunks(found, _BATCH):
            known = known_paths(conn, [stored(str(f.path)) for f in batch])
            todo = []
            unhashed: list[tuple[int, str, str | None]] = []
            for f in batch:
                k = known.get(stored(str(f.path)))
                if k is not None and k.missing:
                    summary.returned += 1
                if k is not None and k.unchanged(f.size, f.mtime):
                    summary.unchanged += 1
                    if k.image_hash is None:  # catalogued before rbv kept one: once
                        unhashed.append((k.image_id, str(f.path), k.format))
                else:
                    todo.append(f)
            report.advance(len(batch) - len(todo))
            if dry_run:
                ignored = sum(map(_not_an_image, todo))
                summary.not_images += ignored
                summary.new_images += len(todo) - ignored
                report.advance(len(todo))
                continue
            unmark_missing(conn, [p for f in batch
                                  if (k := known.get(p := stored(str(f.path)))) and k.missing])
            results = list(pool.map(lambda f: read_file(f, settings.max_image_pixels), todo))
            alias_images.update(_store(conn, results, summary, report, settings.path_map))
            if unhashed:
                hashes = pool.map(lambda u: _image_hash_of(u[1], u[2], settings.max_image_pixels),
                                  unhashed)
                set_image_hashes(conn, [(u[0], h) for u, h in zip(unhashed, hashes, strict=True)
                                        if h is not None])
        if not dry_run:
            with conn.transaction():
                _notice_gone(conn, targets, path_filter, {str(f.path) for f in found},
                             unwalked, summary, alias_images, settings.path_map)
    return summary


def _notice_gone(conn: psycopg.Connection, targets: Sequence[Path],
                 path_filter: PathFilter | None, found: set[str], unwalked: list[str],
                 summary: CatalogueSummary, alias_images: Counter[int], path_map: PathMap
                 ) -> None:
    """Mark missing the catalogued files of the walked target folders that are gone;
    drop the old paths of moved files (and count them as moves, not aliases). Paths are
    compared where this machine has them (``path_map``'s local paths)."""
    marked: set[int] = set()
    for target in targets:
        root = walk_root(target)
        prefix = str(root).rstrip("/") + "/"
        if not root.is_dir() or _inside(str(root), unwalked):
            continue  # a file, or a folder not walked
        known = [(i, path_map.to_local(p))
                 for i, p in present_paths_under(conn, path_map.to_stored(str(root)))]
        absent = [(i, p) for i, p in known if p not in found and not _inside(p, unwalked)
                  and walk_would_reach(Path(p), root, path_filter)]
        if absent and not any(p.startswith(prefix) for p in found) \
                and not any(p.startswith(prefix) for p in unwalked):
            summary.notes.append(
                f"{printable(str(root))} holds no files (is the disk mounted?); none of its "
                f"{len(known):,} catalogued paths was marked missing")
            continue
        absent = _outside_emptied_folders(absent, root, found, summary)
        marked.update(mark_missing(conn, [i for i, p in absent if _gone(p)]))
        # Backups and sidecars an earlier rbv catalogued as photos (they doubled the
        # library after `export-xmp --write-into-files`) are not photos.
        stray = [i for i, p in known if p not in found and not _inside(p, unwalked)
                 and is_backup_or_sidecar(os.path.basename(p))]
        if stray:
            marked.update(mark_missing(conn, stray))
            summary.notes.append(
                f"{counted(len(stray), 'catalogued backup or sidecar file')} under "
                f"{printable(str(root))} "
                + ("is not a photo: marked missing" if len(stray) == 1
                   else "are not photos: marked missing"))
        failed = map(path_map.to_local, failures_under(conn, path_map.to_stored(str(root))))
        forget_failures(conn, [path_map.to_stored(p) for p in failed
                               if p not in found and not _inside(p, unwalked)
                               and walk_would_reach(Path(p), root, path_filter) and _gone(p)])
    moved = settle_moves(conn)
    summary.moved = len(moved)
    summary.missing = len(marked - {path_id for path_id, _ in moved})
    for _, image_id in moved:
        if alias_images[image_id] > 0:  # its new path was counted as an alias
            alias_images[image_id] -= 1
            summary.aliases -= 1


def _outside_emptied_folders(absent: list[tuple[int, str]], root: Path, found: set[str],
                             summary: CatalogueSummary) -> list[tuple[int, str]]:
    """The absent paths that are not inside a folder below ``root`` that is still there
    but in which the walk found no file: an unmounted disk's mount point (or a folder
    emptied by hand) is not a deletion of the photos it held. Each such folder is named
    in a note. A folder that is gone altogether was deleted: its photos are missing."""
    if not absent:
        return absent
    occupied: set[str] = set()  # every folder below root holding a found file
    top = str(root)
    for p in found:
        folder = os.path.dirname(p)
        while folder not in occupied and len(folder) > len(top) and folder.startswith(top):
            occupied.add(folder)
            folder = os.path.dirname(folder)
    kept: list[tuple[int, str]] = []
    held: Counter[str] = Counter()
    for path_id, p in absent:
        emptied = _highest_empty_folder(p, top, occupied)
        if emptied is not None and os.path.isdir(emptied):
            held[emptied] += 1
        else:
            kept.append((path_id, p))
    for folder, count in sorted(held.items()):
        summary.notes.append(
            f"{printable(folder)} holds no files (is the disk mounted?); none of its "
            f"{count:,} catalogued paths was marked missing")
    return kept


def _highest_empty_folder(path: str, top: str, occupied: set[str]) -> str | None:
    """The outermost folder between ``top`` (excluded) and ``path`` with no found file."""
    relative = os.path.relpath(os.path.dirname(path), top)
    if relative == ".":
        return None  # directly in the target: the target's own check covers it
    folder = top
    for part in relative.split(os.sep):
        folder = os.path.join(folder, part)
        if folder not in occupied:
            return folder
    return None


def _inside(path: str, folders: list[str]) -> bool:
    """``path`` is one of ``folders`` or inside one."""
    return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)


def _gone(path: str) -> bool:
    """The file does not exist, or is a symlink loop now (any other error, such as no
    permission, is not proof)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return False


def _store(conn: psycopg.Connection, results: list[_ReadResult], summary: CatalogueSummary,
           report: Reporter, path_map: PathMap) -> list[int]:
    """Write one batch under the stored names of its paths; returns the image ids that
    gained a new path (aliases)."""
    files = [r for r in results if isinstance(r, CataloguedFile)]
    stored = path_map.to_stored
    aliases: list[int] = []
    # One transaction, its statements pipelined (where the client library can): only
    # those whose rows the next step reads wait for the server (a new file: 1 of 5).
    pipelined = conn.pipeline() if psycopg.Pipeline.is_supported() else nullcontext()
    with conn.transaction(), pipelined:
        saved = save_catalogued(conn, [
            replace(f, path=stored(f.path), gallery=f.gallery and stored(f.gallery))
            for f in files])
        for r in results:
            if isinstance(r, _Unreadable):
                record_unreadable(conn, stored(str(r.found.path)), r.reason, r.found.size,
                                  r.found.mtime)
    for f, s in zip(files, saved, strict=True):
        summary.new_image_data += s.superseded
        if f.error is not None:
            summary.failed += 1
            problem = Problem(f.path, f.error)
            summary.problems.append(problem)
            report.problem(problem)
            report.advance(errors=1)
        elif s.new_image:
            summary.new_images += 1
            report.advance()
        elif s.new_metadata:
            summary.new_metadata += 1
            report.advance()
        elif s.same_path:
            summary.unchanged += 1  # touched (new mtime), same content
            report.advance()
        else:
            summary.aliases += 1
            aliases.append(s.image_id)
            report.advance()
    for r in results:
        if isinstance(r, _Unreadable):
            summary.failed += 1
            problem = Problem(str(r.found.path), r.reason)
            summary.problems.append(problem)
            report.problem(problem)
            report.advance(errors=1)
        elif isinstance(r, _NotImage):
            summary.not_images += 1
            report.advance()
    return aliases


def _chunks(items: list[FoundFile], size: int) -> Iterator[list[FoundFile]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]

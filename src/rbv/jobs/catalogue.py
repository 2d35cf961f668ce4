"""Cataloguing: discovered files → ``images`` + ``image_paths`` rows.

Each new or changed file is read once on a worker thread (streaming sha256 and the
header: type by content, size after EXIF orientation, EXIF); results are written in
batches. A path whose size and mtime match the catalogue is skipped without hashing.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from rbv.config import Settings
from rbv.errors import ImageUnreadable
from rbv.jobs.reporting import Problem, Reporter, SilentReporter
from rbv.media.decode import probe_image
from rbv.media.discovery import FoundFile, PathFilter, WalkProblem, discover
from rbv.media.hashing import digest_file
from rbv.media.sniff import looks_like_image_name, sniff_format
from rbv.store import Database
from rbv.store.images import CataloguedFile, known_paths, record_unreadable, save_catalogued

_BATCH = 256


@dataclass
class CatalogueSummary:
    """What a catalogue pass found and did."""

    files: int = 0  # regular files considered
    unchanged: int = 0  # skipped: same size and mtime as catalogued
    new_images: int = 0  # new content catalogued
    aliases: int = 0  # new paths of content already catalogued
    not_images: int = 0  # files that are not images by content nor by name (ignored)
    failed: int = 0  # image files that could not be catalogued
    problems: list[Problem] = field(default_factory=list)  # failed files + walk problems

    def as_dict(self) -> dict[str, object]:
        return {"files": self.files, "unchanged": self.unchanged,
                "new_images": self.new_images, "aliases": self.aliases,
                "not_images": self.not_images, "failed": self.failed,
                "problems": [str(p) for p in self.problems]}


@dataclass(frozen=True)
class _Unreadable:
    found: FoundFile
    reason: str


@dataclass(frozen=True)
class _NotImage:
    found: FoundFile


_ReadResult = CataloguedFile | _Unreadable | _NotImage


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
    e = probe.exif
    return entry(
        fmt, width=probe.width, height=probe.height,
        taken_at=e.taken_at, gps=(e.gps_lat, e.gps_lon, e.gps_alt),
        camera=(e.camera_make, e.camera_model), orientation=e.orientation, exif=e.raw or None,
    )


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

    With ``dry_run`` nothing is read beyond ``stat`` and nothing is written: the
    summary's ``new_images`` counts the files that would be read.
    """
    report = reporter or SilentReporter()
    summary = CatalogueSummary()
    found: list[FoundFile] = []
    for item in discover(targets, path_filter):
        if isinstance(item, WalkProblem):
            problem = Problem(str(item.path), item.reason)
            summary.problems.append(problem)
            report.problem(problem)
        else:
            found.append(item)
    summary.files = len(found)
    report.stage("catalogue", len(found))
    with db.connect(autocommit=True) as conn, ThreadPoolExecutor(
        max(1, settings.concurrency), thread_name_prefix="rbv-read"
    ) as pool:
        for batch in _chunks(found, _BATCH):
            known = known_paths(conn, [str(f.path) for f in batch])
            todo = []
            for f in batch:
                k = known.get(str(f.path))
                if k is not None and k.unchanged(f.size, f.mtime):
                    summary.unchanged += 1
                else:
                    todo.append(f)
            report.advance(len(batch) - len(todo))
            if dry_run:
                summary.new_images += len(todo)
                report.advance(len(todo))
                continue
            results = list(pool.map(lambda f: read_file(f, settings.max_image_pixels), todo))
            _store(conn, results, summary, report)
    return summary


def _store(conn: psycopg.Connection, results: list[_ReadResult], summary: CatalogueSummary,
           report: Reporter) -> None:
    files = [r for r in results if isinstance(r, CataloguedFile)]
    with conn.transaction():
        saved = save_catalogued(conn, files)
        for r in results:
            if isinstance(r, _Unreadable):
                record_unreadable(conn, str(r.found.path), r.reason, r.found.size, r.found.mtime)
    for f, s in zip(files, saved, strict=True):
        if f.error is not None:
            summary.failed += 1
            problem = Problem(f.path, f.error)
            summary.problems.append(problem)
            report.problem(problem)
            report.advance(errors=1)
        elif s.new_image:
            summary.new_images += 1
            report.advance()
        else:
            summary.aliases += 1
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


def _chunks(items: list[FoundFile], size: int) -> Iterator[list[FoundFile]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]

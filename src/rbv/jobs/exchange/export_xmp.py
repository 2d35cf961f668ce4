"""``export-xmp``: rbv's named faces as MWG face regions, in XMP sidecars (or in the
photos themselves when asked), merged into what is there and never clobbering it."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path, PurePath

import psycopg

from rbv.errors import ConfigError, Remedy
from rbv.formats.atomic import Digest, remove_stale_temps, write_atomically
from rbv.formats.lease import OpenElsewhere
from rbv.formats.photo_backup import (
    backup_of,
    existing_backup,
    photo_target,
    rewrite_photo,
    write_backup,
)
from rbv.formats.regions import Region, from_box, plan_regions
from rbv.formats.replace_if_unchanged import ChangedUnderneath, Seen, replace_unchanged
from rbv.formats.xmp import (
    WRITABLE_FORMATS,
    XmpError,
    apply_plan,
    dims_match,
    pixel_regions,
    read_packet,
    sidecar_for,
    verify_photo,
)
from rbv.jobs.exchange.photo_write_checks import check_photo
from rbv.jobs.recording import recorded_run
from rbv.jobs.reporting import Problem, Reporter, SilentReporter
from rbv.media.orientation import measured_on_stored, turn_box
from rbv.store import Database
from rbv.store.queries.images import KnownPath, image_paths_of, known_paths
from rbv.store.queries.originals import catalogued_content, record_original, recorded_original
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.queries.regions import PhotoRow, named_faces, scanned_photos
from rbv.words import counted


@dataclass(frozen=True)
class ExportXmpOptions:
    out: Path | None = None  # mirror the photos' tree under this folder
    roots: tuple[Path, ...] = ()  # only photos under these folders (all when empty)
    into_files: bool = False  # write into photos exiv2 can write (a backup is kept)
    dry_run: bool = False


_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
CHANGED_WHILE_EXPORTING = "changed while exporting; not written"
OPEN_ELSEWHERE = "open in another program (close it first); not written"
EXPORT_AGAIN = (Remedy("export_xmp", {}, "export again"),)


@dataclass
class XmpFile:
    """What happened to one photo's regions."""

    photo: str
    target: str  # the sidecar or photo written (or that would be)
    action: str  # created | updated | unchanged | skipped (said in notes)
    added: int = 0
    named: int = 0
    unchanged: int = 0
    conflicts: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what else was found, and done
    into: bool = False  # the target is the photo itself (--write-into-files)
    backup_made: bool = False  # its NAME_original was made by this run (would be)

    @property
    def written(self) -> bool:
        return self.action in ("created", "updated")


@dataclass
class ExportXmpReport:
    pack: str
    dry_run: bool
    files: list[XmpFile] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    temps_removed: list[str] = field(default_factory=list)  # left by killed runs

    def count(self, action: str) -> int:
        return sum(f.action == action for f in self.files)

    @property
    def conflicts(self) -> int:
        return sum(len(f.conflicts) for f in self.files)

    def as_dict(self) -> dict[str, object]:
        return {"pack": self.pack, "dry_run": self.dry_run,
                "created": self.count("created"), "updated": self.count("updated"),
                "photos_rewritten": sum(f.into and f.written for f in self.files),
                "backups_made": sum(f.backup_made for f in self.files),
                "unchanged": self.count("unchanged"), "skipped": self.count("skipped"),
                "regions_added": sum(f.added for f in self.files),
                "regions_named": sum(f.named for f in self.files),
                "conflicts": self.conflicts, "failed": len(self.problems),
                "files": [asdict(f) for f in self.files],
                "problems": [{"path": p.path, "reason": p.reason} for p in self.problems],
                "temps_removed": self.temps_removed}


def mirrored(photo: str, roots: Sequence[str], out: Path) -> Path:
    """Where ``photo``'s sidecar goes under ``out``: its path below the root it was
    selected by (or below the file system's root), which may never leave ``out``."""
    rel = next((photo[len(r):].lstrip("/") for r in roots if path_under(photo, r)), None)
    parts = PurePath(rel if rel is not None else photo).parts
    parts = tuple(p for p in parts if p not in ("/", "", ".") and not p.endswith(":\\"))
    if not parts or any(p == ".." for p in parts):
        raise XmpError(f"{photo}: no safe place for its sidecar under {out}")
    return out.joinpath(*parts)


def path_under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def as_given_roots(roots: Sequence[Path]) -> list[str]:
    """Folders as rbv stores paths: absolute, symlinks kept (never resolved)."""
    return [os.path.abspath(os.path.expanduser(r)) for r in roots]


def export_xmp(db: Database, pack_name: str | None, options: ExportXmpOptions, *,
               sole_fallback: bool = False, reporter: Reporter | None = None) -> ExportXmpReport:
    """Write every named face of the pack as an MWG face region of the photo it is in."""
    reporter = reporter or SilentReporter()
    roots = as_given_roots(options.roots)
    for root in roots:
        if not os.path.isdir(root):
            raise ConfigError(f"{root} is not a folder; pass folders that hold indexed photos")
    if options.out is not None:
        _check_out(options.out)
    with db.connect() as conn:
        pack = find_pack(conn, pack_name, sole_fallback=sole_fallback)
        faces = named_faces(conn, pack.id)
        photos = scanned_photos(conn, pack.id)
        paths = image_paths_of(conn, list(faces))
    report = ExportXmpReport(pack.name, options.dry_run)
    work = [(image_id, path) for image_id in faces if image_id in photos
            for path in paths.get(image_id, []) if not roots or any(path_under(path, r)
                                                                    for r in roots)]
    reporter.stage("export-xmp", len(work))
    parameters = {"pack": pack.name, "roots": list(roots), "out": str(options.out or ""),
                  "into_files": options.into_files}
    with recorded_run(db, "export-xmp", parameters, dry_run=options.dry_run) as run, \
            db.connect() as conn:
        content = {i: Digest(*c) for i, c in catalogued_content(conn, list(faces)).items()}
        known = known_paths(conn, [path for _, path in work])
        conn.commit()
        writer = _Writer(conn, options.dry_run, report)
        for image_id, path in work:
            photo = photos[image_id]
            ours = [from_box(f.name, f.box, photo.width, photo.height)
                    for f in faces[image_id]]
            try:
                result = _export_one(path, photo, ours, roots, options, writer,
                                     content.get(image_id), known.get(path))
                report.files.append(result)
            except (ChangedUnderneath, OpenElsewhere) as exc:
                problem = Problem(str(exc.path), OPEN_ELSEWHERE if isinstance(
                    exc, OpenElsewhere) else CHANGED_WHILE_EXPORTING, EXPORT_AGAIN)
                report.problems.append(problem)
                reporter.problem(problem)
            except XmpError as exc:
                problem = Problem(path, str(exc).removeprefix(f"{path}: "), exc.remedies)
                report.problems.append(problem)
                reporter.problem(problem)
            reporter.advance(1, faces=len(ours), errors=0)
        run.counts = {"photos": len(work), "problems": len(report.problems)}
        if report.problems:
            run.status = "partial"
    return report


def _check_out(out: Path) -> None:
    """``--out`` must be a folder, or a path a folder can be made at: a file there (or
    above it) is one error, not one per photo."""
    there = Path(os.path.abspath(out))
    while not os.path.lexists(there) and there != there.parent:
        there = there.parent
    if not os.path.isdir(there):
        what = "is" if there == Path(os.path.abspath(out)) else f"is inside {there}, which is"
        raise ConfigError(f"{out} {what} not a folder; pass a folder for the sidecars",
                          setting="out")


class _Writer:
    """Writes sidecars and photos; clears the temporary files killed runs left in each
    folder it looks at (once per folder; a dry run clears nothing)."""

    def __init__(self, conn: psycopg.Connection, dry_run: bool,
                 report: ExportXmpReport) -> None:
        self.conn = conn
        self.dry_run = dry_run
        self.report = report
        self.cleared: set[Path] = set()

    def catalogued(self, path: str) -> KnownPath | None:
        """The catalogue's record of ``path`` (a symlink's target, say)."""
        found = known_paths(self.conn, [path]).get(path)
        self.conn.commit()
        return found

    def clear(self, folder: Path) -> None:
        if self.dry_run or folder in self.cleared:
            return
        self.cleared.add(folder)
        self.report.temps_removed += [str(p) for p in remove_stale_temps(folder)]

    def sidecar(self, target: Path, data: bytes, seen: Seen | None) -> None:
        """A sidecar that held someone's tags (read as ``seen``) is synced and replaces
        it only while it is unchanged; a new one holds only what the database can write
        again, and never takes the place of one another program made meanwhile."""
        target.parent.mkdir(parents=True, exist_ok=True)

        def write_new() -> None:
            try:
                write_atomically(target, data, durable=False, replace=False)
            except FileExistsError:
                raise ChangedUnderneath(target, "made by another program meanwhile") from None

        _written(target, write_new if seen is None
                 else lambda: replace_unchanged(target, data, seen))

    def photo(self, photo: Path, original: bytes, seen: Seen, data: bytes,
              indexed: Digest | None) -> bool:
        """Rewrite ``photo`` (read as ``original``, from the file ``seen``) after making
        sure its backup is a complete copy of an original; whether that backup was made
        now. When the photo changed meanwhile, a backup made for this rewrite goes too:
        it is of no version the user still has; so does one made for a photo open in
        another program (the next run makes it again)."""
        target = photo_target(photo)
        backup = backup_of(target)
        trusted = {Digest.of(original), *([indexed] if indexed else [])}
        recorded = recorded_original(self.conn, backup)
        self.conn.commit()
        if recorded is not None:
            trusted.add(Digest(*recorded))
        made = False
        if existing_backup(target, trusted) is None:
            mine = Digest.of(original)
            record_original(self.conn, backup, mine.size, mine.sha256)
            self.conn.commit()  # before the file: a backup is never there unrecorded
            _written(photo, lambda: write_backup(target, original))
            made = True
        try:
            _written(photo, lambda: rewrite_photo(target, data, seen))
        except (ChangedUnderneath, OpenElsewhere):
            if made:
                with contextlib.suppress(FileNotFoundError):
                    backup.unlink()
            raise
        return made


def _written(path: Path, write: Callable[[], None]) -> None:
    """Run ``write``: a full disk ends the run (every later file would fail too), any
    other failure is this file's problem."""
    try:
        write()
    except OSError as exc:
        if exc.errno in _DISK_FULL:
            raise OSError(exc.errno, exc.strerror, str(exc.filename or path)) from None
        raise XmpError(f"{path}: cannot write ({exc.strerror or exc})") from None


def _on_stored(region: Region, orientation: int, shown: tuple[int, int]) -> Region:
    """``region`` of a photo shown as ``shown``, measured on its stored pixels instead."""
    box = turn_box(region.box(*shown), None, orientation, 1, shown)[0]
    return replace(from_box(region.name, box, shown[1], shown[0]), kind=region.kind)


def _export_one(path: str, row: PhotoRow, ours: list[Region], roots: Sequence[str],
                options: ExportXmpOptions, writer: _Writer, indexed: Digest | None,
                known: KnownPath | None) -> XmpFile:
    photo = Path(path)
    size = (row.width, row.height)
    into = options.into_files and (row.format or "").upper() in WRITABLE_FORMATS
    if into:
        target = photo
    elif options.out is not None:
        target = sidecar_for(mirrored(path, roots, options.out))
    else:
        target = sidecar_for(photo)
    refused = check_photo(photo, known, target, into=into, catalogued=writer.catalogued)
    if refused is not None:
        if refused.failure:
            raise XmpError(f"{path}: {refused.reason}", remedies=refused.remedies)
        return XmpFile(path, str(target), "skipped", notes=[refused.reason])
    writer.clear(photo_target(target).parent if into else target.parent)
    packet = read_packet(target, sidecar=not into)
    on_stored = measured_on_stored(row.orientation, packet.regions.dims, size)
    if on_stored:
        # The file's regions were measured on the stored pixels of this sideways photo
        # (as Immich writes them): rbv's are compared and written the same way, so the
        # file stays in one frame and nothing already there moves.
        ours = [_on_stored(r, row.orientation, size) for r in ours]
        size = (size[1], size[0])
    plan = plan_regions(packet.regions.mwg, ours)
    notes = [f"its regions are measured on the stored pixels ({size[0]}x{size[1]}, the "
             "photo turned sideways): rbv's are written the same way"
             ] if on_stored and plan.changes else []
    result = XmpFile(path, str(target), "unchanged", len(plan.add), len(plan.name),
                     plan.unchanged, [asdict(c) for c in plan.conflicts],
                     [*packet.regions.malformed, *notes])
    dims = packet.regions.dims
    if dims is not None and not dims_match(dims, size):
        # Another program's regions were drawn on a photo of another size: rbv's are
        # written for the real one, and the file says so (docs/interoperability.md).
        pixels = pixel_regions(packet.keys)
        result.notes.append(
            f"AppliedToDimensions {dims[0]}x{dims[1]} does not match the photo "
            f"({size[0]}x{size[1]}): " + (
                "left as it is (nothing to add)" if plan.changes == 0 else
                f"set to {size[0]}x{size[1]}; normalised regions kept as they are"
                + (f", {counted(pixels, 'region')} in pixels rescaled to it" if pixels
                   else "")))
    if plan.changes == 0:
        return result  # nothing new: the file is left byte for byte as it is
    result.action = "created" if packet.data is None else "updated"
    result.into = into
    if options.dry_run:
        result.backup_made = into and not os.path.lexists(backup_of(photo_target(target)))
        return result
    data = apply_plan(packet, plan, size, target)
    if into:
        assert packet.data is not None and packet.seen is not None  # else read_packet raised
        verify_photo(data, target)
        result.backup_made = writer.photo(target, packet.data, packet.seen, data, indexed)
    else:
        writer.sidecar(target, data, packet.seen)
    return result

"""``import-xmp``: names from face regions that other programs wrote (MWG, as digiKam,
Lightroom, Picasa and rbv write them; Microsoft Photo's MP regions), in photos and
their sidecars, onto rbv's detected faces.

Each named face region is matched to the detected face it overlaps most (IoU), and that
face is placed by hand (manual) in the pack's person of that name, created when there is
none — the rules of ``import-folders``: two faces of one photo are never one person, a
face a user rejected from a person never returns to it, and a face a user placed in a
person of another name stays there (reported as a conflict).

Regions are normalised to the photo as shown (after its EXIF orientation), except MWG
regions of a photo turned sideways whose ``AppliedToDimensions`` is the size as stored
(Immich and others measure them on the stored pixels): those are turned with the
picture. A region whose name another region of the photo (another format, file or
program marking the same face) already matched to a face is counted as ``repeated``,
not as unmatched: the name did land.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import psycopg

from rbv.errors import ConfigError
from rbv.formats.regions import Region, from_box, match_regions, region_iou, same_name
from rbv.formats.xmp import RegionsOf, XmpError, XmpUnreadable, read_regions, sidecars_of
from rbv.jobs.exchange.export_xmp import as_given_roots, mirrored, path_under
from rbv.jobs.recording import recorded_run
from rbv.jobs.reporting import Problem, Reporter, SilentReporter
from rbv.media.orientation import measured_on_stored, turn_box
from rbv.store import Database
from rbv.store.queries.assignments import delete_empty_persons
from rbv.store.queries.contradictions import refused_placements
from rbv.store.queries.images import scanned_paths
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.queries.packs import PackRow
from rbv.store.queries.persons import (
    new_person,
    person_named,
    place_faces,
    set_name,
    unfit_text,
)
from rbv.store.queries.regions import FaceRow, PhotoRow, faces_of_images, scanned_photos
from rbv.store.server.locks import person_lock

DEFAULT_MIN_IOU = 0.4
"""Regions drawn by people are looser than a detector's box; 0.4 still never pairs a
region with a neighbouring face."""


@dataclass(frozen=True)
class ImportXmpOptions:
    roots: tuple[Path, ...] = ()  # only photos under these folders (all when empty)
    sidecars_from: Path | None = None  # sidecars mirrored under this folder (export --out)
    min_iou: float = DEFAULT_MIN_IOU
    dry_run: bool = False


@dataclass
class ImportXmpReport:
    pack: str
    dry_run: bool
    photos: int = 0  # photos looked at
    regions: int = 0  # named face regions found
    matched: int = 0  # regions matched to a detected face
    repeated: int = 0  # regions whose name another region of the photo matched to a face
    assigned: int = 0  # faces that changed person
    persons_created: list[str] = field(default_factory=list)
    unmatched: list[dict[str, str]] = field(default_factory=list)
    conflicts: list[dict[str, str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["problems"] = [{"path": p.path, "reason": p.reason} for p in self.problems]
        return d


def import_xmp(db: Database, pack_name: str | None, options: ImportXmpOptions, *,
               sole_fallback: bool = False, reporter: Reporter | None = None) -> ImportXmpReport:
    """Name rbv's faces after the face regions of the photos' XMP (see the module)."""
    reporter = reporter or SilentReporter()
    roots = as_given_roots(options.roots)
    for root in roots:
        if not Path(root).is_dir():
            raise ConfigError(f"{root} is not a folder; pass folders that hold indexed photos")
    with db.connect() as conn:
        pack = find_pack(conn, pack_name, sole_fallback=sole_fallback)
    report = ImportXmpReport(pack.name, options.dry_run)
    parameters = {"pack": pack.name, "roots": roots, "min_iou": options.min_iou,
                  "sidecars_from": str(options.sidecars_from or "")}
    with person_lock(db, pack.id, pack.name), \
            recorded_run(db, "import-xmp", parameters, dry_run=options.dry_run) as run, \
            db.connect() as conn:
        photos = scanned_photos(conn, pack.id)
        by_image: dict[int, list[str]] = {}
        for image_id, path in scanned_paths(conn, pack.id):
            if image_id in photos and (not roots or any(path_under(path, r) for r in roots)):
                by_image.setdefault(image_id, []).append(path)
        report.photos = len(by_image)
        reporter.stage("read xmp", len(by_image))
        found: dict[int, list[tuple[str, Region]]] = {}
        for image_id, paths in sorted(by_image.items()):
            regions = _regions_of(paths, photos[image_id], roots, options.sidecars_from,
                                  report, reporter)
            if regions:
                found[image_id] = regions
            reporter.advance(1, faces=len(regions))
        report.regions = sum(len(r) for r in found.values())
        faces = faces_of_images(conn, pack.id, list(found))
        persons: dict[str, uuid.UUID | None] = {}
        for image_id, regions in found.items():
            _name_faces(conn, pack, photos[image_id], regions, faces.get(image_id, []),
                        persons, options, report)
        if options.dry_run:
            conn.rollback()
        else:
            delete_empty_persons(conn, pack)
            conn.commit()
        run.counts = {"regions": report.regions, "matched": report.matched,
                      "assigned": report.assigned, "created": len(report.persons_created),
                      "conflicts": len(report.conflicts)}
        run.status = "partial" if report.problems else "ok"
    return report


def _regions_of(paths: Sequence[str], photo_row: PhotoRow, roots: Sequence[str],
                mirror: Path | None, report: ImportXmpReport,
                reporter: Reporter) -> list[tuple[str, Region]]:
    """Named face regions of a photo from all its paths and their sidecars, each face
    once (the same name over the same area in two files is one region), in the frame of
    the photo as shown."""
    out: list[tuple[str, Region]] = []
    for path in paths:
        photo = Path(path)
        sources = [photo, *sidecars_of(photo)]
        if mirror is not None:
            with contextlib.suppress(XmpError):
                sources += sidecars_of(mirrored(path, roots, mirror))
        for source in sources:
            try:
                read = read_regions(source)
            except XmpError as exc:
                if source == photo and not isinstance(exc, XmpUnreadable):
                    continue  # a format exiv2 cannot read: its sidecars may still name faces
                _problem(report, reporter, str(source), str(exc).removeprefix(f"{source}: "))
                continue
            for reason in read.malformed:
                _problem(report, reporter, str(source), reason)
            for region in _as_shown(read, photo_row):
                if not (region.name and region.is_face):
                    continue
                if (problem := unfit_text(region.name)) is not None:  # as a typed name
                    _problem(report, reporter, str(source),
                             f"the name {region.name!r} {problem}; that region is left out")
                    continue
                if any(same_name(r.name, region.name) and region_iou(r, region) >= 0.5
                       for _, r in out):
                    continue
                out.append((path, region))
    return out


def _as_shown(read: RegionsOf, photo: PhotoRow) -> list[Region]:
    """The regions of ``read`` in the frame of the photo as shown: MWG regions measured
    on a sideways photo's stored pixels (``AppliedToDimensions`` = the stored size, not
    the shown one) turned with the picture."""
    shown = (photo.width, photo.height)
    stored = (photo.height, photo.width)
    if not measured_on_stored(photo.orientation, read.dims, shown):
        return read.all
    turned = [from_box(r.name, turn_box(r.box(*stored), None, 1, photo.orientation,
                                        stored)[0], *shown)
              for r in read.mwg]
    return [*(replace(t, kind=r.kind) for t, r in zip(turned, read.mwg, strict=True)),
            *read.mp]


def _problem(report: ImportXmpReport, reporter: Reporter, path: str, reason: str) -> None:
    problem = Problem(path, reason)
    report.problems.append(problem)
    reporter.problem(problem)


def _name_faces(conn: psycopg.Connection, pack: PackRow, photo: PhotoRow,
                regions: list[tuple[str, Region]], faces: list[FaceRow],
                persons: dict[str, uuid.UUID | None], options: ImportXmpOptions,
                report: ImportXmpReport) -> None:
    pairs = match_regions([r for _, r in regions], [f.box for f in faces], photo.width,
                          photo.height, options.min_iou)
    matched = {i for i, _, _ in pairs}
    landed = {(regions[i][1].name or "").strip().casefold() for i in matched}
    for i, (path, region) in enumerate(regions):
        if i in matched:
            continue
        if (region.name or "").strip().casefold() in landed:
            report.repeated += 1
        else:
            report.unmatched.append({"path": path, "name": region.name or ""})
    by_name: dict[str, tuple[int, int, float]] = {}
    for pair in pairs:  # best overlaps first: a name's first pair is its best
        key = (regions[pair[0]][1].name or "").strip().casefold()
        if key in by_name:
            report.conflicts.append({"path": regions[pair[0]][0], "name": key,
                                     "reason": "the name is on two faces of the photo"})
            continue
        by_name[key] = pair
    owner = {f.person_id: f.id for f in faces if f.person_id is not None}
    for i, j, _ in by_name.values():
        path, region = regions[i]
        name = (region.name or "").strip()
        face = faces[j]
        report.matched += 1
        if same_name(face.name, name):
            continue
        if face.assigned_by == "manual":  # in another person: the user's decision stands
            report.conflicts.append({"path": path, "name": name, "reason": (
                f"the face is {face.name!r} in rbv (by hand)" if face.name else
                f"the face is in person {face.person_id} in rbv (by hand)")})
            continue
        person = _person(conn, pack, name, persons, options.dry_run, report)
        if person is not None and owner.get(person, face.id) != face.id:
            report.conflicts.append({"path": path, "name": name,
                                     "reason": "another face of the photo is that person"})
            continue
        if person is None:  # dry run, person to be created
            report.assigned += 1
            continue
        refused = refused_placements(conn, [face.id], person).get(face.id)
        if refused is not None:  # an earlier decision keeps it out: it stands
            report.conflicts.append({"path": path, "name": name,
                                     "reason": refused.replace("it ", "the face ", 1)})
            continue
        changed = place_faces(conn, [face.id], person)
        owner[person] = face.id
        report.assigned += changed


def _person(conn: psycopg.Connection, pack: PackRow, name: str,
            persons: dict[str, uuid.UUID | None], dry_run: bool,
            report: ImportXmpReport) -> uuid.UUID | None:
    key = name.casefold()
    if key not in persons:
        person = person_named(conn, pack.id, name)
        if person is None:
            report.persons_created.append(name)
            if not dry_run:
                person = new_person(conn, pack.id, source="import")
                set_name(conn, person, name)
        persons[key] = person
    return persons[key]

"""The named face regions of a photo, read from it and its sidecars and put in the frame
of the photo as shown, each matched to the detected face it overlaps most: the claims
``import-xmp`` places (:class:`~rbv.jobs.exchange.import_xmp_report.Claim`).

Regions are normalised to the photo as shown (after its EXIF orientation), except MWG
regions of a photo turned sideways whose ``AppliedToDimensions`` is the size as stored
(Immich and others measure them on the stored pixels): those are turned with the
picture. A region whose name another region of the photo (another format, file or
program marking the same face) already matched to a face is counted as ``repeated``,
not as unmatched: the name did land.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from rbv.errors import ConfigError, Remedy
from rbv.formats.names import name_key, person_name
from rbv.formats.regions import Region, from_box, iou, match_regions, region_iou, same_name
from rbv.formats.xmp import (
    MAX_REGIONS_READ,
    RegionsOf,
    XmpError,
    XmpUnreadable,
    read_regions,
    sidecars_of,
)
from rbv.jobs.exchange.export_xmp import mirrored
from rbv.jobs.exchange.import_xmp_report import (
    Claim,
    ImportXmpOptions,
    ImportXmpReport,
    Unapplied,
    add_problem,
    conflict_entry,
    move,
)
from rbv.jobs.reporting import Reporter
from rbv.media.orientation import measured_on_stored, turn_box
from rbv.store.queries.regions import FaceRow, PhotoRow


def regions_of(paths: Sequence[str], photo_row: PhotoRow, roots: Sequence[str],
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
                read = read_regions(source, MAX_REGIONS_READ)
            except XmpError as exc:
                if source == photo and not isinstance(exc, XmpUnreadable):
                    continue  # a format exiv2 cannot read: its sidecars may still name faces
                add_problem(report, reporter, str(source), str(exc).removeprefix(f"{source}: "))
                continue
            for reason in read.malformed:
                add_problem(report, reporter, str(source), reason)
            if read.skipped:
                add_problem(report, reporter, str(source), f"{read.skipped:,} face regions past "
                            f"the first {MAX_REGIONS_READ:,} were skipped (rbv reads at most "
                            f"{MAX_REGIONS_READ:,} from a file)")
            for region in _as_shown(read, photo_row):
                if not (region.name and region.is_face):
                    continue
                try:  # the rule a typed name follows
                    named = person_name(region.name, "the name")
                except ConfigError as exc:
                    add_problem(report, reporter, str(source), f"{exc}; that region is left out")
                    continue
                if named.note:
                    report.cleaned.append({"path": str(source), "name": named.text,
                                           "note": named.note})
                region = replace(region, name=named.text)
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


def match_claims(photo: PhotoRow, regions: list[tuple[str, Region]], faces: list[FaceRow],
                 options: ImportXmpOptions, report: ImportXmpReport) -> list[Claim]:
    """The photo's named regions matched to its faces: one face per name (a name on
    two faces of the photo is a conflict), regions no face overlaps reported."""
    pairs = match_regions([r for _, r in regions], [f.box for f in faces], photo.width,
                          photo.height, options.min_iou)
    matched = {i for i, _, _ in pairs}
    landed = {name_key(regions[i][1].name or "") for i in matched}
    for i, (path, region) in enumerate(regions):
        if i in matched:
            continue
        if name_key(region.name or "") in landed:
            report.repeated += 1
        else:
            report.unmatched.append(_unmatched(path, region, photo, faces, options.min_iou))
    by_name: dict[str, tuple[int, int, float]] = {}
    for pair in pairs:  # best overlaps first: a name's first pair is its best
        key = name_key(regions[pair[0]][1].name or "")
        if key in by_name:
            name = (regions[pair[0]][1].name or "").strip()
            face, kept = faces[pair[1]].id, faces[by_name[key][1]].id
            report.conflicts.append(conflict_entry(
                regions[pair[0]][0], name, face,
                f"the name is on two faces of the photo; face {kept} (the closer match) "
                "got it",
                move(kept, None, f"takes face {kept} out"),
                move(face, name, f"gives it to face {face} instead")))
            continue
        by_name[key] = pair
    out = []
    for i, j, _ in by_name.values():
        path, region = regions[i]
        report.matched += 1
        out.append(Claim(path, (region.name or "").strip(), faces[j], photo))
    return out


def _unmatched(path: str, region: Region, photo: PhotoRow, faces: list[FaceRow],
               min_iou: float) -> Unapplied:
    """A region no face overlaps enough, and the remedy that names its face."""
    name = region.name or ""
    box = region.box(photo.width, photo.height)
    best = max((iou(box, f.box) for f in faces), default=0.0)
    if best >= 0.05:
        reason = (f"the nearest detected face overlaps its region by {best:.2f}, less "
                  f"than the {min_iou:g} asked for")
        remedy = Remedy("import_xmp", {"folder": str(Path(path).parent),
                                       "min_iou": max(0.05, int(best * 20) / 20)},
                        "matches it")
    else:
        reason = "no face was detected there"
        remedy = Remedy("faces_add", {"photo": path, "box": (box[0], box[1], box[2] - box[0],
                                                            box[3] - box[1]),
                                      "person": name}, "adds it by hand")
    return Unapplied(name, reason, (remedy,), path)

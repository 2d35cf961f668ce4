"""``import-xmp``: names from face regions that other programs wrote (MWG, as digiKam,
Lightroom, Picasa and rbv write them; Microsoft Photo's MP regions), in photos and
their sidecars, onto rbv's detected faces.

Each named face region is matched to the detected face it overlaps most (IoU), and that
face is placed by hand (manual) in the pack's person of that name, created when there is
none — the rules of ``import-folders``: two faces of one photo are never one person, a
face a user rejected from a person never returns to it, and a face a user placed in a
person of another name stays there (reported as a conflict).

The steps: :mod:`~rbv.jobs.exchange.import_xmp_claims` (regions read and matched to
faces), :mod:`~rbv.jobs.exchange.import_xmp_persons` (the persons, the faces placed).
"""

from __future__ import annotations

import uuid
from pathlib import Path

from rbv.errors import ConfigError
from rbv.formats.regions import Region
from rbv.jobs.exchange.export_xmp import as_given_roots, path_under
from rbv.jobs.exchange.import_xmp_claims import match_claims, regions_of
from rbv.jobs.exchange.import_xmp_persons import persons_of_names, place_claims
from rbv.jobs.exchange.import_xmp_report import Claim, ImportXmpOptions, ImportXmpReport
from rbv.jobs.persons.edit_log import logged_edit
from rbv.jobs.reporting import Reporter, SilentReporter
from rbv.store import Database
from rbv.store.queries.assignments import delete_empty_persons
from rbv.store.queries.images import scanned_paths
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.queries.person_lookup import short_id
from rbv.store.queries.persons import faces_of_persons
from rbv.store.queries.regions import faces_of_images, scanned_photos
from rbv.words import counted


def import_xmp(db: Database, pack_name: str | None, options: ImportXmpOptions, *,
               sole_fallback: bool = False, reporter: Reporter | None = None) -> ImportXmpReport:
    """Name rbv's faces after the face regions of the photos' XMP (see the module): one
    logged edit (``rbv persons undo`` takes the whole import back); a dry run is the
    run, rolled back."""
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
    with logged_edit(db, pack.id, "import-xmp", parameters,
                     dry_run=options.dry_run) as (conn, edit):
        photos = scanned_photos(conn, pack.id)
        by_image: dict[int, list[str]] = {}
        for image_id, path in scanned_paths(conn, pack.id):
            if image_id in photos and (not roots or any(path_under(path, r) for r in roots)):
                by_image.setdefault(image_id, []).append(path)
        report.photos = len(by_image)
        reporter.stage("read xmp", len(by_image))
        found: dict[int, list[tuple[str, Region]]] = {}
        for image_id, paths in sorted(by_image.items()):
            regions = regions_of(paths, photos[image_id], roots, options.sidecars_from,
                                 report, reporter)
            if regions:
                found[image_id] = regions
            reporter.advance(1, faces=len(regions))
        report.regions = sum(len(r) for r in found.values())
        faces = faces_of_images(conn, pack.id, list(found))
        claims: list[Claim] = []
        for image_id, regions in found.items():
            claims += match_claims(photos[image_id], regions, faces.get(image_id, []), options,
                                   report)
        persons = persons_of_names(conn, pack, claims, report)
        place_claims(conn, claims, persons, report)
        for n in report.persons_named:  # its faces now, those moved in included
            n["faces"] = str(len(faces_of_persons(conn, [uuid.UUID(n["person"])])))
        delete_empty_persons(conn, pack)
        edit.summary = _summary(report)
        edit.counts = {"regions": report.regions, "matched": report.matched,
                       "assigned": report.assigned, "created": len(report.persons_created),
                       "named": len(report.persons_named),
                       "conflicts": len(report.conflicts)}
        edit.status = "partial" if report.problems else "ok"
    report.edit_id = edit.logged_id
    return report


def _summary(report: ImportXmpReport) -> str:
    """What the import did, in words (its line in ``rbv persons history``)."""
    words = [f"{counted(report.assigned, 'face')} placed by hand"]
    if report.persons_named:
        words.append("named " + ", ".join(
            f"{short_id(uuid.UUID(n['person']))} {n['name']!r}"
            for n in report.persons_named[:5]) + (" …" if len(report.persons_named) > 5
                                                   else ""))
    if report.persons_created:
        words.append(counted(len(report.persons_created), "new person"))
    if report.conflicts:
        words.append(f"{len(report.conflicts)} left as earlier decisions keep them")
    return ", ".join(words)

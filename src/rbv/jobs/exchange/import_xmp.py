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
import shlex
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import psycopg

from rbv.errors import ConfigError
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
from rbv.jobs.exchange.export_xmp import as_given_roots, mirrored, path_under
from rbv.jobs.persons.edit_log import logged_edit
from rbv.jobs.reporting import Problem, Reporter, SilentReporter
from rbv.media.orientation import measured_on_stored, turn_box
from rbv.store import Database
from rbv.store.queries.assignments import delete_empty_persons
from rbv.store.queries.contradictions import refused_placements
from rbv.store.queries.images import scanned_paths
from rbv.store.queries.not_faces import marked_among
from rbv.store.queries.pack_lookup import find_pack
from rbv.store.queries.packs import PackRow
from rbv.store.queries.person_lookup import name_of, person_named, short_id
from rbv.store.queries.persons import (
    delete_person,
    faces_of_persons,
    is_hidden,
    new_person,
    persons_of_faces,
    photo_clashes,
    place_faces,
    set_name,
)
from rbv.store.queries.regions import (
    FaceRow,
    PhotoRow,
    faces_by_id,
    faces_of_images,
    scanned_photos,
)
from rbv.words import counted

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
    # unnamed persons given a name, as they held most of its faces
    persons_named: list[dict[str, str]] = field(default_factory=list)
    notes: list[dict[str, str]] = field(default_factory=list)  # a holder left unnamed, why
    cleaned: list[dict[str, str]] = field(default_factory=list)  # invisible characters out
    unmatched: list[dict[str, str]] = field(default_factory=list)
    conflicts: list[dict[str, str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    edit_id: int | None = None  # its entry in the edit log (None: dry run, or no change)

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["problems"] = [{"path": p.path, "reason": p.reason} for p in self.problems]
        return d


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
            regions = _regions_of(paths, photos[image_id], roots, options.sidecars_from,
                                  report, reporter)
            if regions:
                found[image_id] = regions
            reporter.advance(1, faces=len(regions))
        report.regions = sum(len(r) for r in found.values())
        faces = faces_of_images(conn, pack.id, list(found))
        claims: list[Claim] = []
        for image_id, regions in found.items():
            claims += _match(photos[image_id], regions, faces.get(image_id, []), options,
                             report)
        persons = _persons(conn, pack, claims, report)
        _place_claims(conn, claims, persons, report)
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
                read = read_regions(source, MAX_REGIONS_READ)
            except XmpError as exc:
                if source == photo and not isinstance(exc, XmpUnreadable):
                    continue  # a format exiv2 cannot read: its sidecars may still name faces
                _problem(report, reporter, str(source), str(exc).removeprefix(f"{source}: "))
                continue
            for reason in read.malformed:
                _problem(report, reporter, str(source), reason)
            if read.skipped:
                _problem(report, reporter, str(source), f"{read.skipped:,} face regions past "
                         f"the first {MAX_REGIONS_READ:,} were skipped (rbv reads at most "
                         f"{MAX_REGIONS_READ:,} from a file)")
            for region in _as_shown(read, photo_row):
                if not (region.name and region.is_face):
                    continue
                try:  # the rule a typed name follows
                    named = person_name(region.name, "the name")
                except ConfigError as exc:
                    _problem(report, reporter, str(source), f"{exc}; that region is left out")
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


def _problem(report: ImportXmpReport, reporter: Reporter, path: str, reason: str) -> None:
    problem = Problem(path, reason)
    report.problems.append(problem)
    reporter.problem(problem)


@dataclass(frozen=True)
class Claim:
    """A named region matched to a detected face."""

    path: str
    name: str
    face: FaceRow
    photo: PhotoRow


def _match(photo: PhotoRow, regions: list[tuple[str, Region]], faces: list[FaceRow],
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
            report.conflicts.append(_conflict(
                regions[pair[0]][0], name, face,
                f"the name is on two faces of the photo; face {kept} (the closer match) "
                "got it",
                f"`rbv persons move {face} --to {_quoted(name)}` gives it to face {face} "
                f"instead (take face {kept} out first: `rbv persons move {kept}`)"))
            continue
        by_name[key] = pair
    out = []
    for i, j, _ in by_name.values():
        path, region = regions[i]
        report.matched += 1
        out.append(Claim(path, (region.name or "").strip(), faces[j], photo))
    return out


def _unmatched(path: str, region: Region, photo: PhotoRow, faces: list[FaceRow],
               min_iou: float) -> dict[str, str]:
    """A region no face overlaps enough, and the command that names its face."""
    name = region.name or ""
    box = region.box(photo.width, photo.height)
    best = max((iou(box, f.box) for f in faces), default=0.0)
    if best >= 0.05:
        reason = (f"the nearest detected face overlaps its region by {best:.2f}, under "
                  f"--min-iou {min_iou:g}")
        command = (f"`rbv import-xmp {_quoted(str(Path(path).parent))} --min-iou "
                   f"{max(0.05, int(best * 20) / 20):g}` matches it")
    else:
        x, y = round(box[0]), round(box[1])
        reason = "no face was detected there"
        command = (f"`rbv faces add {_quoted(path)} --box {x},{y},"
                   f"{round(box[2] - box[0])},{round(box[3] - box[1])} --person "
                   f"{_quoted(name)}` adds it by hand")
    return {"path": path, "name": name, "reason": reason, "command": command}


def _conflict(path: str, name: str, face: int, reason: str, command: str) -> dict[str, str]:
    return {"path": path, "name": name, "face": str(face), "reason": reason,
            "command": command}


def _quoted(text: str) -> str:
    return shlex.quote(text)


def _persons(conn: psycopg.Connection, pack: PackRow, claims: list[Claim],
             report: ImportXmpReport) -> dict[str, uuid.UUID]:
    """The person of each name (by name_key): the pack's person of that name; else the
    unnamed person that holds most of the name's faces, named, when no decision
    contradicts it (:func:`_holder`); else a new person."""
    by_name: dict[str, list[Claim]] = {}
    for claim in claims:
        by_name.setdefault(name_key(claim.name), []).append(claim)
    out: dict[str, uuid.UUID] = {}
    holders: dict[str, tuple[uuid.UUID, int]] = {}
    for key, named in by_name.items():
        person = person_named(conn, pack.id, named[0].name)
        if person is not None:
            out[key] = person
            continue
        held = _holder(conn, named, report)
        if held is not None:
            holders[key] = held
    # two names held most by one person: the name with more faces there names it
    by_holder: dict[uuid.UUID, list[tuple[int, str]]] = {}
    for key, (person, count) in holders.items():
        by_holder.setdefault(person, []).append((count, key))
    for person, keys in by_holder.items():
        keys.sort(reverse=True)
        tied = len(keys) > 1 and keys[0][0] == keys[1][0]
        for rank, (count, key) in enumerate(keys):
            name = by_name[key][0].name
            if rank or tied:
                report.notes.append(_holder_note(
                    name, person, count, len(by_name[key]),
                    f"{counted(len(keys) - 1, 'other name')} of the sidecars "
                    f"{'is' if len(keys) == 2 else 'are'} on its faces too"))
                continue
            set_name(conn, person, name)
            out[key] = person
            report.persons_named.append({"name": name, "person": str(person), "faces": "",
                                         "named_faces": str(count),
                                         "of": str(len(by_name[key]))})
    for key, named in by_name.items():
        if key not in out:
            person = new_person(conn, pack.id, source="import")
            set_name(conn, person, named[0].name)
            out[key] = person
            report.persons_created.append(named[0].name)
    return out


def _holder(conn: psycopg.Connection, named: list[Claim], report: ImportXmpReport
            ) -> tuple[uuid.UUID, int] | None:
    """The unnamed person that holds most (more than half) of the name's faces, and
    how many, when no decision contradicts naming it: none of the name's faces is
    rejected from it, placed by hand in another person, or linked 'different' with one
    of its faces (what :func:`refused_placements` says of them), and it is not hidden.
    None otherwise (said in ``report.notes`` when a decision is what stops it)."""
    ids = [c.face.id for c in named]
    now = persons_of_faces(conn, ids)
    counts = Counter(now.values())
    if not counts:
        return None
    person, count = counts.most_common(1)[0]
    if 2 * count <= len(ids) or name_of(conn, person) is not None:
        return None
    if is_hidden(conn, person):  # hidden as a stranger: a decision the name contradicts
        report.notes.append(_holder_note(
            named[0].name, person, count, len(ids),
            f"it is hidden (`rbv persons unhide {short_id(person)}` shows it again)"))
        return None
    refused = refused_placements(conn, ids, person)
    if refused:
        face, why = sorted(refused.items())[0]
        report.notes.append(_holder_note(named[0].name, person, count, len(ids),
                                         f"face {face}: " + why.replace("it ", "", 1)))
        return None
    return person, count


def _holder_note(name: str, person: uuid.UUID, count: int, total: int,
                 why: str) -> dict[str, str]:
    return {"name": name, "person": str(person), "reason": (
        f"a new person, not person {short_id(person)}, which holds {count} of its "
        f"{counted(total, 'face')}: {why}"), "command": (
        f"`rbv persons merge {short_id(person)} {_quoted(name)}` joins them if they are "
        "one person")}


def _place_claims(conn: psycopg.Connection, claims: list[Claim],
                  persons: dict[str, uuid.UUID], report: ImportXmpReport) -> None:
    """Place each claimed face by hand in its name's person, unless an earlier decision
    keeps it out (a conflict, with the command that does it anyway). A person made for
    a name that got no face is not kept (the conflicts say what would name one)."""
    now = faces_by_id(conn, [c.face.id for c in claims])
    marked = set(marked_among(conn, [c.face.id for c in claims]))
    in_unnamed: list[tuple[Claim, FaceRow]] = []  # placed by hand in an unnamed person
    for claim in claims:
        face = now[claim.face.id]
        name, person = claim.name, persons[name_key(claim.name)]
        target = _quoted(name)
        if face.id in marked:  # the user said the detection is no face: that stands
            report.conflicts.append(_conflict(
                claim.path, name, face.id, "the face was marked not a face",
                f"`rbv faces is-a-face {face.id}` takes the mark back, then "
                f"`rbv persons move {face.id} --to {target}` puts it there"))
            continue
        if face.person_id == person or same_name(face.name, name):
            continue
        if face.assigned_by == "manual":  # in another person: the user's decision stands
            if face.person_id is not None and face.name is None:
                in_unnamed.append((claim, face))
                continue
            where = repr(face.name) if face.name else "no person"
            report.conflicts.append(_conflict(
                claim.path, name, face.id, f"the face is in {where} (placed by hand)",
                f"`rbv persons move {face.id} --to {target}` moves the face"))
            continue
        clash = [g for group in photo_clashes(conn, person, [face.id]) for g in group
                 if g != face.id]
        if clash:
            report.conflicts.append(_conflict(
                claim.path, name, face.id,
                f"face {clash[0]} of the photo is that person already",
                f"`rbv persons move {clash[0]}` takes it out (to a person of its own), "
                f"then `rbv persons move {face.id} --to {target}`"))
            continue
        refused = refused_placements(conn, [face.id], person).get(face.id)
        if refused is not None:  # an earlier decision keeps it out: it stands
            report.conflicts.append(_conflict(
                claim.path, name, face.id, refused.replace("it ", "the face ", 1),
                f"`rbv persons move {face.id} --to {target}` puts it there anyway "
                "(overriding that decision, said)"))
            continue
        report.assigned += place_faces(conn, [face.id], person)
    # made for a name no face got, and no conflict's command moves a face to
    needed = {name_key(c["name"]) for c in report.conflicts if " --to " in c["command"]}
    for name in list(report.persons_created):
        person = persons[name_key(name)]
        if name_key(name) not in needed and not faces_of_persons(conn, [person]):
            delete_person(conn, person)
            report.persons_created.remove(name)
            del persons[name_key(name)]
    for claim, face in in_unnamed:
        assert face.person_id is not None
        held, target = short_id(face.person_id), _quoted(claim.name)
        command = (f"`rbv persons merge {target} {held}` joins that person to "
                   f"{claim.name!r}" if name_key(claim.name) in persons else
                   f"`rbv persons name {held} {target}` names that person")
        report.conflicts.append(_conflict(
            claim.path, claim.name, face.id,
            f"the face is in person {held} (placed by hand)", command))


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

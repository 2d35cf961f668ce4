"""``rbv persons review [PERSON]``: a person's faces, the least typical first, and the
one remedy that takes the doubtful ones out; whether it looks like two people. With no
person: that verdict for each of the largest persons."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from rbv.errors import ConfigError, Remedy
from rbv.jobs.persons.evidence import (
    DOUBT_Z,
    CommandLine,
    Halves,
    doubtful,
    faces_least_typical_first,
    load_evidence,
    reject,
    two_people,
    worded,
)
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.pictures.contact_sheet import SheetFace, write_sheet
from rbv.store import Database
from rbv.store.queries.images import photo_files
from rbv.store.queries.person_lookup import existing_person
from rbv.store.queries.persons import PersonRow
from rbv.store.queries.review import neighbour_boxes, shown_faces


@dataclass(frozen=True)
class ReviewedFace:
    id: int
    path: str | None
    similarity: float  # average similarity to the person's other faces
    z: float  # that against the impostor model: below DOUBT_Z it could be anyone
    doubtful: bool

    def as_dict(self) -> dict[str, object]:
        z = self.z if self.z != float("inf") else None
        return {"id": self.id, "path": self.path, "similarity": round(self.similarity, 4),
                "z": None if z is None else round(z, 2), "doubtful": self.doubtful}


@dataclass(frozen=True)
class ReviewReport:
    person: PersonRow
    faces: list[ReviewedFace]  # least typical first (at most the limit asked for)
    doubtful: list[int]  # every doubtful face of the person, least typical first
    reject: Remedy | None  # takes the doubtful faces out; None when there are none
    sheet: Path | None
    split: Halves | None = None  # the person looks like two people

    def as_dict(self, command: CommandLine | None = None) -> dict[str, object]:
        """JSON values; with ``command``, each remedy as the command line it words."""
        return {"person": self.person.as_dict(), "doubt_z": DOUBT_Z,
                "faces": [f.as_dict() for f in self.faces], "doubtful": self.doubtful,
                **worded(self.reject, command),
                "sheet": str(self.sheet) if self.sheet else None,
                "two_people": self.split.as_dict(command) if self.split else None}


def review(db: Database, person: uuid.UUID, limit: int, *, sheet: Path | None = None,
           max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> ReviewReport:
    """The person's faces, least typical first (at most ``limit``); with ``sheet``, a
    contact sheet of them in that order. A person merged into another is that one."""
    with db.connect() as conn:
        person = existing_person(conn, person)
        evidence = load_evidence(conn, None, person)
        if not evidence.persons:
            raise ConfigError(f"person {person} has no faces to review")
        fits = faces_least_typical_first(evidence, 0)
        split = two_people(evidence, 0)
        shown = {f.id: f for f in shown_faces(conn, [f for f, _ in fits[:limit]])}
    bad = doubtful(fits)
    faces = [ReviewedFace(f, shown[f].path if f in shown else None, fit.mean, fit.z,
                          f in bad) for f, fit in fits[:limit]]
    row = evidence.persons[0]
    taken_out = reject(person, bad) if bad else None
    if sheet is not None:
        tiles = [SheetFace(shown[f.id].id, shown[f.id].image_id, shown[f.id].bbox)
                 for f in faces if f.id in shown]
        title = f"{row.name or row.id}: least typical first"
        with db.connect() as conn:
            write_sheet(photo_files(conn), tiles, title, sheet, max_pixels=max_pixels,
                        beside=neighbour_boxes(conn, [t.face_id for t in tiles]))
    return ReviewReport(row, faces, bad, taken_out, sheet, split)


@dataclass(frozen=True)
class PersonVerdict:
    """What review finds in one person, in short."""

    person: PersonRow
    doubtful: list[int]  # face ids, least typical first
    split: Halves | None

    def as_dict(self, command: CommandLine | None = None) -> dict[str, object]:
        return {"person": self.person.as_dict(), "doubtful": self.doubtful,
                "two_people": self.split.as_dict(command) if self.split else None}


@dataclass(frozen=True)
class LargestReport:
    pack: str
    persons: list[PersonVerdict]  # most faces first

    def as_dict(self, command: CommandLine | None = None) -> dict[str, object]:
        return {"pack": self.pack, "doubt_z": DOUBT_Z,
                "persons": [p.as_dict(command) for p in self.persons]}


def review_largest(db: Database, pack_name: str | None, top: int, *,
                   sole_fallback: bool = False) -> LargestReport:
    """Review's verdict on each of the pack's ``top`` persons with the most faces."""
    with db.connect() as conn:
        evidence = load_evidence(conn, pack_name, largest=top, sole_fallback=sole_fallback)
    verdicts = [PersonVerdict(row, doubtful(faces_least_typical_first(evidence, i)),
                              two_people(evidence, i))
                for i, row in enumerate(evidence.persons)]
    return LargestReport(evidence.pack.name, verdicts)

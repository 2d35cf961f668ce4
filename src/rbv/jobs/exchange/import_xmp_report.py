"""What ``import-xmp`` is asked (:class:`ImportXmpOptions`) and reports
(:class:`ImportXmpReport`), a named region matched to a face (:class:`Claim`), and the
entries of the report its steps add (:class:`Unapplied`: why, and the remedies that do
what the sidecar says, as data the CLI words)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rbv.errors import Remedy
from rbv.jobs.reporting import Problem, Reporter
from rbv.store.queries.regions import FaceRow, PhotoRow

DEFAULT_MIN_IOU = 0.4
"""Regions drawn by people are looser than a detector's box; 0.4 still never pairs a
region with a neighbouring face."""


@dataclass(frozen=True)
class ImportXmpOptions:
    roots: tuple[Path, ...] = ()  # only photos under these folders (all when empty)
    sidecars_from: Path | None = None  # sidecars mirrored under this folder (export --out)
    min_iou: float = DEFAULT_MIN_IOU
    dry_run: bool = False


Worded = Callable[[Sequence[Remedy]], str]
"""How a front end words remedies done one after the other (the CLI: as commands)."""


@dataclass(frozen=True)
class Unapplied:
    """A name the import did not apply as the sidecar says: a region no face overlaps
    enough, a face an earlier decision keeps out (a conflict), a person of most of the
    name's faces left unnamed (a note). ``remedies``: what would apply it, done one after
    the other (each ``label`` says what it does: "puts it there")."""

    name: str
    reason: str
    remedies: tuple[Remedy, ...]
    path: str | None = None  # the photo or sidecar (None: a note on a person)
    face: int | None = None
    person: uuid.UUID | None = None

    def as_dict(self, steps: Worded | None = None) -> dict[str, str]:
        """Its fields as text; ``command``: the remedies as ``steps`` words them."""
        out = {"path": self.path, "name": self.name,
               "face": None if self.face is None else str(self.face),
               "person": None if self.person is None else str(self.person),
               "reason": self.reason,
               "command": None if steps is None else steps(self.remedies)}
        return {k: v for k, v in out.items() if v is not None}


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
    notes: list[Unapplied] = field(default_factory=list)  # a holder left unnamed, why
    cleaned: list[dict[str, str]] = field(default_factory=list)  # invisible characters out
    unmatched: list[Unapplied] = field(default_factory=list)
    conflicts: list[Unapplied] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    edit_id: int | None = None  # its entry in the edit log (None: dry run, or no change)

    def as_dict(self, steps: Worded | None = None) -> dict[str, object]:
        """The report as JSON values; each entry's remedies as ``steps`` words them (its
        ``command``), when given."""
        d = asdict(self)
        for key in ("notes", "unmatched", "conflicts"):
            d[key] = [u.as_dict(steps) for u in getattr(self, key)]
        d["problems"] = [{"path": p.path, "reason": p.reason} for p in self.problems]
        return d


def add_problem(report: ImportXmpReport, reporter: Reporter, path: str,
                reason: str) -> None:
    """A file that could not be read (or only in part): in the report, and said now."""
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


def conflict_entry(path: str, name: str, face: int, reason: str,
                   *remedies: Remedy) -> Unapplied:
    """A name left off a face as an earlier decision keeps it out, and the remedies that
    give it anyway: one entry of :attr:`ImportXmpReport.conflicts`."""
    return Unapplied(name, reason, remedies, path, face)


def move(face: int, to: str | None, does: str) -> Remedy:
    """Moving ``face`` to the person called ``to`` (None: a person of its own)."""
    return Remedy("move", {"faces": [face], "to": to}, does)

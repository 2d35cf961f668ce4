"""What ``import-xmp`` is asked (:class:`ImportXmpOptions`) and reports
(:class:`ImportXmpReport`), a named region matched to a face (:class:`Claim`), and the
entries of the report its steps add."""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path

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
                   command: str) -> dict[str, str]:
    """A name left off a face as an earlier decision keeps it out, and the command that
    gives it anyway: one entry of :attr:`ImportXmpReport.conflicts`."""
    return {"path": path, "name": name, "face": str(face), "reason": reason,
            "command": command}


def quoted(text: str) -> str:
    """``text`` as one word of a shell command."""
    return shlex.quote(text)

"""``rbv persons suggest``: persons that are probably one person, ranked by evidence,
optionally with a side-by-side contact sheet per pair."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from rbv.jobs.persons.evidence import (
    DEFAULT_MIN_SCORE,
    CommandLine,
    PersonEvidence,
    Suggestion,
    faces_least_typical_first,
    load_evidence,
    merge_suggestions,
)
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.pictures.contact_sheet import SheetFace, write_side_by_side
from rbv.store import Database
from rbv.store.queries.images import photo_files
from rbv.store.queries.persons import PersonRow
from rbv.store.queries.review import neighbour_boxes, shown_faces

SHEET_FACES = 8
"""Faces per person on a suggestion's sheet: the best-matching one, then the most
typical."""


@dataclass
class SuggestReport:
    pack: str
    persons: int
    impostor_source: str
    suggestions: list[Suggestion]
    scoring: int  # pairs scoring at least min_score, of which ``suggestions`` are the first
    candidates: int  # pairs of any score: what `rbv serve` asks about (its --min-score 0)
    sheets: list[Path] = field(default_factory=list)
    unreadable: list[int] = field(default_factory=list)  # faces shown as grey tiles

    def as_dict(self, command: CommandLine | None = None) -> dict[str, object]:
        """JSON values; with ``command``, each suggestion's merge as its command line."""
        return {"pack": self.pack, "persons": self.persons,
                "impostor_model": self.impostor_source, "scoring": self.scoring,
                "candidates": self.candidates,
                "suggestions": [s.as_dict(command) for s in self.suggestions],
                "sheets": [str(p) for p in self.sheets], "unreadable_faces": self.unreadable}


def suggest(db: Database, pack_name: str | None, limit: int, *,
            min_score: float = DEFAULT_MIN_SCORE, sheet_dir: Path | None = None,
            max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
            sole_fallback: bool = False) -> SuggestReport:
    """The first ``limit`` merge suggestions of the pack scoring at least ``min_score``,
    most worth answering first (as ``rbv serve`` asks them), with how many score so and
    how many candidates there are in all; with ``sheet_dir``, a PNG per suggestion
    (``NN_<keep>_<merge>.png``: the two persons side by side)."""
    with db.connect() as conn:
        evidence = load_evidence(conn, pack_name, sole_fallback=sole_fallback)
        candidates = merge_suggestions(conn, evidence, None, 0.0)
    scoring = [s for s in candidates if s.probability >= min_score]
    suggestions = [replace(s, rank=rank) for rank, s in enumerate(scoring[:limit], 1)]
    report = SuggestReport(evidence.pack.name, len(evidence.persons), evidence.model_source,
                           suggestions, len(scoring), len(candidates))
    if sheet_dir is None:
        return report
    for s in suggestions:
        left = _sheet_faces(db, evidence, s, keep=True)
        right = _sheet_faces(db, evidence, s, keep=False)
        out = sheet_dir / f"{s.rank:02d}_{str(s.keep.id)[:8]}_{str(s.other.id)[:8]}.png"
        with db.connect() as conn:
            report.unreadable += write_side_by_side(
                photo_files(conn), (f"keep {_title(s.keep)}", left),
                (f"merge {_title(s.other)}", right), out, max_pixels=max_pixels,
                beside=neighbour_boxes(conn, [f.face_id for f in [*left, *right]]))
        report.sheets.append(out)
    return report


def _title(person: PersonRow) -> str:
    faces = f"{person.faces:,} face" + ("s" if person.faces != 1 else "")
    return f"{person.name or str(person.id)[:8]} ({faces})"


def _sheet_faces(db: Database, evidence: PersonEvidence, s: Suggestion, *,
                 keep: bool) -> list[SheetFace]:
    person = s.keep if keep else s.other
    best = s.best_faces[0 if keep else 1]
    index = next(i for i, p in enumerate(evidence.persons) if p.id == person.id)
    typical = [f for f, _ in reversed(faces_least_typical_first(evidence, index))]
    ids = [best, *[f for f in typical if f != best]][:SHEET_FACES]
    with db.connect() as conn:
        return [SheetFace(f.id, f.image_id, f.bbox) for f in shown_faces(conn, ids)]

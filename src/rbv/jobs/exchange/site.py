"""``rbv site OUT``: the static review site of a pack's persons (see
:mod:`rbv.web.site`)."""

from __future__ import annotations

from pathlib import Path

from rbv.cluster.defaults import DEFAULT_MIN_SCORE
from rbv.jobs.out_lock import writing_folder
from rbv.jobs.persons.evidence import (
    CommandLine,
    doubtful,
    faces_least_typical_first,
    load_evidence,
    merge_suggestions,
    reject,
    two_people,
)
from rbv.jobs.recording import recorded_run
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.pictures.contact_sheet import DECODE_LONG_EDGE
from rbv.pictures.pixels import PhotoSource
from rbv.store import Database
from rbv.store.queries.images import photo_files
from rbv.store.queries.person_covers import chosen_covers
from rbv.store.queries.review import neighbour_boxes, shown_faces
from rbv.web.site import SiteFace, SitePerson, SiteReport, SiteSuggestion, write_site

DEFAULT_MAX_FACES = 200
"""Faces shown on a person's page (the least typical first: those are the ones to check)."""
DEFAULT_SUGGESTIONS = 50
SUGGESTION_FACES = 6


def build_site(db: Database, out: Path, pack_name: str | None, *, command: CommandLine,
               max_faces: int = DEFAULT_MAX_FACES, suggestions: int = DEFAULT_SUGGESTIONS,
               min_score: float = DEFAULT_MIN_SCORE,
               max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
               sole_fallback: bool = False) -> SiteReport:
    """Write or update the site under ``out``: crops are made only for faces that lack
    one (or whose photo or box changed); pages are rewritten only when they change.
    Each fix a page offers is shown as ``command`` words its remedy."""
    parameters = {"out": str(out), "model_pack": pack_name, "max_faces": max_faces,
                  "suggestions": suggestions, "min_score": min_score}
    with writing_folder(out, "site"), recorded_run(db, "site", parameters) as run, \
            db.connect() as conn:
        evidence = load_evidence(conn, pack_name, sole_fallback=sole_fallback)
        # The pairs most worth answering (as `rbv serve` asks them), shown strongest
        # evidence first, as the page says: worth ranks a likely pair of small persons
        # below a less likely pair of large ones.
        ranked = sorted(merge_suggestions(conn, evidence, None, min_score)[:suggestions],
                        key=lambda s: (-s.probability, s.rank))
        fits = [faces_least_typical_first(evidence, i) for i in range(len(evidence.persons))]
        wanted = [f for person_fits in fits for f, _ in person_fits[:max_faces]]
        chosen = chosen_covers(conn, [p.id for p in evidence.persons])
        wanted += chosen.values()
        position = {p.id: i for i, p in enumerate(evidence.persons)}
        typical = {}  # person → its most typical faces, for suggestions
        for s in ranked:
            for person in (s.keep, s.other):
                if person.id not in typical:
                    most = [f for f, _ in reversed(fits[position[person.id]])]
                    typical[person.id] = most[:SUGGESTION_FACES]
                    wanted += typical[person.id]
        shown = {f.id: f for f in shown_faces(conn, sorted(set(wanted)))}
        beside = neighbour_boxes(conn, list(shown))

        def face(face_id: int, similarity: float | None = None,
                 is_doubtful: bool = False) -> SiteFace:
            f = shown[face_id]
            return SiteFace(f.id, f.image_id, f.bbox, f.path, similarity, is_doubtful,
                            tuple(beside.get(f.id, ())))

        persons = []
        for i, (row, person_fits) in enumerate(zip(evidence.persons, fits, strict=True)):
            bad = doubtful(person_fits)
            split = two_people(evidence, i)
            persons.append(SitePerson(
                row.id, row.name, row.faces, row.images,
                [face(f, fit.mean if len(person_fits) > 1 else None, f in bad)
                 for f, fit in person_fits[:max_faces] if f in shown],
                bad, reject(row.id, bad) if bad else None,
                (len(split.kept), len(split.moved)) if split else None,
                split.remedy if split else None,
                face(chosen[row.id]) if chosen.get(row.id) in shown else None))
        site_suggestions = [SiteSuggestion(
            rank, s.keep.id, s.other.id, s.probability, s.why, s.remedy,
            [face(f) for f in typical[s.keep.id] if f in shown],
            [face(f) for f in typical[s.other.id] if f in shown])
            for rank, s in enumerate(ranked, 1)]
        source = PhotoSource(photo_files(conn), max_pixels, long_edge=DECODE_LONG_EDGE)
        report = write_site(source, out, f"Persons ({evidence.pack.name})", persons,
                            site_suggestions, command)
        if report.unreadable:
            run.status = "partial"
        run.counts = {"persons": len(persons), "suggestions": len(ranked),
                      "two_people": sum(1 for p in persons if p.two_people),
                      "thumbs_written": report.thumbs_written,
                      "unreadable": len(report.unreadable)}
    return report

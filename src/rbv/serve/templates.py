"""``rbv serve``'s pages: the Jinja2 templates under ``rbv/web/templates/serve/``
(they share the skeleton and pieces of ``rbv site``'s pages), filled here. Every value
is escaped by the templates; links are built from uuids and integer ids only."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from urllib.parse import urlencode

from rbv.faces.estimates import EstimatedAges, FaceEstimate
from rbv.jobs.persons.birthdays import age_words
from rbv.jobs.persons.lookup import estimate_words, estimated_words
from rbv.jobs.persons.review import ReviewReport
from rbv.jobs.persons.shown import whole_box
from rbv.serve.queue import Grid, Left, Pair, PairsPage
from rbv.store.queries.edits import EditRow
from rbv.store.queries.review_pages import PeopleFilter, PersonTile, Photo
from rbv.web.templating import label, render

__all__ = ["label", "page"]

UNLIKELY = 0.5
"""Below this score a suggestion is shown with a note that it is less likely."""


def page(template: str, title: str, token: str, base: str, notice: str = "",
         **values: object) -> str:
    """``base``: the path every link starts with (the server's secret folder)."""
    return render(f"serve/{template}", **{"title": title, "token": token, "base": base,
                                           "notice": notice, "reload": 0, **values})


def people(tiles: Sequence[PersonTile], total: int, search: str, which: PeopleFilter,
           page_no: int, per_page: int) -> dict[str, object]:
    pages = max(1, -(-total // per_page))
    nav = []
    for target, text in ((page_no - 1, "‹ previous"), (page_no + 1, "next ›")):
        if 1 <= target <= pages:
            query = urlencode({"q": search, "filter": which.value, "page": target})
            nav.append((f"/?{query}", text))
    return {"tiles": tiles, "total": total, "search": search, "which": which.value,
            "filters": [f.value for f in PeopleFilter], "page": page_no, "pages": pages,
            "nav": nav}


def person(report: ReviewReport, more: int, cover: int | None = None, *,
           born: date | None = None,
           taken: Mapping[int, datetime | None] | None = None,
           estimates: Mapping[int, FaceEstimate] | None = None,
           estimated: EstimatedAges | None = None) -> dict[str, object]:
    """``split``: the halves when it looks like two people (``other_half``: the faces
    the split would move, marked on the page); ``more``: the faces "Show more" shows;
    ``cover``: the face chosen to show the person (None: its automatic face); ``born``:
    the birthday, and ``taken``: when each face's photo was taken (its age is shown
    under it); ``estimates``: each face's estimated age and gender (shown under it
    where no birthday gives an age), ``estimated``: what they say of the person."""
    taken, estimates = taken or {}, estimates or {}
    return {"p": report.person, "faces": report.faces, "more": more, "cover": cover,
            "born": born,
            "ages": {f.id: age_words(born, taken.get(f.id)) if born
                     else estimate_words(estimates[f.id]) if f.id in estimates else ""
                     for f in report.faces},
            "estimated": estimated_words(estimated) if estimated else "",
            "doubtful": len(report.doubtful),
            "hidden_faces": max(0, report.person.faces - len(report.faces)),
            "split": report.split,
            # serve words the one command a page shows itself (it does every edit by a
            # button): the split the button makes, as the command line does it
            "split_command": (f"rbv persons split {str(report.split.person)[:8]}"
                              if report.split else None),
            "other_half": set(report.split.moved) if report.split else set()}


def suggestion(pair: Pair | None, note: str = "", ended: Left | None = None
               ) -> dict[str, object]:
    """The pair to show; a ``note`` when the ranking is older than the library or still
    being made (then, with nothing to show, the page reloads itself); ``ended``: what is
    left when nothing worth a look is (the page says so, and offers the unlikely)."""
    return {"pair": pair, "note": note, "reload": 3 if note and pair is None else 0,
            "ended": ended,
            "unlikely": pair is not None and pair.suggestion.probability < UNLIKELY}


def grid(grid: Grid | None, note: str, ended: Left | None, here: str
         ) -> dict[str, object]:
    """The grid to show (as :func:`suggestion`); ``unlikely``: candidates shown though
    under even odds, said on the page; ``here``: the page's address (``/grid`` or
    ``/review``)."""
    unlikely = sum(c.probability < UNLIKELY for c in grid.candidates) if grid else 0
    return {"g": grid, "note": note, "unlikely": unlikely, "ended": ended, "here": here,
            "reload": 3 if note and grid is None else 0}


def pairs(page: PairsPage | None, note: str, ended: Left | None, here: str
          ) -> dict[str, object]:
    """The pairs to show (as :func:`grid`'s)."""
    unlikely = sum(s.probability < UNLIKELY for s in page.pairs) if page else 0
    return {"page": page, "note": note, "unlikely": unlikely, "ended": ended, "here": here,
            "reload": 3 if note and page is None else 0}


def history(rows: Sequence[EditRow], whats: Sequence[str]) -> dict[str, object]:
    """``whats``: each row's summary with its persons named (as ``rbv persons history``
    says them: :func:`rbv.jobs.persons.lookup.relabel`)."""
    undoable = [r.id for r in rows if r.undone_by is None and not r.undoes]
    shown = []
    for r, what in zip(rows, whats, strict=True):
        state = (f"undone by #{r.undone_by}" if r.undone_by is not None
                 else "undo of " + ", ".join(f"#{u}" for u in r.undoes) if r.undoes else "")
        undo = undoable.index(r.id) + 1 if r.id in undoable else 0
        shown.append((r, what, state, undo))
    return {"rows": shown}


def photo(p: Photo, focus: int | None, *, taken: datetime | None = None,
          born: Mapping[uuid.UUID, date] | None = None,
          estimates: Mapping[int, FaceEstimate] | None = None) -> dict[str, object]:
    """``taken``: when the photo was taken; ``born``: the birthdays of its persons that
    have one (each one's age at the photo is shown); ``estimates``: each face's
    estimated age and gender (shown, said as estimated)."""
    born, estimates = born or {}, estimates or {}
    w, h = p.width or 1, p.height or 1
    boxes = []
    for f in p.faces:
        # Cut to the photo (a face at its edge is detected partly outside), placed by
        # the script (the page's policy allows no inline style).
        x1, x2 = (min(max(v, 0.0), w) for v in (f.bbox[0], f.bbox[2]))
        y1, y2 = (min(max(v, 0.0), h) for v in (f.bbox[1], f.bbox[3]))
        place = (f"{100 * x1 / w:.3f} {100 * y1 / h:.3f} {100 * (x2 - x1) / w:.3f} "
                 f"{100 * (y2 - y1) / h:.3f}")
        boxes.append((f, place, y2 > 0.9 * h))  # near the bottom: name inside the box
    ages = {f.id: age_words(born[f.person], taken) for f in p.faces
            if f.person is not None and f.person in born}
    guesses = {face_id: estimate_words(e) for face_id, e in estimates.items()}
    # each face's box as the page shows it (sent back with a move of it), and as its
    # form offers it to move (cut to the photo)
    shown = {f.id: whole_box(f.bbox) for f in p.faces}
    offered = {f.id: whole_box((min(max(f.bbox[0], 0.0), w), min(max(f.bbox[1], 0.0), h),
                                min(max(f.bbox[2], 0.0), w), min(max(f.bbox[3], 0.0), h)))
               for f in p.faces}
    return {"p": p, "boxes": boxes, "focus": focus, "taken": taken, "ages": ages,
            "estimates": guesses, "shown_box": shown, "offered_box": offered}


def photos(who: Sequence[tuple[uuid.UUID, str]], hits: Sequence[int]) -> dict[str, object]:
    """``who``: each person asked for and its label."""
    return {"who": list(who), "hits": list(hits)}

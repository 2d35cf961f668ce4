"""The GET side of ``rbv serve``: pages, images, static files and name type-ahead.
Every page is read fresh from the database, so it shows each edit (and each
``rbv cluster`` run) at once, with nothing to rebuild."""

from __future__ import annotations

import json
import uuid
from importlib import resources

from starlette.responses import HTMLResponse, RedirectResponse, Response

from rbv.bounds import BIGINT_MAX
from rbv.errors import ConfigError
from rbv.jobs.persons import edit_log
from rbv.jobs.persons.confirms import left_to_confirm, unconfirmed
from rbv.jobs.persons.lookup import estimated_ages, face_estimates, relabel
from rbv.jobs.persons.photos import PhotoQuery, find_photos
from rbv.jobs.persons.review import review
from rbv.jobs.persons.shown import placed_by
from rbv.serve import templates
from rbv.serve.crops import CropCache
from rbv.serve.inputs import query_choice, query_whole
from rbv.serve.queue import Grid, Left, PairsPage, SuggestionQueue
from rbv.store.queries.birthdays import births, photo_taken, taken_of_faces
from rbv.store.queries.person_covers import cover_of
from rbv.store.queries.person_lookup import name_of, resolve_person
from rbv.store.queries.review import shown_faces
from rbv.store.queries.review_pages import (
    PeopleFilter,
    names_starting,
    newest_run,
    people_page,
    photo_of,
)
from rbv.store.server.connection import Database

PER_PAGE = 60
LAST_PAGE = 1_000_000
FACES_SHOWN = 200
CONFIRM_SHOWN = 24
"""Unconfirmed faces one confirm screen shows (what "confirm all shown" confirms)."""
MOST_FACES_SHOWN = 100_000
Query = dict[str, list[str]]
STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
CACHED = {"Cache-Control": "private, max-age=3600"}


def _one(query: Query, key: str, default: str = "") -> str:
    return (query.get(key) or [default])[0]


def _unlikely(query: Query) -> bool:
    """Whether the person asked to go on to the pairs not worth a look (``?unlikely=1``)."""
    return query_choice(query, "unlikely", "0", ["0", "1"]) == "1"


class Pages:
    def __init__(self, db: Database, queue: SuggestionQueue, token: str,
                 crops: CropCache, base: str) -> None:
        """``base``: the path every address starts with (the start's secret folder)."""
        self.db = db
        self.base = base
        self.queue = queue
        self.token = token
        self.crops = crops
        with db.connect() as conn:
            self._clustered = newest_run(conn, "cluster")

    def _notice(self) -> str:
        """Says when `rbv cluster` (from cron, say) changed persons since the start."""
        with self.db.connect() as conn:
            latest = newest_run(conn, "cluster")
        if latest is None or latest == self._clustered:
            return ""
        return (f"rbv cluster ran at {latest[1]:%Y-%m-%d %H:%M} since this server started: "
                "persons may have changed (every page shows them as they are now)")

    def html(self, template: str, title: str, values: dict[str, object], *,
             status: int = 200) -> HTMLResponse:
        return HTMLResponse(templates.page(template, title, self.token, self.base,
                                           self._notice(), **values), status)

    def message(self, heading: str, message: str, status: int = 404) -> HTMLResponse:
        return self.html("message.html", heading,
                         {"heading": heading, "message": message}, status=status)

    def plain(self, heading: str, message: str, status: int) -> HTMLResponse:
        """A message page that reads nothing from the database (the page said while it
        is gone)."""
        return HTMLResponse(templates.page("message.html", heading, self.token, self.base,
                                           heading=heading, message=message), status)

    def static(self, name: str) -> Response:
        if name not in STATIC:
            return self.message("Not found", "no such page")
        data = resources.files("rbv.serve").joinpath("static", name).read_bytes()
        return Response(data, media_type=STATIC[name], headers=CACHED)

    def face(self, face: int) -> Response:
        crop = self.crops.face(face) if face <= BIGINT_MAX else None
        if crop is None:
            return self.message("Not found", f"no face {face}")
        return Response(crop, media_type="image/jpeg", headers=CACHED)

    def photo_jpeg(self, image: int) -> Response:
        data = self.crops.photo(image) if image <= BIGINT_MAX else None
        if data is None:
            return self.message("Not found", f"no photo {image}")
        return Response(data, media_type="image/jpeg", headers=CACHED)

    def photo_of_face(self, face: int) -> Response:
        with self.db.connect() as conn:
            shown = shown_faces(conn, [face]) if face <= BIGINT_MAX else []
        if not shown:
            return self.message("Not found", f"no face {face}")
        return RedirectResponse(f"{self.base}/photo/{shown[0].image_id}?face={face}", 303)

    def names(self, query: Query) -> Response:
        with self.db.connect() as conn:
            found = names_starting(conn, _one(query, "q"))
        return Response(json.dumps([{"id": str(i), "name": n} for i, n in found]),
                        media_type="application/json")

    def people(self, query: Query) -> Response:
        search = _one(query, "q")
        which = PeopleFilter(query_choice(query, "filter", PeopleFilter.all,
                                          [f.value for f in PeopleFilter]))
        page = query_whole(query, "page", 1, 1, LAST_PAGE)
        with self.db.connect() as conn:
            tiles, total = people_page(conn, search=search, which=which,
                                       offset=(page - 1) * PER_PAGE, limit=PER_PAGE)
        return self.html("people.html", "People",
                         templates.people(tiles, total, search, which, page, PER_PAGE))

    def person(self, person: uuid.UUID, query: Query) -> Response:
        limit = query_whole(query, "limit", FACES_SHOWN, 1, MOST_FACES_SHOWN)
        with self.db.connect() as conn:
            name = name_of(conn, person)
            cover = cover_of(conn, person)
        try:
            report = review(self.db, person, limit)
        except ConfigError:  # a person with no faces left (all taken out or moved)
            return self.message(templates.label(person, name),
                                "This person has no faces any more.", 200)
        if report.person.id != person:  # merged into another: follow it
            return RedirectResponse(f"{self.base}/person/{report.person.id}", 303)
        with self.db.connect() as conn:
            born = births(conn, [person]).get(person)
            taken = taken_of_faces(conn, [f.id for f in report.faces]) if born else {}
            by = placed_by(conn, [f.id for f in report.faces])
        to_confirm = left_to_confirm(self.db, person)
        return self.html("person.html", templates.label(person, report.person.name),
                         {**templates.person(report, min(2 * limit, MOST_FACES_SHOWN), cover,
                                             born=born, taken=taken,
                                             estimates=face_estimates(
                                                 self.db, [f.id for f in report.faces]),
                                             estimated=estimated_ages(self.db, person)),
                          "by": by, "to_confirm": to_confirm})

    def confirm(self, person: uuid.UUID) -> Response:
        """The person's unconfirmed faces, least alike first (a screen of them), each
        confirmed or taken out in one click, or all the screen shows at once."""
        found = unconfirmed(self.db, person, CONFIRM_SHOWN)
        if found.person != person:  # merged into another: follow it
            return RedirectResponse(f"{self.base}/person/{found.person}/confirm", 303)
        with self.db.connect() as conn:
            born = births(conn, [person]).get(person)
            cover = cover_of(conn, person)
            by = placed_by(conn, [f.id for f in found.faces])
        return self.html("confirm.html", f"Confirm {templates.label(person, found.name)}",
                         {"u": found, "born": born, "cover": cover, "hidden": found.hidden,
                          "by": by})

    def _ended(self, screen: object, note: str) -> Left | None:
        """What is left when a review page has nothing worth a look to show (the
        ranking made): the page says so, and how many unlikely pairs it could go on
        to."""
        return self.queue.left() if screen is None and not note else None

    def suggestions(self, query: Query) -> Response:
        pair, note = self.queue.next_or_waiting(unlikely=_unlikely(query))
        return self.html("suggestion.html", "Same person?",
                         templates.suggestion(pair, note, self._ended(pair, note)))

    def grid(self, query: Query) -> Response:
        grid, note = self.queue.next_grid(unlikely=_unlikely(query))
        return self._grid_page(grid, note, "/grid")

    def review(self, query: Query) -> Response:
        """The screen most worth a person's time (``SuggestionQueue.next_screen``): a
        grid or a page of pairs, each answered as on its own page."""
        screen, note = self.queue.next_screen(unlikely=_unlikely(query))
        if isinstance(screen, PairsPage):
            return self._pairs_page(screen, note, "/review")
        return self._grid_page(screen, note, "/review")

    def pairs(self, query: Query) -> Response:
        page, note = self.queue.next_pairs(unlikely=_unlikely(query))
        return self._pairs_page(page, note, "/pairs")

    def _grid_page(self, grid: Grid | None, note: str, here: str) -> HTMLResponse:
        """A grid (or what is left when there is none) on the page at ``here``."""
        title = f"Which of these are {templates.label(grid.keep.id, grid.keep.name)}?" \
            if grid is not None else "Which of these are the same person?"
        return self.html("grid.html", title,
                         templates.grid(grid, note, self._ended(grid, note), here))

    def _pairs_page(self, page: PairsPage | None, note: str, here: str) -> HTMLResponse:
        """A page of pairs (or what is left when there is none) on the page at
        ``here``."""
        return self.html("pairs.html", "Which of these pairs are one person?",
                         templates.pairs(page, note, self._ended(page, note), here))

    def history(self) -> Response:
        rows = edit_log.history(self.db, 100)
        return self.html("history.html", "History",
                         templates.history(rows, relabel(self.db, [r.summary for r in rows])))

    def photo(self, image_id: int, query: Query) -> Response:
        with self.db.connect() as conn:
            found = photo_of(conn, image_id) if image_id <= BIGINT_MAX else None
            if found is None:
                return self.message("Not found", f"no photo {image_id}")
            born = births(conn, [f.person for f in found.faces if f.person is not None])
            taken = photo_taken(conn, image_id)
            by = placed_by(conn, [f.id for f in found.faces])
        focus = query_whole(query, "face", 0, 1, BIGINT_MAX) or None
        estimates = face_estimates(self.db, [f.id for f in found.faces])
        return self.html("photo.html", f"Photo {image_id}",
                         {**templates.photo(found, focus, taken=taken, born=born,
                                            estimates=estimates), "by": by})

    def photos(self, query: Query) -> Response:
        refs = [p for p in query.get("person") or [] if p.strip()]
        with self.db.connect() as conn:
            ids = [resolve_person(conn, p) for p in refs]
            who = [(p, templates.label(p, name_of(conn, p))) for p in ids]
        result = find_photos(self.db, PhotoQuery(persons=tuple(ids), limit=500))
        return self.html("photos.html", "Photos",
                         templates.photos(who, [h.image_id for h in result.photos]))

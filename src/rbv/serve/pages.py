"""The GET side of ``rbv serve``: pages, images, static files and name type-ahead.
Every page is read fresh from the database, so it shows each edit (and each
``rbv cluster`` run) at once, with nothing to rebuild."""

from __future__ import annotations

import json
import re
import uuid
from importlib import resources

from rbv.errors import ConfigError
from rbv.jobs import edit_log
from rbv.jobs.photos import PhotoQuery, find_photos
from rbv.jobs.review import review
from rbv.serve import templates
from rbv.serve.crops import CropCache
from rbv.serve.queue import SuggestionQueue
from rbv.serve.response import Response
from rbv.store.connection import Database
from rbv.store.people import PeopleFilter, names_starting, newest_run, people_page, photo_of
from rbv.store.persons import name_of
from rbv.store.review import shown_faces

PER_PAGE = 60
FACES_SHOWN = 200
Query = dict[str, list[str]]
_STATIC = {"app.js": "text/javascript; charset=utf-8", "app.css": "text/css; charset=utf-8"}
_FACE = re.compile(r"^/face/(\d{1,18})\.jpg$")
_PHOTO_JPG = re.compile(r"^/photo/(\d{1,18})\.jpg$")
_PHOTO = re.compile(r"^/photo/(\d{1,18})$")
_PHOTO_OF = re.compile(r"^/photo-of/(\d{1,18})$")
_PERSON = re.compile(r"^/person/([0-9a-f-]{36})$")


def _one(query: Query, key: str, default: str = "") -> str:
    return (query.get(key) or [default])[0]


def _int(query: Query, key: str, default: int, low: int, high: int) -> int:
    try:
        return max(low, min(high, int(_one(query, key, str(default)))))
    except ValueError:
        return default


class Pages:
    def __init__(self, db: Database, queue: SuggestionQueue, token: str) -> None:
        self.db = db
        self.queue = queue
        self.token = token
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

    def _html(self, title: str, body: str, status: int = 200) -> Response:
        return Response(status, templates.layout(title, body, self.token,
                                                 notice=self._notice()).encode())

    def error(self, message: str) -> str:
        return templates.layout("Not found", f"<h1>Not found</h1><p>{templates.e(message)}"
                                "</p>", self.token)

    def get(self, path: str, query: Query, crops: CropCache) -> Response:
        not_found = Response(404, self.error("no such page").encode())
        if path == "/":
            return self.people(query)
        if path.startswith("/static/"):
            name = path[len("/static/"):]
            if name not in _STATIC:
                return not_found
            data = resources.files("rbv.serve").joinpath("static", name).read_bytes()
            return Response(200, data, _STATIC[name], cache=True)
        if m := _FACE.match(path):
            crop = crops.face(int(m[1]))
            return not_found if crop is None else Response(200, crop, "image/jpeg", cache=True)
        if m := _PHOTO_JPG.match(path):
            photo = crops.photo(int(m[1]))
            return not_found if photo is None else Response(200, photo, "image/jpeg",
                                                             cache=True)
        if m := _PHOTO.match(path):
            return self.photo(int(m[1]), query)
        if m := _PHOTO_OF.match(path):
            with self.db.connect() as conn:
                shown = shown_faces(conn, [int(m[1])])
            if not shown:
                return not_found
            return Response(303, b"", location=f"/photo/{shown[0].image_id}?face={m[1]}")
        if m := _PERSON.match(path):
            return self.person(uuid.UUID(m[1]), query)
        if path == "/suggestions":
            return self._html("Same person?", templates.suggestion(self.queue.next()))
        if path == "/history":
            return self._html("History", templates.history(edit_log.history(self.db, 100)))
        if path == "/photos":
            return self.photos(query)
        if path == "/api/names":
            with self.db.connect() as conn:
                found = names_starting(conn, _one(query, "q"))
            data = json.dumps([{"id": str(i), "name": n} for i, n in found]).encode()
            return Response(200, data, "application/json")
        return not_found

    def people(self, query: Query) -> Response:
        search = _one(query, "q")
        try:
            which = PeopleFilter(_one(query, "filter", "all"))
        except ValueError:
            which = PeopleFilter.all
        page = _int(query, "page", 1, 1, 1_000_000)
        with self.db.connect() as conn:
            tiles, total = people_page(conn, search=search, which=which,
                                       offset=(page - 1) * PER_PAGE, limit=PER_PAGE)
        return self._html("People", templates.people(tiles, total, search, which, page,
                                                     PER_PAGE))

    def person(self, person: uuid.UUID, query: Query) -> Response:
        limit = _int(query, "limit", FACES_SHOWN, 1, 100_000)
        with self.db.connect() as conn:
            name = name_of(conn, person)
        try:
            report = review(self.db, str(person), limit)
        except ConfigError:  # a person with no faces left (all taken out or moved)
            body = (f"<h1>{templates.e(templates.label(person, name))}</h1><p>This person "
                    'has no faces any more. <a href="/">Back to people</a></p>')
            return Response(200, templates.layout("Person", body, self.token).encode())
        if report.person.id != person:  # merged into another: follow it
            return Response(303, b"", location=f"/person/{report.person.id}")
        return self._html(templates.label(person, report.person.name),
                          templates.person(report, limit))

    def photo(self, image_id: int, query: Query) -> Response:
        with self.db.connect() as conn:
            found = photo_of(conn, image_id)
        if found is None:
            return Response(404, self.error(f"no photo {image_id}").encode())
        focus = _int(query, "face", 0, 0, 10**18) or None
        return self._html(f"Photo {image_id}", templates.photo(found, focus))

    def photos(self, query: Query) -> Response:
        persons = tuple(query.get("person") or [])
        result = find_photos(self.db, PhotoQuery(persons=persons, limit=500))
        return self._html("Photos", templates.photos(result.persons,
                                                     [h.image_id for h in result.photos]))

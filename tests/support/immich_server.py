"""A local Immich server (127.0.0.1) for tests: the endpoints rbv uses (staging: version,
key check, statistics, job counts, search, faces, originals; pushing names: people,
person, create, rename, assign a face, and reassign/merge as Immich does them), with
request validation as Immich does it, and faults a test can switch on.

Faults: 5xx bursts, slow answers (client timeouts), malformed JSON, truncated or
oversized downloads, and outages (the listening socket is closed: connection refused)
either on demand or after N downloads; :meth:`FakeImmich.restart` brings the server
back on the same port.

It answers as v1.132.3 by default; set :attr:`FakeImmich.version` to a v3 one and it
answers as v3 does where rbv can tell: ``PATCH /people/{id}`` exists (v1 has only
``PUT``), job counts come from ``GET /queues`` (from v2.4.0), and an error is
``{"message"}`` with an ``X-Correlation-ID`` header. :attr:`FakeImmich.methods` counts
the requests by method and path pattern.

As the real server (v1.135.3) does: ``POST /search/metadata`` orders by ``fileCreatedAt``
only and pages with OFFSET, so assets sharing a time come in an order that depends on
the page asked for (PostgreSQL's top-N sort): ties repeat or vanish between pages, the
same way every time. Many assets share a time here (as files without EXIF dates do).
``GET /faces`` answers ``[]`` for an asset not yet through face detection
(:attr:`FakeImmich.undetected`); ``GET /server/version`` takes any key, ``GET /users/me``
checks it.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.immich_library import FakeAsset
from tests.support.loopback import LoopbackServer
from tests.support.openapi import OpenApi

VERSION = {"major": 1, "minor": 132, "patch": 3}
_ORIGINAL = re.compile(r"^/api/assets/([^/]+)/original$")
_PERSON = re.compile(r"^/api/people/([^/]+)$")
_PERSON_ACTION = re.compile(r"^/api/people/([^/]+)/(reassign|merge)$")
_FACE = re.compile(r"^/api/faces/([^/]+)$")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TIE_GROUP = 80  # the first assets share one fileCreatedAt; the others come in threes
_TAKEN_BASE_MS = 1_705_329_000_000  # 2024-01-15T14:30:00Z
_CREATED_BASE_MS = 1_731_000_000_000  # uploads: one every 37 ms
_LISTED_UNNAMED_MIN_FACES = 3  # Immich's default facialRecognition.minFaces


@dataclass
class Faults:
    """What the server does wrong; every field can be changed while it runs."""

    fail_5xx: int = 0  # the next N requests (any endpoint but /server/version) get 503
    fail_path: str = ""  # ...only requests whose path starts with this
    delay_s: float = 0.0  # every answer waits this long (client timeouts)
    download_delay_s: float = 0.0  # each original download waits this long first
    malformed_faces: set[str] = field(default_factory=set)  # asset ids
    truncated: set[str] = field(default_factory=set)  # originals cut in half, every time
    padded: dict[str, int] = field(default_factory=dict)  # id -> extra bytes streamed
    down_after_downloads: int | None = None  # outage after this many downloads
    stuck_paging: bool = False  # nextPage keeps naming the page just served
    down_after_writes: int | None = None  # outage after this many people/face writes
    # Rewrites each JSON answer's bytes (numbers json.dumps cannot write: ``1e400``).
    rewrite: Callable[[bytes], bytes] | None = None
    redirect_to: str | None = None  # every request answered HTTP 302 to this Location


class FakeImmich(LoopbackServer):
    def __init__(self, assets: list[FakeAsset], api_key: str, spec: OpenApi) -> None:
        super().__init__()
        self.handler_class = _Handler
        self.assets = {a.id: a for a in assets}
        self.order = [a.id for a in assets]
        self.api_key = api_key
        self.spec = spec
        self.faults = Faults()
        self.downloads: Counter[str] = Counter()
        self.face_reads: Counter[str] = Counter()
        self.search_bodies: list[dict[str, Any]] = []
        self.responses: list[tuple[str, Any]] = []  # (operation, JSON body) for contracts
        self.requests: list[tuple[str, Any]] = []  # (operation, JSON request body)
        self.people: dict[str, dict[str, Any]] = {}  # id -> {"name", "isHidden"}
        self.face_person: dict[str, str] = {}  # face id -> person id
        self.face_asset = {f: a.id for a in assets for f in a.face_ids}
        self.writes: list[tuple[str, Any]] = []  # (operation, what changed), in order
        self.down = False  # an outage of down_after_writes: kept-alive connections too
        # fileCreatedAt and createdAt (upload time), in ms: ties as in a real library.
        self.taken = {a.id: _TAKEN_BASE_MS + (0 if n < TIE_GROUP else (n // 3) * 60_000)
                      for n, a in enumerate(assets)}
        self.created = {a.id: _CREATED_BASE_MS + 37 * n for n, a in enumerate(assets)}
        self.undetected: set[str] = set()  # face detection not run yet: faces are []
        self.queued_jobs = 0  # what GET /jobs says is waiting in faceDetection
        self.admin = True  # whether the key may read /jobs
        self.extra_images = 0  # images /assets/statistics counts but search never lists
        self.template_on = False  # storage template: originalPath under library/<owner>
        self.file_names: dict[str, str] = {}  # id -> originalFileName, overriding
        self.version: dict[str, Any] = dict(VERSION)
        self.methods: Counter[str] = Counter()  # "PATCH /people/{id}", "GET /jobs", ...

    @property
    def v3(self) -> bool:
        return int(self.version["major"]) >= 3

    def restart(self) -> None:
        self.faults.down_after_downloads = None
        self.faults.down_after_writes = None
        self.down = False
        self.start()

    def add_person(self, name: str, *, hidden: bool = False) -> str:
        """A person as if made in Immich (by its clustering, or named by a user)."""
        person_id = str(uuid.uuid4())
        with self.lock:
            self.people[person_id] = {"name": name, "isHidden": hidden}
        return person_id

    def assign(self, face_id: str, person_id: str | None) -> None:
        with self.lock:
            if person_id is None:
                self.face_person.pop(face_id, None)
            else:
                self.face_person[face_id] = person_id

    def name_of_face(self, face_id: str) -> str | None:
        """The name of the face's person ("" unnamed), None without a person."""
        person = self.face_person.get(face_id)
        return None if person is None else self.people[person]["name"]

    def person_json(self, person_id: str) -> dict[str, Any]:
        p = self.people[person_id]
        return {"id": person_id, "name": p["name"], "birthDate": None,
                "isHidden": p["isHidden"], "isFavorite": False, "color": "#a0a0a0",
                "thumbnailPath": f"/usr/src/app/upload/thumbs/{person_id}.jpeg",
                "updatedAt": "2024-01-15T14:30:00.000Z"}

    def _take_write(self) -> bool:
        """Count one write; False (and the server goes down) past the outage point."""
        with self.lock:
            limit = self.faults.down_after_writes
            if limit is not None and len(self.writes) >= limit:
                self.down = True
                threading.Thread(target=self.stop, daemon=True).start()
                return False
        return True

    def _take_5xx(self, path: str) -> bool:
        with self.lock:
            if self.faults.fail_5xx > 0 and path.startswith(self.faults.fail_path or "/"):
                self.faults.fail_5xx -= 1
                return True
        return False


class _Handler(BaseHTTPRequestHandler):
    fake: FakeImmich
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- helpers -----------------------------------------------------------------------

    def _send_json(self, status: int, body: Any, operation: str = "") -> None:
        data = json.dumps(body).encode()
        if self.fake.faults.rewrite is not None:
            data = self.fake.faults.rewrite(data)
        if operation and status in (200, 201):
            with self.fake.lock:
                self.fake.responses.append((operation, body))
        self._send(status, data, "application/json; charset=utf-8")

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: Any) -> None:
        names = {400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
                 503: "Service Unavailable"}
        if self.fake.v3:
            data = json.dumps({"message": message}).encode()
            self.send_response(status)
            self.send_header("X-Correlation-ID", "fake-correlation")
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self._send_json(status, {"message": message, "error": names.get(status, "Error"),
                                 "statusCode": status})

    def _authorised(self) -> bool:
        if self.headers.get("x-api-key") != self.fake.api_key:
            self._error(401, "Invalid API key")
            return False
        return True

    def _prelude(self, path: str) -> bool:
        if self.fake.down:  # hang up without an answer, as a dead server would
            self.close_connection = True
            return False
        if self.fake.faults.delay_s:
            time.sleep(self.fake.faults.delay_s)
        if self.fake.faults.redirect_to is not None:  # a proxy's login page, say
            self.send_response(302)
            self.send_header("Location", self.fake.faults.redirect_to)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return False
        if path != "/api/server/version" and self.fake._take_5xx(path):
            self._error(503, "Service Unavailable")
            return False
        return path == "/api/server/version" or self._authorised()

    # -- endpoints ---------------------------------------------------------------------

    def _count(self, method: str, path: str) -> None:
        pattern = re.sub(r"/[0-9a-f-]{36}", "/{id}", path.removeprefix("/api"))
        with self.fake.lock:
            self.fake.methods[f"{method} {pattern}"] += 1

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parts = urlsplit(self.path)
        self._count("GET", parts.path)
        if not self._prelude(parts.path):
            return
        if parts.path == "/api/server/version":
            self._send_json(200, self.fake.version, "getServerVersion")
        elif parts.path == "/api/users/me":
            self._send_json(200, _USER, "getMyUser")
        elif parts.path == "/api/assets/statistics":
            images = len(self.fake.assets) + self.fake.extra_images
            self._send_json(200, {"images": images, "videos": 0, "total": images},
                            "getAssetStatistics")
        elif parts.path == "/api/jobs":
            self._jobs()
        elif parts.path == "/api/queues" and self.fake.v3:
            self._queues()
        elif parts.path == "/api/faces":
            self._faces(parse_qs(parts.query))
        elif match := _ORIGINAL.match(parts.path):
            self._original(match[1])
        elif parts.path == "/api/people":
            self._people(parse_qs(parts.query))
        elif match := _PERSON.match(parts.path):
            self._get_person(match[1])
        else:
            self._error(404, f"Cannot GET {parts.path}")

    def do_POST(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        self._count("POST", parts.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        if not self._prelude(parts.path):
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._error(400, "Unexpected token in JSON")
            return
        if parts.path == "/api/search/metadata":
            self._search(body)
        elif parts.path == "/api/people":
            self._create_person(body)
        elif (match := _PERSON_ACTION.match(parts.path)) and match[2] == "merge":
            self._merge(match[1], body)
        else:
            self._error(404, f"Cannot POST {parts.path}")

    def do_PATCH(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        if self.fake.v3 and _PERSON.match(parts.path):
            self.do_PUT()  # v3: the same update as PUT (which it deprecates)
            return
        self._count("PATCH", parts.path)
        self.rfile.read(int(self.headers.get("content-length") or 0))
        if self._prelude(parts.path):
            self._error(404, f"Cannot PATCH {parts.path}")

    def do_PUT(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        self._count(self.command, parts.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        if not self._prelude(parts.path):
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._error(400, "Unexpected token in JSON")
            return
        if match := _FACE.match(parts.path):
            self._assign_face(match[1], body)
        elif (match := _PERSON_ACTION.match(parts.path)) and match[2] == "reassign":
            self._reassign(match[1], body)
        elif match := _PERSON.match(parts.path):
            self._update_person(match[1], body)
        else:
            self._error(404, f"Cannot PUT {parts.path}")

    # -- people (immich-push) ------------------------------------------------------------

    def _valid(self, operation: str, path: str, method: str, body: Any) -> bool:
        """Validate a request body as Immich does (whitelisted DTO): HTTP 400 if not."""
        with self.fake.lock:
            self.fake.requests.append((operation, body))
        problems = self.fake.spec.errors(body, self.fake.spec.request_schema(path, method))
        if problems:
            self._error(400, problems)
        return not problems

    def _known_person(self, person_id: str) -> bool:
        try:
            uuid.UUID(person_id)
        except ValueError:
            self._error(400, ["id must be a UUID"])
            return False
        if person_id not in self.fake.people:
            self._error(400, "Not found or no person.read access")
            return False
        return True

    def _people(self, query: dict[str, list[str]]) -> None:
        try:
            page = int(query.get("page", ["1"])[0])
            size = int(query.get("size", ["500"])[0])
        except ValueError:
            page = size = 0
        with_hidden = query.get("withHidden", ["false"])[0] == "true"
        if page < 1 or not 1 <= size <= 1000:
            self._error(400, ["page must not be less than 1", "size must be 1..1000"])
            return
        with self.fake.lock:
            counts = Counter(self.fake.face_person.values())
            # Immich lists named people with a face, unnamed ones from minFaces faces.
            listed = [i for i, p in self.fake.people.items()
                      if counts[i] >= (1 if p["name"] else _LISTED_UNNAMED_MIN_FACES)
                      and (with_hidden or not p["isHidden"])]
            body = {"people": [self.fake.person_json(i)
                               for i in listed[(page - 1) * size: page * size]],
                    "hasNextPage": page * size < len(listed), "total": len(listed),
                    "hidden": sum(p["isHidden"] for p in self.fake.people.values())}
        self._send_json(200, body, "getAllPeople")

    def _get_person(self, person_id: str) -> None:
        if self._known_person(person_id):
            with self.fake.lock:
                body = self.fake.person_json(person_id)
            self._send_json(200, body, "getPerson")

    def _create_person(self, body: Any) -> None:
        if not self._valid("createPerson", "/people", "post", body):
            return
        if not self.fake._take_write():
            self._error(503, "Service Unavailable")
            return
        person_id = self.fake.add_person(str(body.get("name") or ""),
                                         hidden=bool(body.get("isHidden")))
        with self.fake.lock:
            self.fake.writes.append(("createPerson", person_id))
            answer = self.fake.person_json(person_id)
        self._send_json(201, answer, "createPerson")

    def _assign_face(self, person_id: str, body: Any) -> None:
        """``PUT /faces/{id}``: the path names the person, the body the face."""
        if not self._valid("reassignFacesById", "/faces/{id}", "put", body) \
                or not self._known_person(person_id):
            return
        if body["id"] not in self.fake.face_asset:
            self._error(400, "Not found or no person.create access")
            return
        if not self.fake._take_write():
            self._error(503, "Service Unavailable")
            return
        self.fake.assign(body["id"], person_id)
        with self.fake.lock:
            self.fake.writes.append(("reassignFacesById", (body["id"], person_id)))
            answer = self.fake.person_json(person_id)
        self._send_json(200, answer, "reassignFacesById")

    def _update_person(self, person_id: str, body: Any) -> None:
        """``PUT /people/{id}``: here only a new name (or hidden flag)."""
        if not self._valid("updatePerson", "/people/{id}", "put", body) \
                or not self._known_person(person_id):
            return
        if not self.fake._take_write():
            self._error(503, "Service Unavailable")
            return
        with self.fake.lock:
            person = self.fake.people[person_id]
            if "name" in body:
                person["name"] = str(body["name"])
            if "isHidden" in body:
                person["isHidden"] = bool(body["isHidden"])
            self.fake.writes.append(("updatePerson", (person_id, person["name"])))
            answer = self.fake.person_json(person_id)
        self._send_json(200, answer, "updatePerson")

    def _jobs(self) -> None:
        if not self.fake.admin:
            self._error(403, "Forbidden")
            return
        def counts(waiting: int) -> dict[str, Any]:
            return {"jobCounts": {"active": 0, "completed": 0, "delayed": 0, "failed": 0,
                                  "paused": 0, "waiting": waiting},
                    "queueStatus": {"isActive": False, "isPaused": False}}

        body = {name: counts(self.fake.queued_jobs if name == "faceDetection" else 0)
                for name in ("thumbnailGeneration", "metadataExtraction", "faceDetection",
                             "facialRecognition")}
        self._send_json(200, body)

    def _queues(self) -> None:
        """v2.4.0 on: ``GET /queues``, one entry per queue."""
        if not self.fake.admin:
            self._error(403, "Forbidden")
            return
        self._send_json(200, [
            {"name": name, "isPaused": False, "statistics": {
                "active": 0, "completed": 0, "delayed": 0, "failed": 0, "paused": 0,
                "waiting": self.fake.queued_jobs if name == "faceDetection" else 0}}
            for name in ("thumbnailGeneration", "metadataExtraction", "faceDetection",
                         "facialRecognition", "smartSearch")])

    def _reassign(self, person_id: str, body: Any) -> None:
        """Every face of ``data[].personId`` on ``data[].assetId`` to the path's person."""
        if not self._valid("reassignFaces", "/people/{id}/reassign", "put", body) \
                or not self._known_person(person_id):
            return
        with self.fake.lock:
            for item in body["data"]:
                for face, owner in list(self.fake.face_person.items()):
                    if owner == item["personId"] and \
                            self.fake.face_asset[face] == item["assetId"]:
                        self.fake.face_person[face] = person_id
                        self.fake.writes.append(("reassignFaces", (face, person_id)))
            answer = [self.fake.person_json(person_id) for _ in body["data"]]
        self._send_json(200, answer, "reassignFaces")

    def _merge(self, person_id: str, body: Any) -> None:
        """The listed people's faces to the path's person; the listed people deleted."""
        if not self._valid("mergePerson", "/people/{id}/merge", "post", body) \
                or not self._known_person(person_id):
            return
        results = []
        with self.fake.lock:
            for other in body["ids"]:
                if other == person_id or other not in self.fake.people:
                    results.append({"id": other, "success": False,
                                    "error": "duplicate" if other == person_id
                                    else "not_found"})
                    continue
                for face, owner in list(self.fake.face_person.items()):
                    if owner == other:
                        self.fake.face_person[face] = person_id
                del self.fake.people[other]
                self.fake.writes.append(("mergePerson", (other, person_id)))
                results.append({"id": other, "success": True})
        self._send_json(201, results, "mergePerson")

    def _search(self, body: Any) -> None:
        schema = self.fake.spec.request_schema("/search/metadata", "post")
        problems = self.fake.spec.errors(body, schema)
        if problems:  # Immich whitelists DTO properties and validates them: HTTP 400
            self._error(400, problems)
            return
        with self.fake.lock:
            self.fake.search_bodies.append(body)
        page, size = int(body.get("page", 1)), int(body.get("size", 250))
        wanted = body.get("type")
        ids = [i for i in self.fake.order if wanted in (None, "IMAGE")
               and _within(self.fake.taken[i], body.get("takenAfter"), body.get("takenBefore"))
               and _within(self.fake.created[i], body.get("createdAfter"),
                           body.get("createdBefore"))]
        # ORDER BY fileCreatedAt only, LIMIT size + 1 OFFSET (page - 1) * size: the order
        # among ties depends on how many rows the sort keeps (LIMIT + OFFSET).
        kept = page * size + 1
        descending = body.get("order", "desc") == "desc"
        ids.sort(key=lambda i: (-self.fake.taken[i] if descending else self.fake.taken[i],
                                hashlib.sha1(f"{i}:{kept}".encode()).digest()))
        chunk = ids[(page - 1) * size: page * size]
        items = [self._asset_json(i, bool(body.get("withExif"))) for i in chunk]
        more = page * size < len(ids)
        self._send_json(200, {
            "albums": {"total": 0, "count": 0, "items": [], "facets": []},
            "assets": {"total": len(items), "count": len(items), "items": items,
                       "facets": [],
                       "nextPage": str(page if self.fake.faults.stuck_paging else page + 1)
                       if more else None},
        }, "searchAssets")

    def _asset_json(self, asset_id: str, with_exif: bool) -> dict[str, Any]:
        asset = self.fake.assets[asset_id]
        item = _asset_json(asset, with_exif, self.fake.taken[asset_id])
        item["originalFileName"] = self.fake.file_names.get(asset_id, asset.file_name)
        if not self.fake.template_on:  # Immich's default: <media>/upload/<user>/<xx>/<yy>/
            suffix = asset.file_name.rsplit(".", 1)[-1] if "." in asset.file_name else "jpg"
            item["originalPath"] = (f"/usr/src/app/upload/upload/{item['ownerId']}/"
                                    f"{asset_id[:2]}/{asset_id[2:4]}/{asset_id}.{suffix}")
        return item

    def _faces(self, query: dict[str, list[str]]) -> None:
        ids = query.get("id", [])
        try:
            asset_id = str(uuid.UUID(ids[0])) if len(ids) == 1 else ""
        except ValueError:
            asset_id = ""
        if not asset_id:
            self._error(400, ["id must be a UUID"])
            return
        asset = self.fake.assets.get(asset_id)
        if asset is None:
            self._error(400, "Not found or no asset.read access")
            return
        with self.fake.lock:
            self.fake.face_reads[asset_id] += 1
            undetected = asset_id in self.fake.undetected
        if undetected:
            self._send_json(200, [], "getFaces")
            return
        if asset_id in self.fake.faults.malformed_faces:
            self._send(200, b'[{"boundingBoxX1": 12, "boundingBo', "application/json")
            return
        w, h = asset.preview_size
        with self.fake.lock:
            people = {fid: self.fake.person_json(self.fake.face_person[fid])
                      for fid in asset.face_ids if fid in self.fake.face_person}
        faces = [{"id": fid, "imageWidth": w, "imageHeight": h, "boundingBoxX1": x1,
                  "boundingBoxY1": y1, "boundingBoxX2": x2, "boundingBoxY2": y2,
                  "person": people.get(fid), "sourceType": "machine-learning"}
                 for fid, (x1, y1, x2, y2) in zip(asset.face_ids, asset.preview_faces,
                                                  strict=True)]
        self._send_json(200, faces, "getFaces")

    def _original(self, asset_id: str) -> None:
        asset = self.fake.assets.get(asset_id)
        if asset is None:
            self._error(400, "Not found or no asset.read access")
            return
        faults = self.fake.faults
        if faults.download_delay_s:
            time.sleep(faults.download_delay_s)
        with self.fake.lock:
            self.fake.downloads[asset_id] += 1
            total = sum(self.fake.downloads.values())
            outage = (faults.down_after_downloads is not None
                      and total > faults.down_after_downloads)
        if outage:  # as a dead server: kept-alive connections hang up too
            with self.fake.lock:
                self.fake.down = True
            threading.Thread(target=self.fake.stop, daemon=True).start()
            self.close_connection = True
            self._error(503, "Service Unavailable")
            return
        data = asset.data
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Disposition", f'attachment; filename="{asset.file_name}"')
        if asset_id in faults.padded:  # streamed without a length: only the client's
            self.send_header("Transfer-Encoding", "chunked")  # limit can stop it
            self.end_headers()
            for piece in (data, *[b"\0" * (1 << 20)] * (faults.padded[asset_id] >> 20)):
                self.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if asset_id in faults.truncated:
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)


_USER = {"id": "4b5c1d3e-0000-4000-8000-000000000001", "email": "admin@example.org",
         "name": "Admin", "avatarColor": "primary", "profileImagePath": "",
         "profileChangedAt": "2024-01-15T14:30:00.000Z", "isAdmin": True,
         "shouldChangePassword": False, "storageLabel": "admin", "quotaSizeInBytes": None,
         "quotaUsageInBytes": 0, "status": "active", "oauthId": "",
         "createdAt": "2024-01-15T14:30:00.000Z", "updatedAt": "2024-01-15T14:30:00.000Z",
         "deletedAt": None, "license": None}


def _to_iso(ms: int) -> str:
    return (_EPOCH + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _within(ms: int, after: str | None, before: str | None) -> bool:
    """``after <= ms <= before`` as Immich filters (times given to the millisecond)."""
    def parse(stamp: str) -> int:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        return (moment - _EPOCH) // timedelta(milliseconds=1)

    return (after is None or parse(after) <= ms) and (before is None or ms <= parse(before))


def _asset_json(asset: FakeAsset, with_exif: bool, taken_ms: int) -> dict[str, Any]:
    stamp = _to_iso(taken_ms)
    item: dict[str, Any] = {
        "id": asset.id, "type": "IMAGE", "checksum": asset.sha1_b64,
        "deviceAssetId": f"web-{asset.file_name}", "deviceId": "WEB", "duration": "0:00:00.00000",
        "fileCreatedAt": stamp, "fileModifiedAt": stamp, "localDateTime": stamp,
        "updatedAt": stamp, "hasMetadata": True, "isArchived": False, "isFavorite": False,
        "isOffline": False, "isTrashed": False, "originalFileName": asset.file_name,
        "originalPath": asset.original_path, "originalMimeType": "image/jpeg",
        "ownerId": "4b5c1d3e-0000-4000-8000-000000000001", "thumbhash": None,
        "visibility": "timeline",
    }
    if with_exif:
        item["exifInfo"] = {
            "exifImageWidth": asset.stored_size[0], "exifImageHeight": asset.stored_size[1],
            "orientation": None if asset.orientation is None else str(asset.orientation),
            "fileSizeInByte": len(asset.data),
        }
    return item

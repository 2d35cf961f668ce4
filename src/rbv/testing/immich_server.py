"""A local Immich server (127.0.0.1) for tests: the four endpoints rbv uses, with
request validation as Immich does it, and faults a test can switch on.

Faults: 5xx bursts, slow answers (client timeouts), malformed JSON, truncated or
oversized downloads, and outages (the listening socket is closed: connection refused)
either on demand or after N downloads; :meth:`FakeImmich.restart` brings the server
back on the same port.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rbv.testing.immich_library import FakeAsset
from rbv.testing.loopback import LoopbackServer
from rbv.testing.openapi import OpenApi

VERSION = {"major": 1, "minor": 132, "patch": 3}
_ORIGINAL = re.compile(r"^/api/assets/([^/]+)/original$")


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

    def restart(self) -> None:
        self.faults.down_after_downloads = None
        self.start()

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
        if operation and status == 200:
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
        self._send_json(status, {"message": message, "error": names.get(status, "Error"),
                                 "statusCode": status})

    def _authorised(self) -> bool:
        if self.headers.get("x-api-key") != self.fake.api_key:
            self._error(401, "Invalid API key")
            return False
        return True

    def _prelude(self, path: str) -> bool:
        if self.fake.faults.delay_s:
            time.sleep(self.fake.faults.delay_s)
        if path != "/api/server/version" and self.fake._take_5xx(path):
            self._error(503, "Service Unavailable")
            return False
        return path == "/api/server/version" or self._authorised()

    # -- endpoints ---------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        parts = urlsplit(self.path)
        if not self._prelude(parts.path):
            return
        if parts.path == "/api/server/version":
            self._send_json(200, VERSION, "getServerVersion")
        elif parts.path == "/api/faces":
            self._faces(parse_qs(parts.query))
        elif match := _ORIGINAL.match(parts.path):
            self._original(match[1])
        else:
            self._error(404, f"Cannot GET {parts.path}")

    def do_POST(self) -> None:  # noqa: N802
        parts = urlsplit(self.path)
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        if not self._prelude(parts.path):
            return
        if parts.path != "/api/search/metadata":
            self._error(404, f"Cannot POST {parts.path}")
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._error(400, "Unexpected token in JSON")
            return
        self._search(body)

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
        ids = [i for i in self.fake.order if wanted in (None, "IMAGE")]
        if body.get("order", "desc") == "desc":
            ids = ids[::-1]
        chunk = ids[(page - 1) * size: page * size]
        items = [_asset_json(self.fake.assets[i], bool(body.get("withExif"))) for i in chunk]
        more = page * size < len(ids)
        self._send_json(200, {
            "albums": {"total": 0, "count": 0, "items": [], "facets": []},
            "assets": {"total": len(items), "count": len(items), "items": items,
                       "facets": [],
                       "nextPage": str(page if self.fake.faults.stuck_paging else page + 1)
                       if more else None},
        }, "searchAssets")

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
        if asset_id in self.fake.faults.malformed_faces:
            self._send(200, b'[{"boundingBoxX1": 12, "boundingBo', "application/json")
            return
        w, h = asset.preview_size
        faces = [{"id": fid, "imageWidth": w, "imageHeight": h, "boundingBoxX1": x1,
                  "boundingBoxY1": y1, "boundingBoxX2": x2, "boundingBoxY2": y2,
                  "person": None, "sourceType": "machine-learning"}
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
        if outage:
            threading.Thread(target=self.fake.stop, daemon=True).start()
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


def _asset_json(asset: FakeAsset, with_exif: bool) -> dict[str, Any]:
    stamp = "2024-01-15T14:30:00.000Z"
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

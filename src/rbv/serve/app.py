"""The ``rbv serve`` HTTP server: the standard library's threading server, with the
checks every request passes before a route sees it.

- The Host header must name this server (an IP address, localhost or the ``--host``
  name, with its port): a page on another site that rebinds its DNS name to 127.0.0.1
  is refused.
- A request that changes anything is a POST of JSON carrying the server's secret token
  (in each page it serves, readable only by pages of this origin), from no other
  origin: another site's form or script cannot change data.
- Images are found by face or photo id (integers in the URL), never by a path.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from rbv.errors import RbvError, printable
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.serve.actions import Actions
from rbv.serve.crops import CropCache
from rbv.serve.pages import Pages
from rbv.serve.queue import SuggestionQueue
from rbv.serve.response import Response
from rbv.store.connection import Database

MAX_BODY = 1 << 20


class ReviewServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, db: Database, cache_dir: Path, *, host: str = "127.0.0.1",
                 port: int = 0, pack_name: str | None = None,
                 max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS) -> None:
        super().__init__((host, port), _Handler)
        self.token = secrets.token_urlsafe(32)
        self.queue = queue = SuggestionQueue(db, pack_name)
        self.actions = Actions(db, queue)
        self.pages = Pages(db, queue, self.token)
        self.crops = CropCache(db, cache_dir, max_pixels)
        bound = self.server_address[1]
        self.port = int(bound)
        self.host_name = host

    def host_allowed(self, header: str) -> bool:
        """A Host header names this server when its port is ours and its name is an IP
        address, ``localhost`` or the name given to ``--host``. A DNS name of someone
        else's (DNS rebinding: evil.example resolved to 127.0.0.1) never is."""
        name, _, port = header.rpartition(":")
        if port != str(self.port) or not name:
            return False
        if name in ("localhost", self.host_name):
            return True
        try:
            ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
        except ValueError:
            return False
        return True

    @property
    def url(self) -> str:
        host = str(self.server_address[0])
        return f"http://{host}:{self.port}/"

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        self.queue.warm()
        super().serve_forever(poll_interval)

    def start_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        return thread


class _Handler(BaseHTTPRequestHandler):
    server: ReviewServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # one line per request would drown the terminal

    def _send(self, r: Response) -> None:
        self.send_response(r.status)
        self.send_header("Content-Type", r.content_type)
        self.send_header("Content-Length", str(len(r.body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("X-Frame-Options", "DENY")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy",
                         "default-src 'self'; img-src 'self'; frame-ancestors 'none'")
        self.send_header("Cache-Control", "private, max-age=3600" if r.cache else "no-store")
        if r.location:
            self.send_header("Location", r.location)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(r.body)

    def _refuse(self, status: int, why: str) -> None:
        self.close_connection = True  # an unread body must not be taken for a request
        self._send(Response(status, json.dumps({"ok": False, "error": why}).encode(),
                            "application/json"))

    def _host_ok(self) -> bool:
        return self.server.host_allowed(self.headers.get("Host", ""))

    def do_GET(self) -> None:  # noqa: N802
        if not self._host_ok():
            self._refuse(421, "unknown Host header")
            return
        parts = urlsplit(self.path)
        try:
            self._send(self.server.pages.get(parts.path, parse_qs(parts.query),
                                             self.server.crops))
        except RbvError as exc:
            self._send(Response(404, self.server.pages.error(str(exc)).encode()))
        except Exception as exc:  # a bug: one line on the terminal, a page that says so
            self._unexpected(exc)

    def _unexpected(self, exc: Exception) -> None:
        message = f"unexpected {type(exc).__name__}: {printable(str(exc))} (a bug in rbv)"
        sys.stderr.write(f"Error: {self.command} {printable(self.path)}: {message}\n")
        self.close_connection = True
        self._send(Response(500, json.dumps({"ok": False, "error": message}).encode(),
                            "application/json"))

    do_HEAD = do_GET

    def do_POST(self) -> None:  # noqa: N802
        if not self._host_ok():
            self._refuse(421, "unknown Host header")
            return
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host', '')}":
            self._refuse(403, "cross-origin request refused")
            return
        sent = self.headers.get("X-RBV-Token", "")
        if not secrets.compare_digest(sent.encode(), self.server.token.encode()):
            self._refuse(403, "missing or wrong token: reload the page")
            return
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            self._refuse(415, "send JSON")
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._refuse(413, "request too large")
            return
        path = urlsplit(self.path).path
        if not path.startswith("/api/"):
            self._refuse(404, "no such action")
            return
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError:
            self._refuse(400, "the request is not a JSON object")
            return
        try:
            answer = self.server.actions.run(path[len("/api/"):], body)
            status = 200 if answer.get("ok") else 409
        except RbvError as exc:
            answer, status = {"ok": False, "error": printable(str(exc))}, 409
        except Exception as exc:
            self._unexpected(exc)
            return
        self._send(Response(status, json.dumps(answer).encode(), "application/json"))

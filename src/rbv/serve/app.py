"""The ``rbv serve`` web application: Starlette routes served by uvicorn, with the
checks every request passes before a route sees it.

- The Host header must name this server (an IP address, localhost or the ``--host``
  name, with its port): a page on another site that rebinds its DNS name to 127.0.0.1
  is refused.
- Every request carries the session cookie that the printed URL's key gave the browser
  of the person who started the server, and is under the start's secret path
  (:mod:`rbv.serve.access`): another local user sees nothing, even with the cookie.
- A request that changes anything is a POST of JSON carrying the server's secret token
  (in each page it serves, readable only by pages of this origin), from no other
  origin, typed exactly ``application/json``: another site's form or script cannot
  change data.
- A connection must send a request's headers within :data:`HEADER_TIMEOUT` seconds of
  opening (or of its last answer) and its body within :data:`BODY_TIMEOUT` seconds of
  its headers, and one idle after an answer is closed: no connection is held open by
  sending nothing, or a byte at a time. A client gone before its body is whole is no
  error: nothing is printed.
- Images are found by face or photo id (integers in the URL), never by a path.
- Bad input is a 400 with one line (:mod:`rbv.serve.inputs`), never a 500; a database
  that went away is a 503 page that needs no database, and the next request connects
  again (starting the embedded server again, as a command would).
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import secrets
import socket
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, parse_qsl

import psycopg
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from rbv.config import Settings
from rbv.errors import DatabaseUnavailable, EmbeddedServerError, RbvError, Refused, printable
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.serve import inputs, remedies
from rbv.serve.access import Access, opener
from rbv.serve.actions import Actions
from rbv.serve.crops import CropCache
from rbv.serve.interpreter import RequestsUnderWay, behind_the_answers
from rbv.serve.pages import Pages
from rbv.serve.queue import SuggestionQueue
from rbv.store.server.connection import Database, PooledDatabase, connection_lost

MAX_BODY = 1 << 20
HEADER_TIMEOUT = 10
"""Seconds a connection has to send a request's headers (uvicorn's own timeout only
closes a connection idle after an answer)."""
BODY_TIMEOUT = 10
"""Seconds a request has to send its body (at most :data:`MAX_BODY`) after its headers."""
IDLE_TIMEOUT = 5
"""Seconds a connection may stay idle after an answer."""
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"), (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy",
     b"default-src 'self'; img-src 'self'; frame-ancestors 'none'"),
]


def _refusal(status: int, why: str) -> JSONResponse:
    return JSONResponse({"ok": False, "error": why}, status,
                        headers={"Connection": "close"})


def _unexpected(method: str, path: str, exc: Exception) -> JSONResponse:
    """A bug: one line on the terminal, an answer that says so."""
    message = f"unexpected {type(exc).__name__}: {printable(str(exc))} (a bug in rbv)"
    sys.stderr.write(f"Error: {method} {printable(path)}: {message}\n")
    return JSONResponse({"ok": False, "error": message}, 500)


def _database_lost(exc: Exception) -> str | None:
    """What went wrong, in words, when ``exc`` says the database server is gone (stopped,
    killed, restarting, unreachable); None for any other error."""
    if isinstance(exc, DatabaseUnavailable | EmbeddedServerError):
        return str(exc)
    return connection_lost(exc)


def _failure(server: ReviewServer, request: Request, exc: Exception, *, page: bool
             ) -> Response:
    """The answer to a request that raised: a 400 for bad input, a 503 while the database
    is gone (the kept connections are dropped: the next request connects again), a 500
    for a bug. None of these answers reads the database."""
    if isinstance(exc, inputs.BadRequest):
        status, message = exc.status, str(exc)
    elif isinstance(exc, RecursionError):
        status, message = 400, "the request is nested too deeply"
    elif isinstance(exc, psycopg.DataError):  # a value PostgreSQL refuses: the input's
        status, message = 400, f"the database refused a value of the request: {exc}"
    elif (lost := _database_lost(exc)) is not None:
        server.db.forget()
        status, message = 503, (f"{lost}. Reload once it is back; rbv serve connects again "
                                "by itself (and starts its embedded server again)")
    else:
        return _unexpected(request.method, request.url.path, exc)
    message = printable(message.splitlines()[0] if message else "")
    if page:
        return server.pages.plain(
            "Database unavailable" if status == 503 else "Bad request", message, status)
    return JSONResponse({"ok": False, "error": message}, status)


class _Guard:
    """Host check on every request; origin, token, type and size checks on writes;
    security headers on every answer."""

    def __init__(self, app: ASGIApp, server: ReviewServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        refusal = self._refusal(scope)
        if refusal is not None:  # the sign-in redirect too: no Referer carries its key
            await refusal(scope, receive, with_headers)
            return
        # the routes see the path under the start's secret folder (as a mounted app)
        with self.server.under_way.answering():  # work behind the answers waits
            await self.app({**scope, "root_path": self.server.access.base}, receive,
                           with_headers)

    def _refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        if not self.server.host_allowed(host):
            return _refusal(421, "unknown Host header")
        signed_out = self.server.access.check(scope)
        if signed_out is not None:
            return signed_out
        try:
            inputs.query_values(parse_qsl(scope.get("query_string", b"").decode("latin-1"),
                                          keep_blank_values=True))
        except inputs.BadRequest as exc:
            return _refusal(400, str(exc))
        if scope["method"] in ("GET", "HEAD"):
            return None
        if scope["method"] != "POST":
            return _refusal(405, "only GET and POST")
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            return _refusal(403, "cross-origin request refused")
        sent = headers.get("x-rbv-token", "")
        if not secrets.compare_digest(sent.encode(), self.server.token.encode()):
            return _refusal(403, "missing or wrong token: reload the page")
        if not inputs.json_type(headers.get("content-type", "")):
            return _refusal(415, "send JSON (Content-Type: application/json)")
        try:
            length = int(headers.get("content-length") or 0)
        except ValueError:
            return _refusal(400, "bad Content-Length")
        if length > MAX_BODY:
            return _refusal(413, "request too large")
        return None


def _query(request: Request) -> dict[str, list[str]]:
    return parse_qs(request.url.query)


def _guarded(call: Callable[[Request], Response]) -> Callable[[Request], Awaitable[Response]]:
    """A page route: run in a worker thread (pages read the database); an RbvError is a
    404 page with its message, anything else a bug reported on one line."""
    async def endpoint(request: Request) -> Response:
        server: ReviewServer = request.app.state.server
        try:
            return await run_in_threadpool(call, request)
        except Exception as exc:
            if isinstance(exc, RbvError) and _database_lost(exc) is None:
                return await run_in_threadpool(server.pages.message, "Not found", str(exc))
            return await run_in_threadpool(_failure, server, request, exc, page=True)
    return endpoint


def _routes(server: ReviewServer) -> list[Route]:
    pages = server.pages

    def person(r: Request) -> Response:
        return pages.person(uuid.UUID(str(r.path_params["person"])), _query(r))

    async def action(request: Request) -> Response:
        body = b""
        try:
            async for chunk in request.stream():
                body += chunk
                if len(body) > MAX_BODY:
                    return _refusal(413, "request too large")
        except ClientDisconnect:  # gone (or cut off when late): no one reads an answer
            return Response(status_code=400)
        try:
            data = json.loads(body or b"{}")
            if not isinstance(data, dict):
                raise ValueError("not an object")
        except RecursionError:
            return _refusal(400, "the request is nested too deeply")
        except ValueError:
            return _refusal(400, "the request is not a JSON object")
        try:
            inputs.text_only(data)
        except inputs.BadRequest as exc:
            return _refusal(exc.status, str(exc))
        try:
            answer: dict[str, Any] = await run_in_threadpool(
                server.actions.run, request.path_params["action"], data)
        except Exception as exc:
            if isinstance(exc, RbvError) and _database_lost(exc) is None:
                refusal: dict[str, Any] = {"ok": False, "error": printable(str(exc))}
                if isinstance(exc, Refused):
                    refusal |= {"kind": exc.kind, "remedies": remedies.buttons(
                        exc, request.path_params["action"], data)}
                return JSONResponse(refusal, 409)
            return await run_in_threadpool(_failure, server, request, exc, page=False)
        return JSONResponse(answer, 200 if answer.get("ok") else 409)

    get = ["GET", "HEAD"]
    return [
        Route("/", _guarded(lambda r: pages.people(_query(r))), methods=get),
        Route("/static/{name}", _guarded(lambda r: pages.static(r.path_params["name"])),
              methods=get),
        Route("/face/{face:int}.jpg", _guarded(lambda r: pages.face(r.path_params["face"])),
              methods=get),
        Route("/photo/{image:int}.jpg",
              _guarded(lambda r: pages.photo_jpeg(r.path_params["image"])), methods=get),
        Route("/photo/{image:int}",
              _guarded(lambda r: pages.photo(r.path_params["image"], _query(r))),
              methods=get),
        Route("/photo-of/{face:int}",
              _guarded(lambda r: pages.photo_of_face(r.path_params["face"])), methods=get),
        Route("/person/{person:uuid}", _guarded(person), methods=get),
        Route("/person/{person:uuid}/confirm", _guarded(
            lambda r: pages.confirm(uuid.UUID(str(r.path_params["person"])))), methods=get),
        Route("/suggestions", _guarded(lambda r: pages.suggestions(_query(r))), methods=get),
        Route("/review", _guarded(lambda r: pages.review(_query(r))), methods=get),
        Route("/grid", _guarded(lambda r: pages.grid(_query(r))), methods=get),
        Route("/pairs", _guarded(lambda r: pages.pairs(_query(r))), methods=get),
        Route("/history", _guarded(lambda r: pages.history()), methods=get),
        Route("/photos", _guarded(lambda r: pages.photos(_query(r))), methods=get),
        Route("/api/names", _guarded(lambda r: pages.names(_query(r))), methods=get),
        Route("/api/{action}", action, methods=["POST"]),
        Route("/favicon.ico", lambda r: Response(status_code=204), methods=get),
    ]


def build_app(server: ReviewServer) -> ASGIApp:
    async def not_found(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException) and exc.status_code == 405:
            return _refusal(405, "method not allowed here")
        if request.method == "POST":
            return _refusal(404, "no such action")
        return server.pages.plain("Not found", "no such page", 404)

    app = Starlette(routes=_routes(server),
                    exception_handlers={404: not_found, 405: not_found})
    app.state.server = server
    return _Guard(app, server)


class _Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 connection with a deadline for each request's headers and one
    for its body: one that sends nothing, or its headers or body a byte at a time, is
    closed after :data:`HEADER_TIMEOUT` (then :data:`BODY_TIMEOUT`) seconds instead of
    being held open for ever."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._deadline = self.loop.call_later(HEADER_TIMEOUT, self._too_slow)

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before:  # a request's headers are in: now its body is due
            self._deadline.cancel()
            self._deadline = self.loop.call_later(BODY_TIMEOUT, self._too_slow)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._deadline.cancel()  # the next request's headers have a deadline of their own
        self._deadline = self.loop.call_later(HEADER_TIMEOUT, self._too_slow)

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline.cancel()
        super().connection_lost(exc)

    def _too_slow(self) -> None:
        """Close the connection unless its request is whole (being answered)."""
        cycle = self.cycle
        waiting = (cycle is None or cycle.response_complete
                   or (cycle.more_body and not cycle.response_started))
        if waiting and not self.transport.is_closing():
            self.transport.close()


def _bind(host: str, port: int) -> socket.socket:
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family)


class ReviewServer:
    """The application over one library, listening on ``host``:``port`` (0: any free
    port) from construction on, so its URL is known before it serves."""

    def __init__(self, db: Database, cache_dir: Path, *, host: str = "127.0.0.1",
                 port: int = 0, pack_name: str | None = None,
                 max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
                 settings: Settings | None = None, rank_apart: bool = True) -> None:
        """``settings``: what drawing a face reads the photos and loads the pack with
        (default: the defaults, the library's pack). ``rank_apart``: whole rankings are
        made in a process of their own (:mod:`rbv.serve.ranking_process`), read back
        between the requests under way; without it, in a thread of the server."""
        self.token = secrets.token_urlsafe(32)
        self.cache_dir = cache_dir
        self.db = db = PooledDatabase(db)
        self.crops = CropCache(db, cache_dir, max_pixels)
        # rankings behind the answers with the collector off and a 1 ms thread switch
        # (measured: rbv.serve.interpreter, scripts/README.md bench_serve.py)
        self.under_way = RequestsUnderWay()
        self.queue = queue = SuggestionQueue(
            db, pack_name, cache_dir / "suggestions.json", behind=behind_the_answers,
            apart=self.under_way.wait if rank_apart else None)
        self.actions = Actions(db, queue, settings)
        self.socket = _bind(host, port)
        self.port = int(self.socket.getsockname()[1])
        self.access = Access(self.port)
        self.pages = Pages(db, queue, self.token, self.crops, self.access.base)
        self.host_name = host
        self._uvicorn = uvicorn.Server(uvicorn.Config(
            build_app(self), http=_Protocol, log_level="warning", log_config=None,
            access_log=False, lifespan="off", server_header=False,
            timeout_keep_alive=IDLE_TIMEOUT, timeout_graceful_shutdown=5))
        self._thread: threading.Thread | None = None

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
    def address(self) -> str:
        """The server's root URL on this machine (a server listening on every address,
        0.0.0.0 or ::, is opened through the loopback), without the key."""
        host = str(self.socket.getsockname()[0])
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}/"

    @property
    def url(self) -> str:
        """The URL to print and open: :attr:`address` with the key that signs a browser
        in (a secret: shown once, to the person who started the server)."""
        return self.access.url(self.address)

    def opener(self) -> Path:
        """A page (its user's alone) that opens :attr:`url`, for ``--open`` to give the
        browser instead of the URL, so the key is on no command line; removed by
        :meth:`server_close`."""
        return opener(self.cache_dir / f"open-{self.port}.html", self.url)

    def serve_forever(self) -> None:
        """Serve until Ctrl-C (or :meth:`shutdown`); suggestions are ranked meanwhile."""
        self.queue.warm()
        self._uvicorn.run(sockets=[self.socket])

    def start_in_thread(self) -> threading.Thread:
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._serve()), daemon=True)
        self._thread.start()
        while not self._uvicorn.started and self._thread.is_alive():
            time.sleep(0.01)
        return self._thread

    async def _serve(self) -> None:
        self.queue.warm()
        await self._uvicorn.serve(sockets=[self.socket])

    def shutdown(self) -> None:
        self._uvicorn.should_exit = True
        if self._thread is not None:
            self._thread.join()

    def server_close(self) -> None:
        self.queue.close()
        self.socket.close()
        self.db.close()
        (self.cache_dir / f"open-{self.port}.html").unlink(missing_ok=True)

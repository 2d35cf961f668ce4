"""A threaded HTTP server on 127.0.0.1 that the fakes start, stop and restart."""

from __future__ import annotations

import contextlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class _ClientsMayHangUp(BaseHTTPRequestHandler):
    # An answer's headers and body go out in two writes; with Nagle's algorithm the
    # second waits for the client's delayed acknowledgement (40 ms on Linux), as no
    # real server's answer does.
    disable_nagle_algorithm = True

    def handle(self) -> None:
        # A client that gave up before the answer (a timeout test) is no server error:
        # socketserver would print its traceback into the test run's output.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            super().handle()


class LoopbackServer:
    """Serves ``handler_class`` (whose ``fake`` attribute is set to this object) on a
    free loopback port; after ``stop()`` new connections are refused, and ``start()``
    listens again on the same port. A client that hangs up before its answer is not
    reported."""

    handler_class: type[BaseHTTPRequestHandler]

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        handler: Any = type("Handler", (_ClientsMayHangUp, self.handler_class),
                            {"fake": self})
        server = ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()
        return self

    def stop(self) -> None:
        """Close the listening socket: new connections are refused."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

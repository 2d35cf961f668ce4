"""A running ``rbv serve`` over a clustered copy of the indexed test library, and a
plain urllib client for it (shared by the serve tests)."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rbv.config import Settings
from rbv.serve.app import ReviewServer
from rbv.store import open_database


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    def __init__(self, server: ReviewServer) -> None:
        self.base = f"http://127.0.0.1:{server.port}"
        self.token = server.token

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> Reply:
        req = urllib.request.Request(self.base + path, data=body, method=method,
                                     headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return Reply(r.status, r.read(), dict(r.headers))
        except urllib.error.HTTPError as exc:
            return Reply(exc.code, exc.read(), dict(exc.headers))

    def get(self, path: str, **headers: str) -> Reply:
        return self.request("GET", path, headers=headers)

    def post(self, action: str, data: dict[str, Any], *, token: str | None = "",
             **headers: str) -> Reply:
        sent = {"Content-Type": "application/json", **headers}
        if token is not None:
            sent["X-RBV-Token"] = token or self.token
        return self.request("POST", f"/api/{action}", json.dumps(data).encode(), sent)


@contextmanager
def serving(settings: Settings, cache: Path) -> Iterator[tuple[ReviewServer, Client]]:
    server = ReviewServer(open_database(settings), cache, port=0)
    server.start_in_thread()
    try:
        yield server, Client(server)
    finally:
        server.shutdown()
        server.server_close()


def face_ids(page: str) -> list[int]:
    return [int(f) for f in re.findall(r'data-face="(\d+)"', page)]

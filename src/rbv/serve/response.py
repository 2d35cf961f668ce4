"""What a route answers: status, body and the few headers that vary."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Response:
    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    location: str | None = None
    cache: bool = False

"""What ``rbv serve`` takes from a request, checked before anything reads the database:
ids are JSON integers (never a string, a float or ``true``) within PostgreSQL's
``bigint``; counts are within their range; text holds no control character (PostgreSQL
cannot store NUL, and a name is plain text); at most :data:`MAX_FACES` face ids per
request. Anything else is a :class:`BadRequest`: a 400 (413 for too many) with one
line saying what was wrong."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

MAX_ID = 2**63 - 1
"""The largest PostgreSQL ``bigint``: no face, photo or edit id is larger."""
MAX_FACES = 10_000
"""Face ids one request may name: more than any page shows at once."""
MAX_UNDO = 1_000
"""Edits one undo may take back."""


class BadRequest(Exception):
    """A request ``rbv serve`` refuses, with one line saying why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _shown(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


def whole(value: object, what: str, low: int = 1, high: int = MAX_ID) -> int:
    """``value`` when it is a JSON integer from ``low`` to ``high``."""
    if type(value) is not int:  # bool is an int to Python, never an id to rbv
        raise BadRequest(f"{what} must be a whole number, not {_shown(value)}")
    if not low <= value <= high:
        raise BadRequest(f"{what} {_shown(value)} is out of range ({low:,} to {high:,})")
    return value


def face_ids(body: Mapping[str, Any], key: str = "faces") -> list[int]:
    """The ``faces`` (``key``) of a request: a list of face ids (empty or absent: an
    empty list)."""
    value = body.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{key} must be a list of face ids, not {_shown(value)}")
    if len(value) > MAX_FACES:
        raise BadRequest(f"{len(value):,} faces in one request; at most {MAX_FACES:,}: "
                         "select fewer", 413)
    return [whole(v, "a face id") for v in value]


def optional_whole(body: Mapping[str, Any], key: str, default: int | None, high: int
                   ) -> int | None:
    """``body[key]`` as a whole number from 1 to ``high``, or ``default`` when absent."""
    value = body.get(key)
    return default if value is None else whole(value, key, 1, high)


def plain(value: str, what: str) -> str:
    """``value`` when it holds no control character (a NUL, an escape sequence)."""
    bad = next((c for c in value if ord(c) < 32 or 127 <= ord(c) < 160), None)
    if bad is not None:
        raise BadRequest(f"{what} holds a control character ({bad!r}); use plain text")
    return value


def query_values(pairs: list[tuple[str, str]]) -> None:
    """Refuse an address whose query holds a NUL (``%00``): no page searches for one,
    and PostgreSQL cannot take it."""
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            raise BadRequest("the address holds a NUL character (%00); remove it")

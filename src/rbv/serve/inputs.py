"""What ``rbv serve`` takes from a request, checked before anything reads the database:
ids are JSON integers (never a string, a float or ``true``) within PostgreSQL's
``bigint``; counts are within their range; text is what a name may be (the rule the CLI
and imports share, :mod:`rbv.formats.names`: at most 200 characters, no control character, no
lone surrogate such as ``"\\ud800"``); at most :data:`MAX_FACES` face ids per request;
a body is sent as exactly ``application/json``. Anything else is a :class:`BadRequest`:
a 400 (413 for too many, 415 for another type) with one line saying what was wrong."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import date
from email.message import Message
from typing import Any

from rbv.bounds import BIGINT_MAX
from rbv.errors import ConfigError
from rbv.formats.names import PersonName, person_name, unfit_text
from rbv.jobs.persons.shown import FaceShown, PersonShown, Shown

MAX_FACES = 10_000
"""Face ids one request may name: more than any page shows at once."""
MAX_UNDO = 1_000
"""Edits one undo may take back."""
MAX_PIXELS = 1_000_000
"""The largest coordinate a box on a photo may have (the photo's own size bounds it
further, checked by the edit)."""


class BadRequest(Exception):
    """A request ``rbv serve`` refuses, with one line saying why."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _shown(value: object) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 40 else text[:37] + "…"


def whole(value: object, what: str, low: int = 1, high: int = BIGINT_MAX) -> int:
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
    """``value`` when a name could be so (see :mod:`rbv.formats.names`)."""
    problem = unfit_text(value)
    if problem is not None:
        raise BadRequest(f"{what} {problem}")
    return value


def name_text(value: str, what: str) -> PersonName:
    """``value`` as a person's name (:func:`rbv.formats.names.person_name`), else a 400."""
    try:
        return person_name(value, what)
    except ConfigError as exc:
        raise BadRequest(str(exc)) from None


def text_only(body: object) -> None:
    """Refuse a JSON document holding a string that is not text: ``"\\ud800"`` decodes
    to a lone surrogate, which no page sends and PostgreSQL cannot take."""
    stack = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= c <= "\udfff" for c in item):
                raise BadRequest("the request holds a lone UTF-16 surrogate (\\ud800 to "
                                 "\\udfff), which is not text")
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def json_type(content_type: str) -> bool:
    """True for exactly ``application/json``, with at most a ``charset=utf-8``."""
    header = Message()
    header["content-type"] = content_type
    params = header.get_params() or []
    return (content_type.split(";", 1)[0].strip().lower() == "application/json"
            and all(k.lower() == "charset" and v.lower() in ("utf-8", "utf8")
                    for k, v in params[1:]))


def query_whole(query: Mapping[str, list[str]], key: str, default: int, low: int,
                high: int) -> int:
    """The address's ``key`` (its first value) as a whole number from ``low`` to
    ``high``, or ``default`` when the address has none."""
    values = query.get(key)
    if not values:
        return default
    text = values[0]
    if re.fullmatch(r"-?[0-9]{1,20}", text) is None or not low <= int(text) <= high:
        raise BadRequest(f"{key} must be a whole number from {low:,} to {high:,}, "
                         f"not {_shown(text)}")
    return int(text)


def query_choice(query: Mapping[str, list[str]], key: str, default: str,
                 choices: Sequence[str]) -> str:
    """The address's ``key`` (its first value): one of ``choices``, or ``default`` when
    the address has none."""
    values = query.get(key)
    if not values:
        return default
    if values[0] not in choices:
        raise BadRequest(f"{key} must be one of {', '.join(choices)}, not "
                         f"{_shown(values[0])}")
    return values[0]


def query_values(pairs: list[tuple[str, str]]) -> None:
    """Refuse an address whose query holds a NUL (``%00``): no page searches for one,
    and PostgreSQL cannot take it."""
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:
            raise BadRequest("the address holds a NUL character (%00); remove it")


def shown(body: Mapping[str, Any]) -> Shown | None:
    """What the page an answer was made on showed (``shown``: ``{"persons": [{"id",
    "name", "hidden", and "born" with "cover" where it showed them}], "faces": [{"id",
    "person", "by"}]}``), for the edit to check is still so; None when the answer sends
    none (a script's)."""
    value = body.get("shown")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadRequest(f"shown must be an object, not {_shown(value)}")
    persons, faces = value.get("persons") or [], value.get("faces") or []
    if not isinstance(persons, list) or not isinstance(faces, list):
        raise BadRequest("shown's persons and faces must be lists")
    if len(persons) + len(faces) > MAX_FACES:
        raise BadRequest(f"shown names more than {MAX_FACES:,} things", 413)
    return Shown(tuple(_person_shown(p) for p in persons),
                 tuple(_face_shown(f) for f in faces))


def _entry(value: object, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{what} must be an object, not {_shown(value)}")
    return value


def _uuid(value: object, what: str) -> uuid.UUID:
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise BadRequest(f"{what} is not a person id: {_shown(value)}")


def _optional_text(value: object, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{what} must be text or null, not {_shown(value)}")
    return plain(value, what)


def _person_shown(value: object) -> PersonShown:
    entry = _entry(value, "a person shown")
    hidden = entry.get("hidden")
    if not isinstance(hidden, bool):
        raise BadRequest(f"a person shown's hidden must be true or false, not {_shown(hidden)}")
    details = None
    if "born" in entry or "cover" in entry:
        born = _optional_text(entry.get("born"), "a person shown's born")
        try:
            day = date.fromisoformat(born) if born else None
        except ValueError:
            raise BadRequest(f"a person shown's born is no date: {_shown(born)}") from None
        cover = entry.get("cover")
        details = (day, None if cover is None else whole(cover, "a person shown's cover"))
    return PersonShown(_uuid(entry.get("id"), "a person shown's id"),
                       _optional_text(entry.get("name"), "a person shown's name") or None,
                       hidden, details)


def _face_shown(value: object) -> FaceShown:
    entry = _entry(value, "a face shown")
    person, box = entry.get("person"), entry.get("box")
    if box is not None and (not isinstance(box, list) or len(box) != 4):
        raise BadRequest(f"a face shown's box must be [x1, y1, x2, y2], not {_shown(box)}")
    return FaceShown(whole(entry.get("id"), "a face shown's id"),
                     None if person is None else _uuid(person, "a face shown's person"),
                     _optional_text(entry.get("by"), "a face shown's by") or None,
                     None if box is None else corners(box, "a face shown's box"))


def corners(values: list[Any], what: str) -> tuple[int, int, int, int]:
    """A box as [x1, y1, x2, y2], whole pixels of a photo: positive in size, bounded."""
    x1, y1, x2, y2 = (whole(v, what, 0, MAX_PIXELS) for v in values)
    if x2 <= x1 or y2 <= y1:
        raise BadRequest(f"{what} [{x1}, {y1}, {x2}, {y2}] has no size: x2 must exceed x1 "
                         "and y2 y1")
    return x1, y1, x2, y2

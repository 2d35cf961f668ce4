"""A refusal's remedies (:class:`rbv.errors.Remedy`) as the buttons a page offers: each
one the action and body the page posts to do it, so a refused merge of two named
persons offers "Keep the name 'Ada'" and "Keep the name 'Bob'", an edit against earlier
decisions "Override". A remedy no page action does gets no button (the message still
says what it would take)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Any

from rbv.errors import Refused, Remedy

Body = dict[str, Any]


def _merge(args: Mapping[str, Any]) -> tuple[str, Body] | None:
    persons = args["persons"]
    if len(persons) != 2:  # a page merges one person into another
        return None
    body: Body = {"person": str(persons[0]), "source": str(persons[1])}
    for key in ("keep_name", "keep_born"):
        if args.get(key) is not None:
            body[key] = args[key]
    return "merge", body


def _move(args: Mapping[str, Any]) -> tuple[str, Body] | None:
    faces = [int(f) for f in args["faces"]]
    if args.get("to") is None:
        return "new", {"faces": faces}
    if not isinstance(args["to"], uuid.UUID):  # a person the user picks: no one button
        return None
    return "move", {"faces": faces, "to": str(args["to"])}


_ACTIONS: dict[str, Callable[[Mapping[str, Any]], tuple[str, Body] | None]] = {
    "merge": _merge,
    "move": _move,
    "name": lambda a: ("name", {"person": str(a["person"]), "name": a["name"], "force": True}),
    "cover": lambda a: ("cover", {"person": str(a["person"]), "face": int(a["face"])}),
    "not_this_person": lambda a: ("reject", {"person": str(a["person"]),
                                             "faces": [int(f) for f in a["faces"]]}),
    "is_a_face": lambda a: ("isface", {"faces": [int(f) for f in a["faces"]]}),
    "unhide": lambda a: ("unhide", {"person": str(a["person"])}),
}
"""The remedies a page's action does, by the page action and the body it posts. A
split (its halves are the page's), a birthday (a date to pick) and the commands that
show or index are left to the page itself and the terminal."""


def _button(remedy: Remedy, action: str, body: Body) -> dict[str, Any] | None:
    if remedy.action == "override":
        return {"label": remedy.label or "Override", "action": action,
                "body": {**body, "override": True}}
    make = _ACTIONS.get(remedy.action)
    done = make(remedy.args) if make else None
    if done is None:
        return None
    label = remedy.label[:1].upper() + remedy.label[1:]
    return {"label": label, "action": done[0], "body": done[1]}


def buttons(refused: Refused, action: str, body: Body) -> list[dict[str, Any]]:
    """The remedies of ``refused`` (an answer to ``action`` with ``body``) as buttons:
    ``label``, and the ``action`` and ``body`` to post."""
    return [b for b in (_button(r, action, body) for r in refused.remedies) if b]

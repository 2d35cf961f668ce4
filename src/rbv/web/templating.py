"""The HTML templates ``rbv site`` and ``rbv serve`` share: Jinja2 templates under
``templates/`` (a common page skeleton, face tiles, persons' labels and suggestion
pairs; ``site/`` and ``serve/`` hold each one's pages).

Every value put into a page is HTML-escaped (autoescape) after control characters and
undecodable bytes are made printable: names are typed by users and read from sidecars,
paths come from disks, so all of it is hostile input. Links are built from uuids and
integer ids only."""

from __future__ import annotations

import functools
import uuid
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from rbv.errors import printable
from rbv.words import counted


def label(person: uuid.UUID | str | None, name: str | None) -> str:
    """How a person is called on a page: its name, or ``unnamed`` and its id's start."""
    if person is None:
        return "no person"
    return name or f"unnamed {str(person)[:8]}"


def _finalize(value: Any) -> Any:
    if isinstance(value, str) and not isinstance(value, Markup):
        return printable(value)
    return value


@functools.cache
def environment() -> Environment:
    env = Environment(loader=PackageLoader("rbv.web", "templates"), autoescape=True,
                      undefined=StrictUndefined, finalize=_finalize, trim_blocks=True,
                      lstrip_blocks=True, keep_trailing_newline=True)
    env.globals.update(label=label, count=counted)
    env.filters["thousands"] = lambda n: f"{int(n):,}"
    return env


def render(template: str, **values: Any) -> str:
    return environment().get_template(template).render(**values)

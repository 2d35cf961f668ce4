"""A page shown before a terminal edit cannot silently undo it (issue 62 #3): each answer
a page posts carries what the page showed (read here from the page's HTML, as its script
reads it), and the server refuses, with a 409 naming what changed and when and changing
nothing, an answer whose page is out of date. A page loaded after the change is
answered as before."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import psycopg
import pytest

from rbv.config import Settings
from rbv.serve.app import ReviewServer
from tests.conftest import run_cli
from tests.serve_client import (
    Client,
    database_state,
    face_ids,
    identity_of_persons,
    two_largest_persons,
)

pytestmark = pytest.mark.slow  # a served library, clustered, per test


class _Shown(HTMLParser):
    """What app.js's shownFor reads: the person page's head and each face shown."""

    def __init__(self) -> None:
        super().__init__()
        self.head: dict[str, str] = {}
        self.faces: dict[int, dict[str, str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if "head" in a.get("class", "").split() and "data-person" in a:
            self.head = a
        if "data-shown-face" in a:
            self.faces[int(a["data-shown-face"])] = a


def shown(page: str, faces: list[int] = ()) -> dict[str, Any]:  # type: ignore[assignment]
    """The ``shown`` the page's script sends with an answer about ``faces``."""
    found = _Shown()
    found.feed(page)
    h = found.head
    persons = [{"id": h["data-person"], "name": h.get("data-shown-name") or None,
                "hidden": h.get("data-shown-hidden") == "true",
                "born": h.get("data-shown-born") or None,
                "cover": int(h["data-shown-cover"]) if h.get("data-shown-cover") else None,
                }] if h else []
    return {"persons": persons, "faces": [
        {"id": f, "person": found.faces[f].get("data-shown-person") or None,
         "by": found.faces[f].get("data-shown-by") or None}
        for f in faces if f in found.faces]}


def _cli(cli: Any, url: str, *args: str) -> None:
    done = run_cli(cli, "-d", url, *args)
    assert done.exit_code == 0, done.output


def _refused(reply: Any, *words: str) -> None:
    assert reply.status == 409, reply.text
    error = reply.json()["error"]
    assert error.startswith("this page is out of date: "), error
    assert "\n" not in error and "nothing was changed" in error, error
    for word in words:
        assert word in error, error


def test_a_rename_from_a_page_shown_before_the_terminal_named_the_person_is_refused(
        cli, served: tuple[ReviewServer, Client], faces_settings: Settings,  # type: ignore[no-untyped-def]
        ) -> None:
    _, client = served
    url = str(faces_settings.database_url)
    person, _ = two_largest_persons(url)
    page = client.get(f"/person/{person}").text
    _cli(cli, url, "persons", "name", person, "Alice")
    before = database_state(url)

    reply = client.post("name", {"person": person, "name": "Bob", "shown": shown(page)})
    _refused(reply, "named 'Alice' now", "showed it unnamed", "by edit #", "persons name")
    assert database_state(url) == before

    # the page reloaded shows Alice: its rename goes through
    page = client.get(f"/person/{person}").text
    reply = client.post("name", {"person": person, "name": "Bob", "shown": shown(page)})
    assert reply.status == 200 and reply.json()["message"] == "Named 'Bob'", reply.text


@pytest.mark.parametrize("action", ["move", "notface", "reject", "new", "same"])
def test_a_face_answer_from_a_page_shown_before_the_terminal_placed_it_by_hand_is_refused(
        cli, served: tuple[ReviewServer, Client], faces_settings: Settings,  # type: ignore[no-untyped-def]
        action: str) -> None:
    """The terminal places a face by hand (into the person it is in: the page still
    shows it there, placed automatically); the page's answer about it is refused."""
    _, client = served
    url = str(faces_settings.database_url)
    person, other = two_largest_persons(url)
    page = client.get(f"/person/{person}").text
    face, second = face_ids(page)[:2]
    _cli(cli, url, "persons", "move", str(face), "--to", person)
    before = database_state(url)

    faces = [face, second] if action == "same" else [face]
    data = {"faces": faces, "shown": shown(page, faces)}
    data |= {"to": other} if action == "move" else {"person": person} if action == "reject" else {}
    _refused(client.post(action, data), f"face {face} is in ", "placed by hand now",
             "placed automatically", "by edit #")
    assert database_state(url) == before


@pytest.mark.parametrize(("action", "data", "command"), [
    ("hide", {}, ["persons", "name", "{p}", "Alice"]),
    ("born", {"born": "1990-05-06"}, ["persons", "born", "{p}", "1980-01-02"]),
    ("cover", {"face": "{f}"}, ["persons", "cover", "{p}", "{g}"]),
    ("name", {"name": "Bob"}, ["persons", "hide", "{p}"]),
])
def test_a_person_answer_from_a_page_shown_before_the_terminal_changed_it_is_refused(
        cli, served: tuple[ReviewServer, Client], faces_settings: Settings,  # type: ignore[no-untyped-def]
        action: str, data: dict[str, Any], command: list[str]) -> None:
    _, client = served
    url = str(faces_settings.database_url)
    person, _ = two_largest_persons(url)
    page = client.get(f"/person/{person}").text
    face, second = face_ids(page)[:2]
    fill: dict[str, Any] = {"{p}": person, "{f}": face, "{g}": str(second)}
    _cli(cli, url, *(str(fill.get(c, c)) for c in command))
    before = database_state(url)
    with psycopg.connect(url) as conn:
        persons = conn.execute("SELECT id, hidden, born, cover_face_id FROM persons "
                               "ORDER BY id").fetchall()

    body = {"person": person, **{k: fill.get(v, v) for k, v in data.items()},
            "shown": shown(page, [face] if action == "cover" else [])}
    _refused(client.post(action, body), f"person {person[:8]}", "by edit #")
    assert database_state(url) == before
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT id, hidden, born, cover_face_id FROM persons "
                            "ORDER BY id").fetchall() == persons


def test_a_split_from_a_page_shown_before_the_terminal_named_the_person_is_refused(
        cli, served: tuple[ReviewServer, Client], faces_settings: Settings,  # type: ignore[no-untyped-def]
        ) -> None:
    """Two persons merged by hand look like two people; the page offers the split; the
    terminal names the person meanwhile: the split of the unnamed person shown is
    refused (the halves are the same: only what the page showed tells)."""
    _, client = served
    url = str(faces_settings.database_url)
    who = identity_of_persons(url)
    obama, angelina = (next(p for p, w in who.items() if w == name)
                       for name in ("Barack_Obama", "Angelina_Jolie"))
    _cli(cli, url, "persons", "merge", obama, angelina)
    kept = obama if client.get(f"/person/{obama}").status == 200 else angelina
    page = client.get(f"/person/{kept}").text
    assert "Split in two" in page, page
    sides = re.search(r'data-kept="([\d ]*)" data-moved="([\d ]*)"', page)
    assert sides is not None
    kept_ids, moved_ids = ([int(f) for f in s.split()] for s in sides.groups())
    _cli(cli, url, "persons", "name", kept, "Alice")
    before = database_state(url)

    reply = client.post("split", {"person": kept, "kept": kept_ids, "moved": moved_ids,
                                  "shown": shown(page, [*kept_ids, *moved_ids])})
    _refused(reply, "named 'Alice' now")
    assert database_state(url) == before

""""Looks like two people" answered "they are one person" (issue 30): one click on the
person page records the answer as one logged edit (the person's faces linked `same`),
after which the page, `rbv persons review` and `rbv persons split` agree that the person
is one, until it gains faces that look like a second person; one Undo takes it back.
Real faces: two identities of data/faces put together by hand, as a user joins a child
young and old."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import psycopg
from playwright.sync_api import Page, expect

from rbv.config import Settings
from rbv.serve.app import ReviewServer
from tests.conftest import run_cli
from tests.serve_client import Client, database_state
from tests.test_split_review import _agree, _faces_of, _json, _person_of_most


def _halves(client: Client, person: str) -> tuple[list[int], list[int]] | None:
    """The halves the person page shows with "Looks like two people" (None: not shown)."""
    page = client.get(f"/person/{person}").text
    found = re.search(r'data-kept="([\d ]*)" data-moved="([\d ]*)"', page)
    if found is None:
        assert "Looks like two people" not in page and "They are one person" not in page
        return None
    assert "Looks like two people (" in page and "They are one person" in page
    kept, moved = ([int(f) for f in side.split()] for side in found.groups())
    return kept, moved


def test_one_person_is_one_undoable_answer_that_review_and_split_keep(
        cli, served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    url = str(faces_settings.database_url)
    obama, angelina = (_person_of_most(faces_settings, who)
                       for who in ("Barack_Obama", "Angelina_Jolie"))
    assert client.post("merge", {"person": obama, "source": angelina}).status == 200
    shown = _halves(client, obama)
    assert shown is not None
    kept, moved = shown
    before = database_state(url)

    # A page that showed other halves (the person changed since): refused, nothing changes
    stale = client.post("one", {"person": obama, "kept": kept[1:], "moved": [*moved, kept[0]]})
    assert stale.status == 409 and "changed since it was shown" in stale.json()["error"]
    assert database_state(url) == before

    answer = client.post("one", {"person": obama, "kept": kept, "moved": moved})
    assert answer.status == 200, answer.text
    assert _faces_of(url, obama) == sorted(kept + moved)  # no face moved
    with psycopg.connect(url) as conn:
        logged = conn.execute("SELECT id, command FROM person_edits WHERE id >= %s",
                              (answer.json()["edit"],)).fetchall()
    assert logged == [(answer.json()["edit"], "persons one")]  # one edit
    # the page, review and split say one person; a full re-cluster keeps it whole
    assert _halves(client, obama) is None
    assert _agree(cli, url, obama) is None
    assert "looks like two people" not in run_cli(cli, "-d", url, "persons", "review",
                                                  obama).stdout
    largest = {p["person"]["id"]: p["two_people"]
               for p in _json(cli, url, "persons", "review")["persons"]}
    assert largest[obama] is None

    # one Undo takes the answer back: two people again, as shown
    undone = client.post("undo", {"edit": answer.json()["edit"], "count": 1})
    assert undone.status == 200, undone.text
    assert database_state(url)[:3] == before[:3]  # the persons, rejections and links
    assert _halves(client, obama) == (kept, moved)

    # answered again: a full re-cluster keeps the person whole and not flagged
    assert client.post("one", {"person": obama, "kept": kept, "moved": moved}).status == 200
    assert run_cli(cli, "-d", url, "cluster", "--full").exit_code == 0
    assert set(kept + moved) <= set(_faces_of(url, obama))
    assert _agree(cli, url, obama) is None

    # faces that look like a second person, gained later, are flagged again: the new
    # ones, the answered faces staying together
    katy = _person_of_most(faces_settings, "Katy_Perry")
    added = _faces_of(url, katy)
    assert len(added) >= 2 and katy != obama
    merged = run_cli(cli, "-d", url, "persons", "merge", obama, katy)
    assert merged.exit_code == 0, merged.output
    again = _agree(cli, url, obama)
    assert again is not None
    assert added in (again["kept"], again["moved"])


def test_they_are_one_person_is_one_click_in_the_browser(  # type: ignore[no-untyped-def]
        cli, page: Page, served: tuple[ReviewServer, Client],
        faces_settings: Settings) -> None:
    """The button in Chromium: one click, the page comes back without "Looks like two
    people" and with the edit's Undo in its toast, and that Undo brings it back."""
    server, client = served
    url = str(faces_settings.database_url)
    obama, angelina = (_person_of_most(faces_settings, who)
                       for who in ("Barack_Obama", "Angelina_Jolie"))
    assert run_cli(cli, "-d", url, "persons", "merge", obama, angelina).exit_code == 0
    before, faces = database_state(url), _faces_of(url, obama)
    page.clock.install()  # the toast's Undo stays up on a loaded machine
    page.clock.pause_at(datetime.now() + timedelta(seconds=1))
    page.goto(server.url)  # signs the browser in
    page.goto(f"{client.base}/person/{obama}")
    expect(page.locator(".two-people")).to_be_visible()
    page.get_by_role("button", name="They are one person").click()
    expect(page.locator("#toast-undo")).to_be_visible()
    expect(page.locator(".two-people")).to_have_count(0)
    assert _agree(cli, url, obama) is None
    assert _faces_of(url, obama) == faces  # no face moved
    page.locator("#toast-undo").click()
    expect(page.locator(".two-people")).to_be_visible()
    assert database_state(url)[:3] == before[:3]

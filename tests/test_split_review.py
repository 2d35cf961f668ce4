"""`rbv persons split` makes the decision `rbv persons review` reports (issue 30 #6): one
test, one setting, so a person review calls two people splits into review's halves (two
people merged by hand: `test_persons_review.py`) and a person review leaves alone stays
whole; and `rbv serve` offers that split as one click (issue 30 #5), one logged edit
undone by one Undo, refused when the person changed since the page showed it. Real faces
throughout."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import datetime, timedelta

import psycopg
import pytest
from playwright.sync_api import Page, expect

from rbv.config import Settings
from rbv.serve.app import ReviewServer
from rbv.store import open_database
from tests.conftest import SHARED, run_cli
from tests.serve_client import Client, database_state
from tests.test_cluster_runs import _main_faces
from tests.test_persons_cli import _assignments

pytestmark = pytest.mark.slow  # ~8 s: split reviews with cluster runs

YOUNG_AND_OLD = SHARED / "data" / "family" / "faces" / "lag_al_pacino"
"""One person photographed young and adult (5 photos): the two-people test calls it one
person, and re-clustering it at the library's setting (the old `persons split` default)
took one face of the five away."""


def _json(cli, url: str, *args: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    done = run_cli(cli, "-d", url, *args, "--json")
    assert done.exit_code == 0, done.output
    return json.loads(done.stdout)


def _faces_of(url: str, person: str) -> list[int]:
    with psycopg.connect(url) as conn:
        return sorted(int(f) for (f,) in conn.execute(
            "SELECT id FROM face_detections WHERE person_id = %s", (person,)))


def _person_of_most(settings: Settings, identity: str) -> str:
    """The person holding most of ``identity``'s labelled faces (data/faces)."""
    labels = _main_faces(settings)
    with psycopg.connect(str(settings.database_url)) as conn:
        person = dict(conn.execute("SELECT id, person_id::text FROM face_detections"))
    return Counter(person[f] for f, who in labels.items() if who == identity
                   ).most_common(1)[0][0]


def _agree(cli, url: str, person: str) -> dict | None:  # type: ignore[no-untyped-def,type-arg]
    """Review's verdict on ``person`` and what `persons split --dry-run` would do, checked
    to be one decision; review's two halves (None: one person)."""
    said = _json(cli, url, "persons", "review", person, "--limit", "1")["two_people"]
    would = _json(cli, url, "persons", "split", person, "--dry-run")
    if said is None:
        assert would["sizes"] == [len(_faces_of(url, person))], (person, would)
        return None
    assert would["sizes"] == [len(said["kept"]), len(said["moved"])], (said, would)
    assert (would["two_people"]["kept"], would["two_people"]["moved"]) == (
        said["kept"], said["moved"])
    return said  # type: ignore[no-any-return]


def test_split_does_what_review_says(cli, faces_settings: Settings, sface_analyzer) -> None:  # type: ignore[no-untyped-def]
    from rbv.jobs.library.index import run_index

    url = str(faces_settings.database_url)
    run_index(open_database(faces_settings), faces_settings, sorted(YOUNG_AND_OLD.iterdir()),
              analyzer=sface_analyzer)
    assert run_cli(cli, "-d", url, "cluster").exit_code == 0
    # Every person of the default clustering: review and split say one thing. Those it
    # calls two people (a few faces of group photos joined to an identity) split so.
    persons = _json(cli, url, "persons", "list", "--min-faces", "4", "--limit", "0")
    flagged = [(p["id"], said) for p in persons
               if (said := _agree(cli, url, p["id"])) is not None]
    assert flagged
    for person, said in flagged:
        assert said["command"].split()[-1] == person[:8]  # the id as users read it
        done = run_cli(cli, "-d", url, "persons", "split", said["command"].split()[-1],
                       "--json")
        (new,) = json.loads(done.stdout)["new_persons"]
        assert (_faces_of(url, person), _faces_of(url, new)) == (said["kept"], said["moved"])

    # One person young and adult, put together by hand: review sees one person, and the
    # split leaves it whole (the old default took a face away).
    with psycopg.connect(url) as conn:
        pacino = [int(f) for (f,) in conn.execute(
            "SELECT f.id FROM face_detections f JOIN image_paths p ON p.image_id = f.image_id "
            "WHERE p.path LIKE %s", (f"{YOUNG_AND_OLD}/%",))]
    assert len(pacino) == 5
    made = _json(cli, url, "persons", "move", *map(str, pacino))
    assert _agree(cli, url, made["person"]) is None
    whole = run_cli(cli, "-d", url, "persons", "split", made["person"])
    assert whole.exit_code == 0, whole.output
    assert "stays whole with review's two-people test" in whole.stdout, whole.stdout
    assert _faces_of(url, made["person"]) == sorted(pacino)


def test_faces_linked_same_stay_in_one_half_of_review_and_of_the_split(
        cli, faces_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster").exit_code == 0
    obama, angelina = (_person_of_most(faces_settings, who)
                       for who in ("Barack_Obama", "Angelina_Jolie"))
    one, two = _faces_of(url, obama), _faces_of(url, angelina)
    assert run_cli(cli, "-d", url, "persons", "merge", obama, angelina).exit_code == 0
    linked = (one[0], two[0])
    assert run_cli(cli, "-d", url, "faces", "same", *map(str, linked)).exit_code == 0

    halves = _agree(cli, url, obama)
    assert halves is not None
    together = [side for side in (halves["kept"], halves["moved"]) if linked[0] in side]
    assert linked[1] in together[0]
    # the same halves when review reads every person of the library at once
    largest = {p["person"]["id"]: p["two_people"]
               for p in _json(cli, url, "persons", "review")["persons"]}
    assert (largest[obama]["kept"], largest[obama]["moved"]) == (halves["kept"],
                                                                halves["moved"])
    assert _json(cli, url, "persons", "split", obama)["sizes"] == [
        len(halves["kept"]), len(halves["moved"])]
    placed = _assignments(faces_settings)
    assert placed[linked[0]][0] == placed[linked[1]][0]
    assert run_cli(cli, "-d", url, "cluster", "--full").exit_code == 0
    assert _assignments(faces_settings) == placed
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM must_links").fetchone() == (1,)


def _two_people_page(client: Client, person: str) -> tuple[list[int], list[int]]:
    page = client.get(f"/person/{person}").text
    found = re.search(r'data-kept="([\d ]*)" data-moved="([\d ]*)"', page)
    assert found is not None, page
    assert "Looks like two people (" in page and "Split in two" in page
    kept, moved = ([int(f) for f in side.split()] for side in found.groups())
    # the faces the split would move are marked on the page
    assert all(f'other-half" data-face="{f}"' in page for f in moved)
    return kept, moved


def test_the_page_splits_a_person_as_review_shows_it_in_one_undoable_click(
        cli, served: tuple[ReviewServer, Client], faces_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    _, client = served
    url = str(faces_settings.database_url)
    obama, angelina = (_person_of_most(faces_settings, who)
                       for who in ("Barack_Obama", "Angelina_Jolie"))
    assert client.post("merge", {"person": obama, "source": angelina}).status == 200
    kept, moved = _two_people_page(client, obama)
    said = _json(cli, url, "persons", "review", obama)["two_people"]
    assert (said["kept"], said["moved"]) == (kept, moved)  # the page shows review's halves
    before = database_state(url)

    answer = client.post("split", {"person": obama, "kept": kept, "moved": moved})
    assert answer.status == 200, answer.text
    assert _faces_of(url, obama) == kept
    with psycopg.connect(url) as conn:
        (new,) = {str(p) for (p,) in conn.execute(
            "SELECT person_id FROM face_detections WHERE id = ANY(%s)", (moved,))}
        logged = conn.execute("SELECT id, command FROM person_edits WHERE id > %s",
                              (answer.json()["edit"] - 1,)).fetchall()
    assert new != obama and _faces_of(url, new) == moved
    assert logged == [(answer.json()["edit"], "persons split")]  # one edit
    assert "Looks like two people" not in client.get(f"/person/{obama}").text

    undone = client.post("undo", {"edit": answer.json()["edit"], "count": 1})
    assert undone.status == 200, undone.text
    assert database_state(url)[:3] == before[:3]  # the persons, rejections and links
    assert _two_people_page(client, obama) == (kept, moved)

    # The person changed since the page showed it (a command took a face out): refused,
    # nothing changes.
    assert run_cli(cli, "-d", url, "persons", "move", str(moved[0])).exit_code == 0
    changed = database_state(url)
    stale = client.post("split", {"person": obama, "kept": kept, "moved": moved})
    assert stale.status == 409
    assert "changed since it was shown" in stale.json()["error"]
    assert database_state(url) == changed


def test_split_in_two_is_one_click_in_the_browser(  # type: ignore[no-untyped-def]
        cli, page: Page, served: tuple[ReviewServer, Client],
        faces_settings: Settings) -> None:
    """The button in Chromium: one click splits the person as the page showed it, the
    page comes back whole with the edit's Undo in its toast, and that Undo puts it back."""
    server, client = served
    url = str(faces_settings.database_url)
    obama, angelina = (_person_of_most(faces_settings, who)
                       for who in ("Barack_Obama", "Angelina_Jolie"))
    assert run_cli(cli, "-d", url, "persons", "merge", obama, angelina).exit_code == 0
    before = database_state(url)
    # the page's clock stands still: the toast's Undo stays up on a loaded machine
    page.clock.install()
    page.clock.pause_at(datetime.now() + timedelta(seconds=1))
    page.goto(server.url)  # signs the browser in
    page.goto(f"{client.base}/person/{obama}")
    halves = page.locator(".two-people")
    expect(halves).to_be_visible()
    kept, moved = ([int(f) for f in (halves.get_attribute(side) or "").split()]
                   for side in ("data-kept", "data-moved"))
    assert kept and moved
    page.get_by_role("button", name="Split in two").click()
    expect(page.locator("#toast-undo")).to_be_visible()
    expect(page.locator(".two-people")).to_have_count(0)
    assert _faces_of(url, obama) == kept
    with psycopg.connect(url) as conn:
        (new,) = {str(p) for (p,) in conn.execute(
            "SELECT person_id FROM face_detections WHERE id = ANY(%s)", (moved,))}
    assert new != obama and _faces_of(url, new) == moved
    page.locator("#toast-undo").click()
    expect(page.locator(".two-people")).to_be_visible()
    assert database_state(url)[:3] == before[:3]  # the persons, rejections and links

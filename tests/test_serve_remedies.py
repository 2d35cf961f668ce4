"""Issue 63: a refusal that has a remedy shows a button that does it. In a real
headless Chromium, the person page's "Merge in" of a person of another name is refused
(two names: which stays?) with one button per name; the button merges, keeping that
name, and the page follows to the person kept. An edit against an earlier decision
offers "Override", which does it."""

from __future__ import annotations

import re
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Page, expect

from rbv.config import Settings
from tests.conftest import run_cli
from tests.serve_client import serving, two_largest_persons
from tests.support.browser import watch_errors

pytestmark = pytest.mark.slow  # a real headless Chromium


def _ok(cli, url: str, *args: str) -> None:  # type: ignore[no-untyped-def]
    done = run_cli(cli, "-d", url, *args)
    assert done.exit_code == 0, done.output


def test_a_refused_merge_offers_a_button_per_name_and_the_button_merges(  # type: ignore[no-untyped-def]
        cli, page: Page, faces_settings: Settings, tmp_path: Path) -> None:
    url = str(faces_settings.database_url)
    _ok(cli, url, "cluster", "--threshold", "0.7")
    ada, grace = two_largest_persons(url)
    _ok(cli, url, "persons", "name", ada, "Ada")
    _ok(cli, url, "persons", "name", grace, "Grace")
    errors = watch_errors(page)
    with serving(faces_settings, tmp_path / "cache") as (server, client):
        page.goto(server.url)
        page.goto(f"{client.base}/person/{ada}")
        page.locator("details.more summary").click()  # folded under the faces' controls
        with page.expect_response(re.compile(r"/api/merge")) as answer:
            page.locator("#merge-in").fill(grace)
            page.locator('[data-act="merge"]').click()
        assert answer.value.status == 409
        toast = page.locator("#toast")
        expect(toast).to_contain_text("these persons have different names")
        expect(toast).not_to_contain_text("--keep-name")  # no command line in a page
        buttons = toast.locator("button.remedy")
        expect(buttons).to_have_text(["Keep the name 'Ada'", "Keep the name 'Grace'"])
        with page.expect_event("load"):  # the merge follows to the person kept
            buttons.nth(1).click()
        expect(page.locator("h1")).to_have_text("Grace")
        assert page.url.endswith(f"/person/{grace}")
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT merged_into::text FROM persons WHERE id = %s",
                            (ada,)).fetchone() == (grace,)
        assert conn.execute("SELECT name FROM person_names WHERE person_id = %s",
                            (grace,)).fetchall() == [("Grace",)]
    assert [e for e in errors if "status of 409" not in e] == []  # the refusal itself


def test_a_move_against_an_earlier_decision_offers_override(  # type: ignore[no-untyped-def]
        cli, page: Page, faces_settings: Settings, tmp_path: Path) -> None:
    """Two faces linked as different people, on one person's page: "Merge in" of the
    other's person is refused naming the link, with "Override", which merges and says
    what it overrode."""
    url = str(faces_settings.database_url)
    _ok(cli, url, "cluster", "--threshold", "0.7")
    one, two = two_largest_persons(url)
    with psycopg.connect(url) as conn:
        a, b = (conn.execute("SELECT min(id) FROM face_detections WHERE person_id = %s",
                             (p,)).fetchone()[0] for p in (one, two))
    _ok(cli, url, "faces", "different", str(a), str(b))
    with serving(faces_settings, tmp_path / "cache") as (server, client):
        page.goto(server.url)
        page.goto(f"{client.base}/person/{one}")
        page.locator("details.more summary").click()
        page.locator("#merge-in").fill(two)
        page.locator('[data-act="merge"]').click()
        toast = page.locator("#toast")
        expect(toast).to_contain_text("earlier decisions keep apart")
        expect(toast).not_to_contain_text("--override")
        button = toast.locator("button.remedy")
        expect(button).to_have_text(["Override"])
        with page.expect_event("load"):
            button.click()
        expect(page.locator("#toast")).to_contain_text("Merged")
    with psycopg.connect(url) as conn:
        merged = conn.execute("SELECT merged_into::text FROM persons WHERE id IN (%s, %s)",
                              (one, two)).fetchall()
        assert sorted(m for (m,) in merged if m) in ([one], [two])


def test_a_move_of_a_face_marked_not_a_face_offers_it_is_a_face_and_that_button_works(  # type: ignore[no-untyped-def]
        cli, faces_settings: Settings, tmp_path: Path) -> None:
    """The refusal's remedy ("it is a face") comes back as the action and body a page
    posts; posting them takes the mark back, and the move then goes through."""
    url = str(faces_settings.database_url)
    _ok(cli, url, "cluster", "--threshold", "0.7")
    one, two = two_largest_persons(url)
    with psycopg.connect(url) as conn:
        face = conn.execute("SELECT min(id) FROM face_detections WHERE person_id = %s",
                            (one,)).fetchone()[0]
    _ok(cli, url, "faces", "not-a-face", str(face))
    with serving(faces_settings, tmp_path / "cache") as (_, client):
        refused = client.post("move", {"faces": [face], "to": two})
        assert refused.status == 409, refused.text
        answer = refused.json()
        assert answer["kind"] == "not_a_face" and "--" not in answer["error"]
        assert [(b["action"], b["body"]) for b in answer["remedies"]] == [
            ("isface", {"faces": [face]})]
        assert answer["remedies"][0]["label"] == "It is a face"
        assert client.post("isface", answer["remedies"][0]["body"]).status == 200
        moved = client.post("move", {"faces": [face], "to": two})
        assert moved.status == 200, moved.text
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT person_id::text FROM face_detections WHERE id = %s",
                            (face,)).fetchone() == (two,)


def test_every_remedy_a_page_can_do_is_a_button_for_an_action_serve_has() -> None:
    """Each remedy serve words as a button names an action of serve's own, with the
    body that action reads; one serve cannot do (a birthday to pick) has none."""
    import uuid

    from rbv.errors import Refused, Remedy
    from rbv.serve.actions import Actions
    from rbv.serve.remedies import buttons

    who = uuid.uuid4()
    refused = Refused("no", kind="test", remedies=[
        Remedy("not_this_person", {"person": who, "faces": [3, 4]}, "take them out"),
        Remedy("is_a_face", {"faces": [5]}, "it is a face"),
        Remedy("unhide", {"person": who}, "show it again"),
        Remedy("born", {"person": who}, "give its birthday")])
    made = buttons(refused, "move", {})
    assert [(b["label"], b["action"], b["body"]) for b in made] == [
        ("Take them out", "reject", {"person": str(who), "faces": [3, 4]}),
        ("It is a face", "isface", {"faces": [5]}),
        ("Show it again", "unhide", {"person": str(who)})]
    actions = Actions(None, None)  # type: ignore[arg-type]  # only its table is read
    assert {b["action"] for b in made} <= set(actions.table)

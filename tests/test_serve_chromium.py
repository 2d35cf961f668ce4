"""`rbv serve` clicked through in a real headless Chromium (Debian's chromium, driven by
Playwright): a person names two persons, takes three faces out with click + shift-click,
accepts one merge suggestion with the keyboard, dismisses another, and undoes the last
edit from the toast; the database ends exactly where the same CLI commands leave a twin
library. Screenshots of every page are kept."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Page, expect

from rbv.config import Settings
from tests.conftest import run_cli
from tests.serve_client import database_state, person_there, serving, twin_database
from tests.support.browser import broken_images, wait_for_visible_images, watch_errors

pytestmark = pytest.mark.slow  # a real headless Chromium


def _rows(settings: Settings, query: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(str(settings.database_url)) as conn:
        return [tuple(r) for r in conn.execute(query, args)]


@contextmanager
def _page_server(body: bytes) -> Iterator[tuple[int, list[str]]]:
    """A plain HTTP server on 127.0.0.1 (another site, or another user's server) that
    answers every GET with the page ``body``: its port, and the Cookie header each
    request carried."""
    cookies: list[str] = []

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            cookies.append(self.headers.get("Cookie") or "")
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], cookies
    finally:
        server.shutdown()
        server.server_close()


def _look(page: Page, shots: Path, name: str) -> None:
    wait_for_visible_images(page)
    broken = broken_images(page, visible=True)
    assert broken == [], (name, broken)
    page.screenshot(path=shots / name)
    assert (shots / name).stat().st_size > 10_000


def test_a_person_reviews_a_library_in_the_browser(  # type: ignore[no-untyped-def]
        cli, page: Page, faces_settings: Settings, tmp_path: Path, pg_server,
        faces_template: str) -> None:
    """Each click is followed by the CLI command that does the same on a twin library;
    at the end both databases hold the same persons, names, rejections, links and edit
    log."""
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    twin = twin_database(cli, pg_server, faces_template)

    def cli_too(*args: str) -> None:
        done = run_cli(cli, "-d", twin, *args)
        assert done.exit_code == 0, done.output
    shots = tmp_path / "screenshots"
    shots.mkdir()
    # The page's clock stands still: a toast (and its Undo) stays up however long the
    # test takes between two clicks on a loaded machine.
    page.clock.install()
    page.clock.pause_at(datetime.now() + timedelta(seconds=1))
    errors = watch_errors(page)
    with serving(faces_settings, tmp_path / "cache") as (server, client):
        page.goto(server.url)  # signs the browser in, lands on "/"
        assert page.url == client.base + "/"
        assert errors == []
        _look(page, shots, "people.png")
        first = page.locator("a.card").nth(0).get_attribute("href")
        second = page.locator("a.card").nth(1).get_attribute("href")
        assert first and second

        for href, name in ((first, "Ada Lovelace"), (second, "Grace <b>Hopper</b>")):
            cli_too("persons", "name", person_there(url, twin, href.rsplit("/", 1)[1]), name)
            page.goto(client.origin + href)
            with page.expect_response(re.compile(r"/api/names\?")):  # the type-ahead
                page.locator("#rename").fill(name)
            with page.expect_event("load"):  # the edit reloads the page
                page.locator('[data-act="name"]').click()
            expect(page.locator("h1")).to_have_text(name)
            expect(page.locator("#toast")).to_contain_text("Named")
        person = href.rsplit("/", 1)[1]
        names = {r[0] for r in _rows(faces_settings, "SELECT name FROM person_names")}
        assert names == {"Ada Lovelace", "Grace <b>Hopper</b>"}

        # Three faces out: click the first, shift-click the third.
        shown = page.locator("#faces .face")
        faces = [int(f) for f in shown.evaluate_all("fs => fs.map(f => f.dataset.face)")]
        shown.nth(0).locator("img").click()
        shown.nth(2).locator("img").click(modifiers=["Shift"])
        expect(page.locator("#selected")).to_have_text("3 selected")
        _look(page, shots, "person-selected.png")
        cli_too("persons", "not-this-person", person_there(url, twin, person),
                *map(str, faces[:3]))
        with page.expect_event("load"):
            page.locator('[data-act="reject"]').click()
        rejected = _rows(faces_settings, "SELECT face_id FROM person_rejections "
                         "WHERE person_id = %s ORDER BY face_id", person)
        assert [r[0] for r in rejected] == sorted(faces[:3])
        _look(page, shots, "person-after-reject.png")

        # One suggestion accepted with the keyboard, the next one dismissed.
        page.goto(client.base + "/suggestions")
        _look(page, shots, "suggestion.png")
        keep = page.locator(".pair").get_attribute("data-keep")
        other = page.locator(".pair").get_attribute("data-other")
        assert keep and other
        cli_too("persons", "merge", person_there(url, twin, keep), person_there(url, twin, other))
        with page.expect_event("load"):
            page.keyboard.press("y")
        merged = _rows(faces_settings, "SELECT merged_into::text FROM persons WHERE id = %s",
                       other)
        assert merged == [(keep,)]
        links = set(_rows(faces_settings, "SELECT face_a, face_b FROM cannot_links"))
        with page.expect_event("load"):
            page.locator('[data-act="dismiss"]').click()
        (pair,) = set(_rows(faces_settings, "SELECT face_a, face_b FROM cannot_links")) - links
        cli_too("faces", "different", *map(str, pair))

        # The toast's undo takes the dismissal back.
        with page.expect_event("load"):
            page.locator("#toast-undo").click()
        cli_too("persons", "undo")
        assert set(_rows(faces_settings, "SELECT face_a, face_b FROM cannot_links")) == links
        expect(page.locator("#toast")).to_contain_text("Undid")

        page.goto(client.base + "/history")
        _look(page, shots, "history.png")
        face = faces[3]
        page.goto(client.base + f"/photo-of/{face}")
        _look(page, shots, "photo.png")
        expect(page.locator(".box").first).to_be_attached()
        assert errors == []
    assert database_state(url) == database_state(twin)
    print(f"\nscreenshots of rbv serve: {shots}")


def test_another_site_open_in_the_browser_cannot_change_anything(
        cli, page: Page, faces_settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A page of another origin, open in the same (signed-in) browser, posts to rbv
    serve with a form (text/plain, the one body type a form can send as JSON-looking
    text) and with fetch: the session cookie is not sent (SameSite=Strict), the page's
    token is missing, and the origin is another: both are refused."""
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    person = _rows(faces_settings, "SELECT person_id::text FROM face_detections "
                   "WHERE person_id IS NOT NULL LIMIT 1")[0][0]
    with serving(faces_settings, tmp_path / "cache") as (server, client):
        page.goto(server.url)  # signed in: its cookie is in this browser
        target = client.base + "/api/name"
        body = json.dumps({"person": person, "name": "Mallory"})
        evil_page = f"""<!DOCTYPE html><html><body>
<form id="f" method="POST" action="{target}" enctype="text/plain">
<input name='{body[:-1]}, "x": "' value='"}}'></form>
<script>
fetch({json.dumps(target)}, {{method: "POST", mode: "no-cors",
  headers: {{"Content-Type": "text/plain"}}, body: {json.dumps(body)}}})
  .catch(() => null).finally(() => {{ document.title = "sent";
    document.getElementById("f").submit(); }});
</script></body></html>""".encode()

        with _page_server(evil_page) as (port, _):
            page.goto(f"http://localhost:{port}/")
            # The form's answer replaces the page: wait until it is rbv's refusal.
            page.wait_for_url(re.compile(r"/api/name$"))
            answer = page.locator("body").inner_text()
        assert "cross-origin request refused" in answer or "token" in answer, answer
        assert _rows(faces_settings, "SELECT name FROM person_names") == []


def test_a_page_of_pairs_is_answered_with_clicks_and_enter(  # type: ignore[no-untyped-def]
        cli, page: Page, faces_settings: Settings, tmp_path: Path) -> None:
    """"Which of these pairs are one person?": a click on a pair ticks it, Enter answers
    the page: the ticked pair is one person, every other pair shown is marked as two
    people, in one edit that the toast's Undo takes back whole."""
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    page.clock.install()  # the toast stays up however slow the machine (as above)
    page.clock.pause_at(datetime.now() + timedelta(seconds=1))
    errors = watch_errors(page)
    with serving(faces_settings, tmp_path / "cache") as (server, client):
        page.goto(server.url)
        server.queue.warm().join()
        page.goto(client.base + "/pairs")
        _look(page, tmp_path, "pairs.png")
        ticks = page.locator(".candidate input")
        shown = ticks.evaluate_all("ts => ts.map(t => [t.dataset.keep, t.dataset.other])")
        assert 1 < len(shown) <= 24
        page.locator(".candidate").nth(0).locator("img").first.click()
        expect(ticks.nth(0)).to_be_checked()
        before = database_state(url)
        with page.expect_event("load"):
            page.keyboard.press("Enter")
        keep, other = shown[0]
        merged = _rows(faces_settings, "SELECT id::text, merged_into::text FROM persons "
                       "WHERE merged_into IS NOT NULL")
        assert merged in ([(other, keep)], [(keep, other)])
        apart = _rows(faces_settings, "SELECT count(*) FROM cannot_links")
        assert apart == [(len(shown) - 1,)]
        assert _rows(faces_settings, "SELECT command FROM person_edits") == [
            ("persons pairs",)]
        expect(page.locator("#toast")).to_contain_text("1 merged")
        with page.expect_event("load"):
            page.locator("#toast-undo").click()
        expect(page.locator("#toast")).to_contain_text("Undid")
        assert database_state(url)[:3] == before[:3]
        assert errors == []


def test_the_browser_never_sends_its_session_to_another_port(  # type: ignore[no-untyped-def]
        cli, page: Page, faces_settings: Settings, tmp_path: Path) -> None:
    """Issue 54 #3 as a browser does it: signed in to `rbv serve`, the browser opens a
    server another user runs on another port of 127.0.0.1 (one site to cookies). That
    server is sent no session cookie of rbv's, and the pages of rbv serve still work."""
    with serving(faces_settings, tmp_path / "cache") as (server, client):
        page.goto(server.url)
        assert page.url == client.base + "/" and page.title().startswith("People")
        with _page_server(b"<!DOCTYPE html><title>another user's server</title>"
                          ) as (port, sent):
            for path in ("/", "/api/names?q=a", "/s/x/"):
                page.goto(f"http://127.0.0.1:{port}{path}")
        assert len(sent) >= 3 and not any("rbv-session" in c for c in sent), sent
        page.goto(client.base + "/history")
        assert page.title().startswith("History")


def test_a_persons_faces_are_confirmed_and_a_box_moved_with_clicks(  # type: ignore[no-untyped-def]
        cli, page: Page, faces_settings: Settings, tmp_path: Path) -> None:
    """Issue 64 part 3 in the browser: the person page's header links to its confirm
    screen; "Not this person" takes the least alike face out, "Confirm all shown"
    confirms the rest of the screen; on a photo's page a face's box is typed and moved,
    and the toast's Undo puts it back."""
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    (person,), = _rows(faces_settings, "SELECT person_id::text FROM face_detections WHERE "
                       "person_id IS NOT NULL GROUP BY 1 ORDER BY count(*) DESC, 1 LIMIT 1")
    page.clock.install()  # the toast stays up however slow the machine (as above)
    page.clock.pause_at(datetime.now() + timedelta(seconds=1))
    errors = watch_errors(page)
    with serving(faces_settings, tmp_path / "cache") as (server, client):
        page.goto(server.url)
        page.goto(f"{client.base}/person/{person}")
        with page.expect_event("load"):
            page.locator("#to-confirm").click()
        _look(page, tmp_path, "confirm.png")
        shown = page.locator("#unconfirmed [data-shown-face]").evaluate_all(
            "fs => fs.map(f => Number(f.dataset.shownFace))")
        with page.expect_event("load"):
            page.locator(f'[data-face-act="reject"][data-face="{shown[0]}"]').click()
        expect(page.locator("#toast")).to_contain_text("taken out of this person")
        with page.expect_event("load"):
            page.locator('[data-act="confirm-all"]').click()
        expect(page.locator("#toast")).to_contain_text("Confirmed")
        placed = dict(_rows(faces_settings, "SELECT id, assigned_by FROM face_detections "
                            "WHERE person_id = %s", person))
        assert shown[0] not in placed
        assert all(placed[f] == "manual" for f in shown[1:])

        face = shown[1]
        (image, x1, y1, x2, y2), = _rows(
            faces_settings, "SELECT image_id, round(x1), round(y1), round(x2), round(y2) "
            "FROM face_detections WHERE id = %s", face)
        page.goto(f"{client.base}/photo/{image}")
        moved = [max(0, int(x1) - 4), max(0, int(y1) - 4), int(x2) - 4, int(y2) - 4]
        page.locator(f"#box-{face}").fill(",".join(map(str, moved)))
        with page.expect_event("load"):
            page.locator(f'[data-face-act="box"][data-face="{face}"]').click()
        expect(page.locator("#toast")).to_contain_text(f"Moved the box of face {face}")
        now = _rows(faces_settings, "SELECT round(x1), round(y1), round(x2), round(y2) FROM "
                    "face_detections WHERE id = %s", face)
        assert [int(v) for v in now[0]] == moved
        with page.expect_event("load"):
            page.locator("#toast-undo").click()
        expect(page.locator("#toast")).to_contain_text("Undid")
        now = _rows(faces_settings, "SELECT round(x1), round(y1), round(x2), round(y2) FROM "
                    "face_detections WHERE id = %s", face)
        assert now[0] == (x1, y1, x2, y2)
        assert errors == []

"""`rbv serve` clicked through in a real headless Chromium (Debian's chromium): a person
names two persons, takes three faces out with click + shift-click, accepts one merge
suggestion with the keyboard, dismisses another, and undoes the last edit from the
toast; the database ends exactly where the same CLI commands leave a twin library.
Screenshots of every page are kept."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from rbv.config import Settings
from tests.chromium import Browser, find_or_install_chromium
from tests.conftest import run_cli
from tests.serve_client import database_state, person_there, serving, twin_database

VISIBLE_BROKEN = ("JSON.stringify(Array.from(document.images).filter(i => "
                  "i.getBoundingClientRect().top < innerHeight && i.complete && "
                  "i.naturalWidth === 0).map(i => i.getAttribute('src')))")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = find_or_install_chromium()
    if executable is None:
        pytest.fail("Debian's chromium is needed to drive rbv serve and could not be "
                    "installed (apt-get install -y chromium)")
    b = Browser(executable)
    yield b
    b.close()


def _rows(settings: Settings, query: str, *args: object) -> list[tuple[object, ...]]:
    with psycopg.connect(str(settings.database_url)) as conn:
        return [tuple(r) for r in conn.execute(query, args)]


def _click_and_wait(browser: Browser, selector: str) -> None:
    """Click, then wait for the page the action reloads (or goes to) to be ready."""
    browser.evaluate("window.__old = true")
    browser.evaluate(f"document.querySelector({json.dumps(selector)}).click()")
    browser.wait_until("!window.__old && document.readyState === 'complete'")


def _look(browser: Browser, shots: Path, name: str) -> None:
    browser.wait_until("Array.from(document.images).filter(i => "
                       "i.getBoundingClientRect().top < innerHeight).every(i => i.complete)")
    broken = json.loads(browser.evaluate(VISIBLE_BROKEN))
    assert broken == [], (name, broken)
    assert browser.screenshot(shots / name).stat().st_size > 10_000


def test_a_person_reviews_a_library_in_the_browser(  # type: ignore[no-untyped-def]
        cli, browser: Browser, faces_settings: Settings, tmp_path: Path, pg_server,
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
    with serving(faces_settings, tmp_path / "cache") as (server, client):
        errors, _ = browser.open(server.url)  # signs the browser in, lands on "/"
        assert browser.evaluate("location.href") == client.base + "/"
        assert errors == []
        _look(browser, shots, "people.png")
        first = browser.evaluate("document.querySelector('a.card').getAttribute('href')")
        second = browser.evaluate(
            "document.querySelectorAll('a.card')[1].getAttribute('href')")

        for href, name in ((first, "Ada Lovelace"), (second, "Grace <b>Hopper</b>")):
            cli_too("persons", "name", person_there(url, twin, href.rsplit("/", 1)[1]), name)
            browser.open(client.base + href)
            browser.evaluate(f"document.getElementById('rename').value = {json.dumps(name)}")
            _click_and_wait(browser, '[data-act="name"]')
            assert browser.evaluate("document.querySelector('h1').textContent") == name
            assert "Named" in browser.evaluate("document.getElementById('toast').textContent")
        person = href.rsplit("/", 1)[1]
        names = {r[0] for r in _rows(faces_settings, "SELECT name FROM person_names")}
        assert names == {"Ada Lovelace", "Grace <b>Hopper</b>"}

        # Three faces out: click the first, shift-click the third.
        faces = browser.evaluate("Array.from(document.querySelectorAll('#faces .face'))"
                                 ".map(f => Number(f.dataset.face))")
        browser.evaluate("document.querySelectorAll('#faces .face')[0].click()")
        browser.evaluate("document.querySelectorAll('#faces .face')[2].dispatchEvent("
                         "new MouseEvent('click', {bubbles: true, shiftKey: true}))")
        assert browser.evaluate("document.getElementById('selected').textContent") == \
            "3 selected"
        _look(browser, shots, "person-selected.png")
        cli_too("persons", "not-this-person", person_there(url, twin, person),
                *map(str, faces[:3]))
        _click_and_wait(browser, '[data-act="reject"]')
        rejected = _rows(faces_settings, "SELECT face_id FROM person_rejections "
                         "WHERE person_id = %s ORDER BY face_id", person)
        assert [r[0] for r in rejected] == sorted(faces[:3])
        _look(browser, shots, "person-after-reject.png")

        # One suggestion accepted with the keyboard, the next one dismissed.
        browser.open(client.base + "/suggestions")
        _look(browser, shots, "suggestion.png")
        keep = browser.evaluate("document.querySelector('.pair').dataset.keep")
        other = browser.evaluate("document.querySelector('.pair').dataset.other")
        cli_too("persons", "merge", person_there(url, twin, keep), person_there(url, twin, other))
        browser.evaluate("window.__old = true; document.dispatchEvent("
                         "new KeyboardEvent('keydown', {key: 'y', bubbles: true}))")
        browser.wait_until("!window.__old && document.readyState === 'complete'")
        merged = _rows(faces_settings, "SELECT merged_into::text FROM persons WHERE id = %s",
                       other)
        assert merged == [(keep,)]
        links = set(_rows(faces_settings, "SELECT face_a, face_b FROM cannot_links"))
        _click_and_wait(browser, '[data-act="dismiss"]')
        (pair,) = set(_rows(faces_settings, "SELECT face_a, face_b FROM cannot_links")) - links
        cli_too("faces", "different", *map(str, pair))

        # The toast's undo takes the dismissal back.
        _click_and_wait(browser, "#toast-undo")
        cli_too("persons", "undo")
        assert set(_rows(faces_settings, "SELECT face_a, face_b FROM cannot_links")) == links
        assert "Undid" in browser.evaluate("document.getElementById('toast').textContent")

        browser.open(client.base + "/history")
        _look(browser, shots, "history.png")
        face = faces[3]
        browser.open(client.base + f"/photo-of/{face}")
        _look(browser, shots, "photo.png")
        assert browser.evaluate("document.querySelectorAll('.box').length") >= 1
        errors, _ = browser.problems()
        assert errors == []
    assert database_state(url) == database_state(twin)
    print(f"\nscreenshots of rbv serve: {shots}")


def test_another_site_open_in_the_browser_cannot_change_anything(
        cli, browser: Browser, faces_settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A page of another origin, open in the same (signed-in) browser, posts to rbv
    serve with a form (text/plain, the one body type a form can send as JSON-looking
    text) and with fetch: the session cookie is not sent (SameSite=Strict), the page's
    token is missing, and the origin is another: both are refused."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    person = _rows(faces_settings, "SELECT person_id::text FROM face_detections "
                   "WHERE person_id IS NOT NULL LIMIT 1")[0][0]
    with serving(faces_settings, tmp_path / "cache") as (server, client):
        browser.open(server.url)  # signed in: its cookie is in this browser
        target = client.base + "/api/name"
        body = json.dumps({"person": person, "name": "Mallory"})
        page = f"""<!DOCTYPE html><html><body>
<form id="f" method="POST" action="{target}" enctype="text/plain">
<input name='{body[:-1]}, "x": "' value='"}}'></form>
<script>
fetch({json.dumps(target)}, {{method: "POST", mode: "no-cors",
  headers: {{"Content-Type": "text/plain"}}, body: {json.dumps(body)}}})
  .catch(() => null).finally(() => {{ document.title = "sent";
    document.getElementById("f").submit(); }});
</script></body></html>""".encode()

        class Evil(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *args: object) -> None:
                pass

        evil = HTTPServer(("127.0.0.1", 0), Evil)
        threading.Thread(target=evil.serve_forever, daemon=True).start()
        try:
            browser.open(f"http://localhost:{evil.server_address[1]}/")
            # The form's answer replaces the page: wait until it is rbv's refusal.
            browser.wait_until("location.href.endsWith('/api/name') && "
                               "document.readyState === 'complete'")
            answer = browser.evaluate("document.body.innerText")
        finally:
            evil.shutdown()
            evil.server_close()
        assert "cross-origin request refused" in answer or "token" in answer, answer
        assert _rows(faces_settings, "SELECT name FROM person_names") == []

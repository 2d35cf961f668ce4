"""`rbv serve` read in a real headless Chromium at a desktop's 1280 px and a phone's 420 px
(issue 50 #4): no label is cut (each candidate's score and face count are on the page),
no page is wider than the window, the toast after an answer covers no button, Done with
nothing ticked on a screen of 5 or more asks once before storing, the people a person
named are first on the people page (and found by the search box), and the history names
persons as `rbv persons history` does."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from playwright.sync_api import Dialog, Page, expect

from rbv.config import Settings
from rbv.serve import screens
from rbv.web.templating import environment
from tests.conftest import run_cli
from tests.serve_client import serving
from tests.support.browser import wait_for_visible_images, watch_errors

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Every text that says who a tile is, with its score and face count.
LABELS = ".candidate > span, .card span, .side h2, .side p, #faces .face span, td"
# What a label cut short, or a page wider than its window, looks like from the outside.
CUT = f"""() => {{
  const cut = Array.from(document.querySelectorAll({LABELS!r}))
    .filter(e => e.scrollWidth > e.clientWidth || e.scrollHeight > e.clientHeight)
    .map(e => e.textContent);
  const wide = document.documentElement.scrollWidth > innerWidth ? ["page wider than window"] : [];
  return [...cut, ...wide];
}}"""
# The actions the toast lies on: each button, tick box and field it overlaps.
UNDER_TOAST = """() => {
  const t = document.getElementById("toast").getBoundingClientRect();
  return Array.from(document.querySelectorAll("button, label.candidate, input, select"))
    .filter(e => e.id !== "toast-undo" && e.checkVisibility())
    .filter(e => { const b = e.getBoundingClientRect();
                   return b.left < t.right && t.left < b.right &&
                          b.top < t.bottom && t.top < b.bottom; })
    .map(e => e.outerHTML.slice(0, 80));
}"""


@pytest.fixture(params=[1280, 420], ids=lambda width: f"{width}px")
def sized(chromium, request) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    """A page of its own browser context, ``request.param`` px wide and 900 high."""
    context = chromium.new_context(viewport={"width": request.param, "height": 900})
    yield context.new_page()
    context.close()


def _count(settings: Settings, query: str) -> int:
    with psycopg.connect(str(settings.database_url)) as conn:
        row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def _whole(page: Page, path: str) -> None:
    """Every label on the page is whole and the page fits the window."""
    wait_for_visible_images(page)
    assert page.evaluate(CUT) == [], (path, page.viewport_size)


def _screen_of_five(page: Page, address: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Open the screen at ``address`` holding every pair of the ranking's order it may
    (``FILL`` 0: a screen holds what is worth a look, on this small library often fewer
    than 5), the unlikely too."""
    monkeypatch.setattr(screens, "FILL", 0.0)
    page.goto(address + "?unlikely=1")


def _answer_asked_once(page: Page, act: str, what: str, settings: Settings) -> None:
    """Done with nothing ticked asks once, naming how many it marks; dismissed, nothing
    is stored; the second Done stores the answer without asking again."""
    shown = page.locator(".candidate input").count()
    assert shown >= 5, f"{act}: {shown} shown, too few to ask"
    asked: list[str] = []

    def dismiss(dialog: Dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()
    page.on("dialog", dismiss)
    edits = _count(settings, "SELECT count(*) FROM person_edits")
    page.keyboard.press("Enter") if act == "grid" else page.locator(
        f'[data-act="{act}"]').click()
    assert asked == [f"None ticked: mark all {shown} as {what}?"]
    assert _count(settings, "SELECT count(*) FROM person_edits") == edits
    with page.expect_event("load"):
        page.keyboard.press("Enter") if act == "grid" else page.locator(
            f'[data-act="{act}"]').click()
    assert len(asked) == 1
    assert _count(settings, "SELECT count(*) FROM person_edits") == edits + 1
    page.remove_listener("dialog", dismiss)


@pytest.mark.slow  # a real headless Chromium
def test_review_pages_are_whole_and_the_toast_covers_nothing(  # type: ignore[no-untyped-def]
        cli, sized: Page, faces_settings: Settings, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """At each width: every label of the grid, the pairs, the one-pair prompt and a
    person's page is whole, each grid candidate shows its score and face count; after
    an answer given from the bottom of the page, the next page opens at its top with the
    toast in view and over no button; Done with nothing ticked asks once."""
    page = sized
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    errors = watch_errors(page)
    with serving(faces_settings, tmp_path / "cache") as (server, client):
        page.goto(server.url)
        server.queue.warm().join()
        for path in ("/grid", "/pairs", "/suggestions"):
            page.goto(client.base + path)
            _whole(page, path)
        page.goto(client.base + "/grid")
        for text in page.locator(".candidate").all_inner_texts():
            assert re.search(r"\d\.\d\d · \d+ faces?$", text.strip()), text
        keep = page.locator(".side h2 a").get_attribute("href")
        assert keep
        page.goto(client.origin + keep)
        _whole(page, keep)

        # Answered from the Done button at the page's bottom (a phone scrolls to it).
        page.goto(client.base + "/grid")
        page.locator(".candidate").first.locator("img").click()
        with page.expect_event("load"):
            page.locator('[data-act="grid"]').click()
        toast = page.locator("#toast")
        expect(toast).to_contain_text("merged")
        assert page.evaluate("() => scrollY") == 0
        box = toast.bounding_box()
        assert box and box["y"] >= 0 and box["y"] + box["height"] <= 900
        assert page.evaluate(UNDER_TOAST) == []
        _whole(page, "/grid after an answer")

        _screen_of_five(page, client.base + "/grid", monkeypatch)
        _answer_asked_once(page, "grid", "other people", faces_settings)
        assert page.evaluate(UNDER_TOAST) == []
        _screen_of_five(page, client.base + "/pairs", monkeypatch)
        _answer_asked_once(page, "pairs", "pairs of two people", faces_settings)
        assert page.evaluate(UNDER_TOAST) == []
        assert errors == []


def _in_one_photo(settings: Settings, one: str, other: str) -> bool:
    """Whether two persons have faces in one photo (their merge would be refused)."""
    with psycopg.connect(str(settings.database_url)) as conn:
        return conn.execute(
            "SELECT 1 FROM face_detections a JOIN face_detections b USING (image_id) "
            "WHERE a.person_id = %s AND b.person_id = %s LIMIT 1", (one, other)
        ).fetchone() is not None


def _smallest_persons(settings: Settings, n: int) -> list[str]:
    with psycopg.connect(str(settings.database_url)) as conn:
        return [str(r[0]) for r in conn.execute(
            "SELECT person_id FROM face_detections WHERE person_id IS NOT NULL "
            "GROUP BY person_id ORDER BY count(*), person_id LIMIT %s", (n,))]


@pytest.mark.slow
def test_named_people_come_first_and_the_history_names_them(  # type: ignore[no-untyped-def]
        cli, sized: Page, faces_settings: Settings, tmp_path: Path) -> None:
    """The two smallest persons named (one merged into the other's name, one kept):
    both are the first cards of the people page, the search box (in the window) finds
    one, and the history says their names, never a uuid."""
    page = sized
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    ada, grace, *rest = _smallest_persons(faces_settings, 12)
    stray = next(p for p in rest if not _in_one_photo(faces_settings, ada, p))
    with serving(faces_settings, tmp_path / "cache") as (server, client):
        for person, name in ((ada, "Ada Lovelace"), (grace, "Grace Hopper")):
            assert client.post("name", {"person": person, "name": name}).json()["ok"]
        assert client.post("merge", {"person": ada, "source": stray}).json()["ok"]
        page.goto(server.url)
        _whole(page, "/")
        names = page.locator("a.card .name").all_inner_texts()
        assert sorted(names[:2]) == ["Ada Lovelace", "Grace Hopper"], names[:4]

        search = page.locator('input[name="q"]')
        box = search.bounding_box()
        width = page.evaluate("() => innerWidth")
        assert box and box["x"] + box["width"] <= width
        search.fill("hopper")
        with page.expect_event("load"):
            search.press("Enter")
        expect(page.locator("a.card .name")).to_have_text(["Grace Hopper"])
        _whole(page, "/?q=hopper")

        page.goto(client.base + "/history")
        _whole(page, "/history")
        whats = page.locator("table tr td:nth-child(4)").all_inner_texts()
        assert len(whats) == 3 and not any(UUID.search(w) for w in whats), whats
        assert "Ada Lovelace" in whats[0], whats  # the merge, newest first
        said = run_cli(cli, "-d", url, "persons", "history", env={"COLUMNS": "400"})
        assert all(w in said.stdout for w in whats), (whats, said.stdout)


def test_a_side_says_how_many_of_its_faces_it_shows() -> None:
    """The grid's and the one-pair prompt's side: "6 of 7 faces shown" when it shows
    fewer faces than the person has, "7 faces" when all (and `rbv site`'s alike)."""
    macros = environment().get_template("macros.html").module
    assert str(macros.faces_shown(7, 6)) == "6 of 7 faces shown"  # type: ignore[attr-defined]
    assert str(macros.faces_shown(1_250, 6)) == "6 of 1,250 faces shown"  # type: ignore[attr-defined]
    assert str(macros.faces_shown(6, 6)) == "6 faces"  # type: ignore[attr-defined]
    assert str(macros.faces_shown(1)) == "1 face"  # type: ignore[attr-defined]
    side = str(macros.side("keep", "Ada", "/person/x", 7, "", 6))  # type: ignore[attr-defined]
    assert "keep · 6 of 7 faces shown" in side


def _group_photo(settings: Settings) -> tuple[int, str]:
    """The photo with the most faces (their labels side by side) and the largest person
    of it."""
    with psycopg.connect(str(settings.database_url)) as conn:
        row = conn.execute(
            "SELECT image_id FROM face_detections GROUP BY image_id "
            "ORDER BY count(*) DESC, image_id LIMIT 1").fetchone()
        assert row is not None
        person = conn.execute(
            "SELECT f.person_id::text FROM face_detections f "
            "JOIN face_detections o ON o.person_id = f.person_id WHERE f.image_id = %s "
            "GROUP BY f.person_id ORDER BY count(*) DESC, 1 LIMIT 1", (row[0],)).fetchone()
    assert person is not None
    return int(row[0]), str(person[0])


# Each face's label on a photo: whether it runs past the photo or over another face's box.
LABELS_OUT = """() => {
  const photo = document.querySelector(".photo img").getBoundingClientRect();
  const boxes = Array.from(document.querySelectorAll(".box"));
  const over = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 &&
                         a.top < b.bottom - 1 && b.top < a.bottom - 1;
  return boxes.flatMap(box => {
    const label = box.querySelector("span").getBoundingClientRect();
    const out = label.left < photo.left - 2 || label.right > photo.right + 2 ?
      [box.textContent + " past the photo"] : [];
    return out.concat(boxes.filter(o => o !== box && over(label, o.getBoundingClientRect()))
                      .map(o => box.textContent + " over " + o.textContent));
  });
}"""


@pytest.mark.slow  # a real headless Chromium
def test_every_page_fits_the_window(  # type: ignore[no-untyped-def]
        cli, sized: Page, faces_settings: Settings, tmp_path: Path) -> None:
    """Issue 62 #15, at a desktop's and a phone's width: no page (people, a person with
    a birthday, a group photo, the history with "Undo this and N newer", each review
    page, photos together) is wider than the window or cuts a label; a person's first
    faces are on the first screen and the birthday reads as ISO only; each face's label
    on the photo stays on the photo, off its neighbours' boxes; each undo button is on
    one line; each of the four review entries of the menu is said in a sentence, on its
    link and on its page. Screenshots are kept to look at."""
    page = sized
    width = page.viewport_size["width"] if page.viewport_size else 0
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    image, person = _group_photo(faces_settings)
    ada, grace, stray = [p for p in _smallest_persons(faces_settings, 12) if p != person][:3]
    shots = tmp_path / "screenshots"
    shots.mkdir()
    errors = watch_errors(page)
    with serving(faces_settings, tmp_path / "cache") as (server, client):
        for who, name in ((person, "Katherine Johnson-Goble"), (ada, "Ada Lovelace"),
                          (grace, "Grace Brewster Murray Hopper")):
            assert client.post("name", {"person": who, "name": name}).json()["ok"]
        assert client.post("born", {"person": person, "born": "1979-06-24"}).json()["ok"]
        if not _in_one_photo(faces_settings, grace, stray):
            assert client.post("merge", {"person": grace, "source": stray}).json()["ok"]
        page.goto(server.url)
        server.queue.warm().join()
        wrong = []
        for name, path in (("people", "/"), ("person", f"/person/{person}"),
                           ("photo", f"/photo/{image}"), ("history", "/history"),
                           ("review", "/review"), ("grid", "/grid"), ("pairs", "/pairs"),
                           ("suggestions", "/suggestions"),
                           ("photos", f"/photos?person={person}&person={ada}")):
            page.goto(client.base + path)
            wait_for_visible_images(page)
            page.screenshot(path=shots / f"{name}-{width}.png", full_page=True)
            wrong += [(path, what) for what in page.evaluate(CUT)]
        print(f"\nscreenshots: {shots}")
        assert wrong == [], width

        page.goto(client.base + f"/person/{person}")
        first = page.locator("#faces .face").first.bounding_box()
        assert first and first["y"] + first["height"] <= 900, first
        born = page.locator("#born")
        assert born.get_attribute("type") in (None, "text")
        assert born.input_value() == "1979-06-24"

        page.goto(client.base + f"/photo/{image}")
        assert page.locator(".box").count() >= 4
        assert page.evaluate(LABELS_OUT) == []

        page.goto(client.base + "/history")
        heights = {b["height"] for b in (u.bounding_box() for u in
                                         page.locator("button[data-undo]").all()) if b}
        assert len(heights) == 1, heights  # "Undo this and 3 newer" as high as "Undo"

        entries = page.locator("nav a[title]")
        said = dict(zip(entries.evaluate_all("es => es.map(e => e.pathname)"),
                        entries.evaluate_all("es => es.map(e => e.title)"), strict=True))
        assert len(said) == 4 and all(s.endswith(".") for s in said.values()), said
        for path, sentence in said.items():
            page.goto(client.origin + path)
            expect(page.locator("main")).to_contain_text(sentence)
        assert errors == []

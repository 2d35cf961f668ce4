"""`rbv site OUT` opened in a real headless Chromium (Debian's chromium package, driven
by Playwright): pages load with no console errors, every image resolves; screenshots are
kept."""

from __future__ import annotations

import json
import re
from pathlib import Path
from urllib.parse import unquote

from playwright.sync_api import Page

from rbv.config import Settings
from tests.conftest import run_cli
from tests.support.browser import broken_images, watch_errors

HOSTILE = '<script>console.error("pwned")</script> Ada & "Bob"'


def _references(page: Path) -> list[str]:
    return re.findall(r'(?:href|src)="([^"#]+)', page.read_text(encoding="utf-8"))


def test_the_harness_sees_console_errors_and_broken_images(page: Page,
                                                           tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><img src="missing.jpg"><script>console.error("boom")'
                   "</script>")
    errors = watch_errors(page)
    page.goto(bad.as_uri())
    assert broken_images(page) == ["missing.jpg"]
    assert any("boom" in e for e in errors)


def test_site_opens_from_disk_with_every_image_and_link_resolving(
        cli, page: Page, faces_settings: Settings, tmp_path: Path) -> None:
    url = str(faces_settings.database_url)
    assert run_cli(cli, "-d", url, "cluster", "--threshold", "0.7").exit_code == 0
    # After the first suggestion is accepted, the pairs most worth answering are not in
    # the order of their scores: the page lists them strongest first, as it says.
    first = json.loads(run_cli(cli, "-d", url, "persons", "suggest", "--json").stdout)
    assert run_cli(cli, "-d", url, *first["suggestions"][0]["command"].split()[1:]
                   ).exit_code == 0
    ranked = [s["probability"] for s in json.loads(run_cli(  # as many as the site shows
        cli, "-d", url, "persons", "suggest", "--json", "--limit", "50").stdout)["suggestions"]]
    assert ranked != sorted(ranked, reverse=True)
    persons = json.loads(run_cli(cli, "-d", url, "persons", "list", "--json",
                                 "--limit", "0").stdout)
    assert run_cli(cli, "-d", url, "persons", "name", persons[0]["id"], HOSTILE).exit_code == 0
    out = tmp_path / "review" / "site"
    done = run_cli(cli, "-d", url, "site", str(out), "--max-faces", "30", "--json")
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["pages"] == len(persons) + 2 and report["thumbs_written"] > 0
    assert [p.name for p in (tmp_path / "review").iterdir()] == ["site"]

    pages = [out / "index.html", out / "suggestions.html", *(out / "persons").iterdir()]
    for html in pages:  # every link and image stays inside OUT and exists
        for ref in _references(html):
            target = (html.parent / unquote(ref)).resolve()
            assert target.is_relative_to(out.resolve()) and target.is_file(), (html, ref)
    index = (out / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;" in index and "<script>" not in index
    first = out / "persons" / f"{persons[0]['id']}.html"
    text = first.read_text(encoding="utf-8")
    assert f"rbv persons not-this-person {persons[0]['id'][:8]} " in text
    assert f"rbv persons split {persons[0]['id'][:8]} --threshold 0.5 --dry-run" in text
    suggestions = (out / "suggestions.html").read_text(encoding="utf-8")
    assert "rbv persons merge " in suggestions
    # "strongest evidence first", as the page says (issue 52 #4: 0.99 came before 1.00)
    scores = [float(s) for s in re.findall(r"\d+\. score (\d\.\d\d)</h3>", suggestions)]
    assert len(scores) == len(ranked) and scores == sorted(scores, reverse=True), scores

    shots = tmp_path / "screenshots"
    shots.mkdir()
    errors = watch_errors(page)
    for html, name in ((out / "index.html", "index.png"), (first, "person.png"),
                       (out / "suggestions.html", "suggestions.png")):
        page.goto(html.resolve().as_uri())  # waits for the load event: every image
        broken = broken_images(page)
        assert errors == [] and broken == [], (html, errors, broken)
        assert page.locator("img").count() > 0
        page.screenshot(path=shots / name)
        assert (shots / name).stat().st_size > 10_000
    print(f"\nscreenshots of the review site: {shots}")

    # A re-run renders no crop again; a missing crop is made again, a stale one goes.
    thumbs = sorted((out / "thumbs").glob("*.jpg"))
    thumbs[0].unlink()
    (out / "thumbs" / "999999_0123456789.jpg").write_bytes(b"old")
    again = json.loads(run_cli(cli, "-d", url, "site", str(out), "--max-faces", "30",
                               "--json").stdout)
    assert (again["thumbs_written"], again["thumbs_removed"]) == (1, 1)
    assert again["thumbs_kept"] == report["thumbs_written"] - 1

    # OUT must be a folder, and a link inside it could lead writes elsewhere: refused.
    (out / "thumbs").rename(tmp_path / "elsewhere")
    (out / "thumbs").symlink_to(tmp_path / "elsewhere")
    linked = run_cli(cli, "-d", url, "site", str(out))
    assert linked.exit_code == 1 and linked.output.startswith(f"Error: {out / 'thumbs'} is not")
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    refused = run_cli(cli, "-d", url, "site", str(a_file))
    assert refused.exit_code == 1
    assert refused.output == f"Error: {a_file} exists and is not a folder; pass a folder for OUT\n"

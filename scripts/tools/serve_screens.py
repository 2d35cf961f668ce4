"""Screenshots of ``rbv serve``'s pages in Debian's headless Chromium at a desktop's and a
phone's width, to look at (not a benchmark).

DATA, an indexed and clustered rbv data directory (e.g. the scratch one
``scripts/bench/review_effort.py`` keeps in /tmp), is copied first (it is never changed; its
server must not be running) and ``rbv serve`` is started on the copy in this process.
As a person would, the script names the two largest unnamed persons and the smallest
one (so the people page and the history have names to show); then, at each width, it
saves the people, review (``/review``), grid, pairs, one-pair (``/suggestions``), person
(the largest) and history pages as NAME-WIDTH.png in OUT (the top 3,000 px of each),
and the page after
a grid answered from its Done button as ``grid-answered-WIDTH.png`` (the window as the
person sees it, with its toast), and the pairs page as it is when nothing likely is left
as ``pairs-ended-WIDTH.png`` (every pair made unlikely for that shot).
``--suffix=-before`` names the files NAME-WIDTH-before.png, to run it on an older
checkout (``PYTHONPATH=that/src``) into the same folder.

    uv run python scripts/tools/serve_screens.py /tmp/rbv-review-effort-family-974bccfaa3 \
        ../notes/shots
    uv run python scripts/tools/serve_screens.py DATA OUT --widths 1280,420,360 --suffix=-before
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/ helpers

from tests.serve_client import serving  # noqa: E402
from tests.support.browser import CHROMIUM_ARGS, wait_for_visible_images  # noqa: E402

from rbv.config import Settings  # noqa: E402
from rbv.serve import ranking as ranking_module  # noqa: E402
from rbv.store import Database  # noqa: E402

TALLEST = 3_000
# Files of the running server that a copy must not carry.
RUNTIME = ("postmaster.pid", ".s.PGSQL.5432", ".s.PGSQL.5432.lock", ".handle_pids.json",
           ".rbv_handle_starts.json")


def copy_data(data: Path, into: Path) -> Path:
    """A copy of DATA (owners kept: the embedded server's folder is its user's)."""
    if (data / "pg" / "postmaster.pid").exists():
        sys.exit(f"{data}: its server is running (pg/postmaster.pid); run this again when "
                 "it has stopped (a copy of a running server's files is not consistent)")
    copy = into / "data"
    subprocess.run(["cp", "-a", str(data), str(copy)], check=True)
    if (data / "pg" / "postmaster.pid").exists():
        sys.exit(f"{data}: its server started while it was copied; run this again")
    for name in RUNTIME:
        (copy / "pg" / name).unlink(missing_ok=True)
    (copy / ".pg.lock").unlink(missing_ok=True)
    return copy


def persons_by_size(db: Database) -> list[tuple[str, str | None]]:
    """Unmerged persons with faces, largest first: (id, name)."""
    with db.connect() as conn:
        return [(str(r[0]), r[1]) for r in conn.execute(
            "SELECT f.person_id, n.name FROM face_detections f "
            "LEFT JOIN person_names n ON n.person_id = f.person_id "
            "WHERE f.person_id IS NOT NULL GROUP BY f.person_id, n.name "
            "ORDER BY count(*) DESC, f.person_id")]


def shoot(page: Page, path: Path, *, whole: bool = True) -> None:
    if whole:  # the images below the window too (lazy ones load only when near it)
        page.evaluate("() => document.querySelectorAll('img').forEach(i => i.loading = 'eager')")
        page.wait_for_function("() => Array.from(document.images).every(i => i.complete)")
    wait_for_visible_images(page)
    if whole:
        height = min(TALLEST, int(page.evaluate("() => document.documentElement.scrollHeight")))
        width = int(page.evaluate("() => innerWidth"))
        page.screenshot(path=path, full_page=True,
                        clip={"x": 0, "y": 0, "width": width, "height": height})
    else:
        page.screenshot(path=path)
    print(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", type=Path, help="an indexed, clustered rbv data directory")
    parser.add_argument("out", type=Path, help="folder for the screenshots")
    parser.add_argument("--widths", default="1280,420", help="window widths in px")
    parser.add_argument("--height", type=int, default=900, help="window height in px")
    parser.add_argument("--suffix", default="", help="added to each file's name")
    parser.add_argument("--pack", default="scrfd_sface", help="the data's model pack")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Debian's chromium (apt-get install chromium)")
    with tempfile.TemporaryDirectory(prefix="rbv-serve-screens-") as scratch:
        settings = Settings(data_dir=copy_data(args.data, Path(scratch)),
                            model_pack=args.pack)
        with serving(settings, Path(scratch) / "cache") as (server, client), \
                sync_playwright() as playwright:
            persons = persons_by_size(server.db)
            unnamed = [p for p, name in persons if name is None]
            for person, name in zip([*unnamed[:2], unnamed[-1]],
                                    ("Ada Lovelace", "Grace Hopper", "Katherine Johnson"),
                                    strict=False):
                client.post("name", {"person": person, "name": name})
            largest = persons[0][0]
            server.queue.warm().join()
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            for width in (int(w) for w in args.widths.split(",")):
                context = browser.new_context(viewport={"width": width,
                                                        "height": args.height})
                page = context.new_page()
                page.goto(server.url)  # signs in, lands on the people page
                pages = [("people", "/"), ("grid", "/grid"), ("pairs", "/pairs")]
                if hasattr(ranking_module, "MIN_WORTH"):  # the review page (issue 50) on
                    pages.insert(1, ("review", "/review"))
                for name, path in (*pages,
                                   ("one-pair", "/suggestions"),
                                   ("person", f"/person/{largest}"), ("history", "/history")):
                    page.goto(client.base + path)
                    shoot(page, args.out / f"{name}-{width}{args.suffix}.png")
                page.goto(client.base + "/grid")
                if page.locator(".candidate").count():
                    page.locator(".candidate").first.locator("img").click()
                    with page.expect_event("load"):
                        page.locator('[data-act="grid"]').click()
                    shoot(page, args.out / f"grid-answered-{width}{args.suffix}.png",
                          whole=False)
                if hasattr(ranking_module, "MIN_WORTH"):  # the pages of issue 50 on
                    # What a page says when nothing likely is left: every pair made
                    # unlikely for this one shot (in this process's server).
                    kept, ranking_module.MIN_WORTH = ranking_module.MIN_WORTH, math.inf
                    page.goto(client.base + "/pairs")
                    shoot(page, args.out / f"pairs-ended-{width}{args.suffix}.png")
                    ranking_module.MIN_WORTH = kept
                context.close()
            browser.close()


if __name__ == "__main__":
    main()

"""Debian's headless Chromium driven by Playwright for Python: rbv's pages opened as a
browser does, with their console errors and the images that did not load.

Playwright launches ``/usr/bin/chromium`` through ``executable_path`` (never a browser
of its own: ``playwright install`` is not run), installed with apt-get when missing."""

from __future__ import annotations

from playwright.sync_api import ConsoleMessage, Error, Page

# Playwright adds its own automation flags; these keep a root, GPU-less, offline
# machine's chromium from reaching out or refusing to start.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--hide-scrollbars"]

_BROKEN = ("visible => Array.from(document.images).filter(i => "
           "(!visible || i.getBoundingClientRect().top < innerHeight) && "
           "i.complete && i.naturalWidth === 0).map(i => i.getAttribute('src'))")


def watch_errors(page: Page) -> list[str]:
    """A list that collects, from now on, what the page logs as an error (console
    errors, failed loads chromium reports there, uncaught exceptions)."""
    errors: list[str] = []

    def console(message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            errors.append(f"{message.text} {message.location.get('url', '')}".strip())

    def thrown(error: Error) -> None:
        errors.append(f"{error.name}: {error.message}")

    page.on("console", console)
    page.on("pageerror", thrown)
    return errors


def broken_images(page: Page, *, visible: bool = False) -> list[str]:
    """The ``src`` of the images that finished loading with no picture (with
    ``visible``: of those on screen only)."""
    return list(page.evaluate(_BROKEN, visible))


def wait_for_visible_images(page: Page) -> None:
    """Wait until every image on screen has finished loading (lazy ones included,
    which the load event does not wait for)."""
    # A function, not an expression: rbv serve's Content-Security-Policy forbids eval.
    page.wait_for_function("() => Array.from(document.images).filter(i => "
                           "i.getBoundingClientRect().top < innerHeight)"
                           ".every(i => i.complete)")

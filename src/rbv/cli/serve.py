"""``rbv serve``: the local web application to review and fix persons."""

from __future__ import annotations

import ipaddress
import threading
import webbrowser
from typing import Annotated

import typer

from rbv.cli.common import DatabaseOption, ModelPackOption, settings_of
from rbv.store import open_database

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _open_in_browser(page: str) -> None:
    """Open ``page`` in the user's browser, in a thread (a browser command that never
    returns blocks nothing); a machine with none (a server over ssh) says so."""
    try:
        browser = webbrowser.get()
    except webbrowser.Error:
        typer.echo("No browser found to open it in (--open): open the URL above in yours.",
                   err=True)
        return

    def open_page() -> None:
        if not browser.open(page):
            typer.echo("The browser could not be started (--open): open the URL above in "
                       "yours.", err=True)

    threading.Thread(target=open_page, daemon=True).start()


def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on. Another than the loopback "
                                      "lets other machines reach your library: only on a "
                                      "network you trust.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port (0: any free one).")
                    ] = DEFAULT_PORT,
    open_browser: Annotated[bool, typer.Option("--open", help="Open it in the browser "
                                               "(through a page only you can read: the "
                                               "key is never on a command line).")
                            ] = False,
    model_pack: ModelPackOption = None,
    database: DatabaseOption = None,
) -> None:
    """Review and fix persons in the browser: a grid of people, each person's faces
    (least typical first, doubtful ones marked) to name, merge, move, hide or take out
    with a click, merge suggestions one pair at a time, every photo with its faces
    boxed, and the edit history with undo. Every click is the same logged edit as the
    `rbv persons` command (undo it there or here). Stop it with Ctrl-C.

    Open the URL it prints (or pass --open): it carries a key that signs your
    browser in; without it every page is refused, so other users of the machine
    see nothing. The key is new at each start, and so is the secret folder every
    address of the app is under.

    Examples:

        rbv serve --open

        rbv serve --port 9000
    """
    from rbv.serve.app import ReviewServer

    settings = settings_of(ctx, database_url=database)
    server = ReviewServer(open_database(settings), settings.data_dir / "serve-cache",
                          host=host, port=port, pack_name=model_pack,
                          max_pixels=settings.max_image_pixels, settings=settings)
    typer.echo(f"Serving on {server.url}")
    if not _loopback(host):
        typer.echo(f"Warning: listening on {host}: anyone who can reach this address and "
                   "port can see your photos", err=True)
    if open_browser:
        _open_in_browser(server.opener().as_uri())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        typer.echo("Stopped.")
    finally:
        server.server_close()

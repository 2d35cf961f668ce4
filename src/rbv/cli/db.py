"""``rbv db start|url|stop``: the embedded server kept up for other tools, with its URL."""

from __future__ import annotations

import typer

from rbv.cli.common import DatabaseOption, command_group, say, settings_of
from rbv.config import Settings
from rbv.errors import ConfigError, printable
from rbv.store.server.connection import describe_url

app = command_group(help="Keep rbv's embedded PostgreSQL up for other tools (psql, scripts, "
                        "`--database \"$DATABASE_URL\"`) and print its URL: a private socket, "
                        "no password.")


def _embedded(ctx: typer.Context, database: str | None, nothing: str) -> Settings:
    """The settings, refused when they name a server rbv does not run (its own URL, as
    `rbv db start` printed it into $DATABASE_URL, is the embedded server's)."""
    from rbv.store.server.kept import is_embedded_url

    settings = settings_of(ctx, database_url=database)
    url = settings.database_url
    if url and not is_embedded_url(url, settings.data_dir):
        raise ConfigError(f"--database / DATABASE_URL names {describe_url(url)}, a server "
                          f"rbv does not run: there is {nothing}; `rbv db` is for rbv's "
                          "embedded server (unset DATABASE_URL)")
    return settings


@app.command("start")
def start(ctx: typer.Context, database: DatabaseOption = None) -> None:
    """Start the embedded server (if it is not running) and keep it up until `rbv db
    stop`, then print its URL on one line. It stays private: a socket in a 0700 folder,
    only your OS user may connect, no TCP port, no password in the URL.

    Example:

        export DATABASE_URL=$(rbv db start)
    """
    from rbv.store.server.kept import keep_up

    typer.echo(keep_up(_embedded(ctx, database, "nothing to start").data_dir))


@app.command("url")
def url(ctx: typer.Context, database: DatabaseOption = None) -> None:
    """Print the URL of the embedded server `rbv db start` keeps up (an error when none
    is).

    Example:

        psql "$(rbv db url)"
    """
    from rbv.store.server.kept import kept_url

    typer.echo(kept_url(_embedded(ctx, database, "no URL to give but that one").data_dir))


@app.command("stop")
def stop(ctx: typer.Context, database: DatabaseOption = None) -> None:
    """Stop the embedded server `rbv db start` kept up (at once, or, while rbv commands
    use it, as the last of them exits).

    Example:

        rbv db stop
    """
    from rbv.store.server.kept import let_go

    settings = _embedded(ctx, database, "nothing to stop")
    done = let_go(settings.data_dir)
    where = printable(str(settings.data_dir / "pg"))
    if not done.was_running:
        say(f"The embedded server in {where} was not running.")
    elif done.users:
        using = ("the rbv command using it exits" if done.users == 1 else
                 f"the {done.users} rbv commands using it exit")
        say(f"The embedded server in {where} stops when {using}.")
    else:
        say(f"Stopped the embedded server in {where}.")

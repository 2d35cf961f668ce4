"""``rbv psql``: an interactive SQL shell on rbv's database."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Annotated

import typer

from rbv.cli.common import DatabaseOption, settings_of
from rbv.errors import ConfigError
from rbv.store import open_database
from rbv.store.server.connection import libpq_environment
from rbv.store.server.embedded import bundled_psql

CONTEXT_SETTINGS = {"ignore_unknown_options": True}
"""Options rbv does not know (``-At``, ``--csv``) are psql's, passed on."""


def psql(
    ctx: typer.Context,
    psql_options: Annotated[
        list[str] | None, typer.Argument(metavar="PSQL_OPTION", show_default=False,
                                         help="psql's own options (-At, --csv, -f FILE), "
                                         "passed on.")
    ] = None,
    command: Annotated[
        str | None, typer.Option("--command", "-c", help="Run one SQL command and exit.")
    ] = None,
    print_url: Annotated[
        bool, typer.Option("--url", help="Print the connection URL instead (for other tools; "
                           "needs --database / DATABASE_URL).")
    ] = False,
    database: DatabaseOption = None,
) -> None:
    """Open psql on rbv's database (the embedded server or --database / DATABASE_URL).

    The embedded server keeps running while the shell is open, and stops when it
    closes: so --url needs a server given by --database / DATABASE_URL (`rbv db start`
    keeps the embedded one up and prints its URL). The URL it prints contains that
    server's password: keep it private.

    Examples:

        rbv psql

        rbv psql -c "SELECT count(*) FROM face_detections WHERE person_id IS NULL"

        rbv psql -At -c "SELECT count(*) FROM persons"

        rbv psql --url --database postgresql://rbv@db.example/rbv
    """
    settings = settings_of(ctx, database_url=database)
    if print_url and settings.database_url is None:
        # Its URL names a socket of a server that stops as this command exits.
        raise ConfigError(
            "--url needs a server that outlives this command, and the embedded server stops "
            "when rbv exits; `rbv db start` keeps it up and prints its URL (`rbv db url` "
            "again later)")
    db = open_database(settings, require_schema=False)
    if print_url:
        typer.echo(db.url)
        return
    client = bundled_psql() or shutil.which("psql")
    if not client:
        raise ConfigError("no psql client found; install postgresql-client")
    # The URL goes in the environment, never on the command line (`ps` shows that).
    args = [str(client), *(psql_options or []), *(["-c", command] if command else [])]
    env = {**os.environ, **libpq_environment(db.url)}
    raise typer.Exit(subprocess.run(args, check=False, env=env).returncode)

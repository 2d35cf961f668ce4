"""``rbv migrate``: create or upgrade the database schema."""

from __future__ import annotations

from typing import Annotated

import typer

from rbv.cli.common import DatabaseOption, JsonOption, print_json, settings_of
from rbv.store import open_database
from rbv.store.server.migrations import apply_pending, migration_status
from rbv.words import counted


def migrate(
    ctx: typer.Context,
    list_only: Annotated[
        bool, typer.Option("--list", help="Show applied and pending migrations; change nothing.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would be applied; change nothing.")
    ] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create or upgrade the schema; safe to run any number of times.

    Run it once after installing rbv and again after each upgrade. Other commands
    refuse to run on an older schema. An upgrade names each migration before it runs:
    some take minutes at a million faces (schema 21 rebuilds every pack's HNSW index).

    Examples:

        rbv migrate

        rbv migrate --list

        rbv migrate --database postgresql://me@dbhost/photos
    """
    db = open_database(settings_of(ctx, database_url=database), require_schema=False)
    if list_only or dry_run:
        states = migration_status(db)
        if as_json:
            print_json(
                [
                    {"version": s.migration.version, "name": s.migration.name,
                     "applied_at": s.applied_at}
                    for s in states
                ]
            )
            return
        for s in states:
            when = f"applied {s.applied_at:%Y-%m-%d %H:%M:%S}" if s.applied_at else "pending"
            typer.echo(f"{s.migration.path.name:<32} {when}")
        pending = [s for s in states if s.applied_at is None]
        if dry_run:
            typer.echo(f"{counted(len(pending), 'migration')} would be applied to "
                       f"{db.display}.")
        return
    applied = apply_pending(db, on_start=lambda m: typer.echo(f"Applying {m.path.name} …",
                                                             err=True))
    if as_json:
        print_json({"applied": [m.path.name for m in applied], "database": db.display})
        return
    for m in applied:
        typer.echo(f"Applied {m.path.name}")
    if not applied:
        typer.echo(f"Schema is up to date ({db.display}).")

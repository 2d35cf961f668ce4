"""``rbv prune``: remove the photos `rbv index` found missing, and their faces."""

from __future__ import annotations

from typing import Annotated

import typer

from rbv.cli.common import DatabaseOption, JsonOption, library_of, print_json


def prune(
    ctx: typer.Context,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Say what would be removed; write nothing.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Remove photos marked missing by `rbv index`, with their faces.

    A photo is missing when `rbv index` walked its folder and the file was
    gone (see `rbv audit`). A photo still present at another path is kept:
    only its missing path is forgotten. Persons and their names are kept,
    even with no faces left.

    A missing photo whose faces show again in a copy under another name
    (re-encoded, e.g. JPEG to PNG) gives their persons, hand placements,
    rejections and same/different links to the copy's faces first. Each
    decision deleted with a photo is said, one line per face; --dry-run
    says the same.

    Examples:

        rbv prune --dry-run

        rbv prune

        rbv prune --json
    """
    report = library_of(ctx, database).prune(dry_run=dry_run)
    counts = report.counts
    if as_json:
        print_json({**report.as_dict(), "dry_run": dry_run})
        return
    if dry_run:
        typer.echo(f"Would remove {counts.images:,} missing photos with {counts.faces:,} "
                   f"faces, and {counts.paths:,} missing paths; nothing was written.")
    else:
        typer.echo(f"Removed {counts.images:,} missing photos with {counts.faces:,} faces, "
                   f"and {counts.paths:,} missing paths.")
    for line in report.kept + report.lost:
        typer.echo(line)

"""``rbv show PERSON|FACESET``: a contact sheet PNG of face crops."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rbv.cli.common import DatabaseOption, JsonOption, library_of, print_json, say
from rbv.jobs.persons.show import faceset_number
from rbv.words import counted


def show(
    ctx: typer.Context,
    target: Annotated[str, typer.Argument(help="A person (name, part of a name, uuid or uuid "
                                          "prefix) or a "
                                          "faceset (faceset_NNN).", show_default=False)],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="PNG to write. Default: "
                                             "<name>.png in the current folder (the "
                                             "person's name, or faceset_NNN).",
                                             show_default=False)] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many faces (best "
                                       "detections first for persons).")] = 64,
    columns: Annotated[int, typer.Option(min=1, help="Tiles per row.")] = 8,
    tile: Annotated[int, typer.Option(min=32, help="Tile side in pixels.")] = 128,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a contact sheet: a PNG grid of a person's or a faceset's face crops, each
    captioned with its face id (use the ids with `rbv persons move/not-this-person`).

    Examples:

        rbv show "Ada Lovelace"

        rbv show faceset_003 -o faceset_003.png --columns 10

        rbv show 3f2a9c --limit 24 --json
    """
    lib = library_of(ctx, database)
    faceset = faceset_number(target)
    sheet = lib.contact_sheet(lib.find(target) if faceset is None else faceset, out,
                              limit=limit, columns=columns, tile=tile)
    for face in sheet.missing:
        typer.echo(f"Error: face {face}: its photo cannot be read (grey tile)", err=True)
    if as_json:
        print_json(sheet.as_dict())
    else:
        say(f"Wrote {sheet.path} ({counted(sheet.tiles, 'face')}, {sheet.columns}×{sheet.rows} "
            f"tiles, {sheet.width}×{sheet.height} px).")

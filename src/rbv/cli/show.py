"""``rbv show PERSON|FACESET``: a contact sheet PNG of face crops."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer

from rbv.cli.common import DatabaseOption, JsonOption, print_json, settings_of
from rbv.errors import ConfigError
from rbv.pictures.contact_sheet import SheetFace, write_sheet
from rbv.store import open_database
from rbv.store.queries.facesets import face_boxes, faceset_faces, pack_of_faceset
from rbv.store.queries.persons import faces_of, name_of, resolve_person

_FACESET = re.compile(r"^faceset_(\d+)$")


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
    settings = settings_of(ctx, database_url=database)
    db = open_database(settings)
    with db.connect() as conn:
        match = _FACESET.match(target.strip())
        if match:
            number = int(match.group(1))
            packs = pack_of_faceset(conn, number)
            if not packs:
                raise ConfigError(f"no {target} in the database; run `rbv refine OUT` first")
            ids = (faceset_faces(conn, packs[-1], number) or [])[:limit]
            label = target.strip()
            title = f"{target}: {len(ids)} faces"
        else:
            person = resolve_person(conn, target)
            ids = [f.id for f in faces_of(conn, person, limit)]
            name = name_of(conn, person)
            label = name or f"person_{str(person)[:8]}"
            title = f"{name or person}: {len(ids)} faces"
        faces = [SheetFace(f, i, b) for f, i, b in face_boxes(conn, ids)]
    if not faces:
        raise ConfigError(f"{target} has no faces to show")
    # Without -o: the current folder, said as a whole path (a bare "Ada.png" left users
    # looking for it).
    stem = re.sub(r"[^\w.-]+", "_", label).strip("._") or "contact_sheet"
    path = out or Path.cwd() / f"{stem}.png"
    sheet = write_sheet(db, faces, title, path, tile=tile, columns=columns,
                        max_pixels=settings.max_image_pixels)
    for face in sheet.missing:
        typer.echo(f"Error: face {face}: its photo cannot be read (grey tile)", err=True)
    if as_json:
        print_json(sheet.as_dict())
    else:
        typer.echo(f"Wrote {sheet.path} ({sheet.tiles} faces, {sheet.columns}×{sheet.rows} "
                   f"tiles, {sheet.width}×{sheet.height} px).")

"""``rbv persons hide``, ``unhide`` and ``cover``: whether a person is listed, and the
face that shows it."""

from __future__ import annotations

from typing import Annotated

import typer

from rbv.bounds import BIGINT_MAX
from rbv.cli.common import (
    DatabaseOption,
    DryRunOption,
    JsonOption,
    PersonArg,
    library_of,
    print_json,
)
from rbv.cli.naming import named_list, who
from rbv.words import counted

PersonsArg = Annotated[list[str], typer.Argument(
    help="Persons: names, unique parts of names, uuids or uuid prefixes (4+ chars).",
    metavar="PERSON")]
SomePersonsArg = Annotated[list[str] | None, typer.Argument(
    help="Persons: names, unique parts of names, uuids or uuid prefixes (4+ chars).",
    metavar="[PERSON]...", show_default=False)]
SHOWN_HIDDEN = 10
"""Persons a bulk hide's dry run lists by name (the rest are counted)."""


def hide(ctx: typer.Context, persons: SomePersonsArg = None,
         unnamed: Annotated[bool, typer.Option(
             "--unnamed", help="Instead of PERSONs: every visible unnamed person with at "
             "most --max-faces faces (the strangers of a library), as one edit.")] = False,
         max_faces: Annotated[int | None, typer.Option(
             "--max-faces", min=1, help="With --unnamed: hide those with at most this many "
             "faces.", show_default=False)] = None,
         model_pack: Annotated[str | None, typer.Option(
             "--model-pack", help="With --unnamed: only this model pack's persons (by "
             "name or folder). Default: $RBV_MODEL_PACK, else every pack's.",
             show_default=False)] = None,
         dry_run: DryRunOption = False,
         database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Hide persons from `persons list` (their faces stay assigned; `--hidden` lists
    them, `unhide` shows them again). Every `rbv cluster` run, whatever its method,
    leaves a hidden person's faces where they are: none joins a visible person. One
    command is one edit: one `rbv persons undo` shows them all again. --unnamed
    --max-faces N hides the crowd of strangers: every visible unnamed person with at
    most N faces and no birthday (--dry-run says how many, and who).

    Examples:

        rbv persons hide 77c1 "Stranger"

        rbv persons hide --unnamed --max-faces 2 --dry-run
    """
    from rbv.errors import ConfigError

    if unnamed or max_faces is not None:
        if persons:
            raise ConfigError("give PERSONs to hide, or --unnamed --max-faces N, not both "
                              "(hide the persons named with a command of their own)")
        if not unnamed or max_faces is None:
            raise ConfigError("--unnamed and --max-faces go together: `rbv persons hide "
                              "--unnamed --max-faces N` hides every unnamed person with at "
                              "most N faces")
        _hide_unnamed(ctx, max_faces, model_pack, database, dry_run, as_json)
        return
    if model_pack is not None:
        raise ConfigError("--model-pack picks the pack of --unnamed --max-faces; PERSONs "
                          "name their own")
    if not persons:
        raise ConfigError("name the persons to hide, or hide the strangers with "
                          "`rbv persons hide --unnamed --max-faces N`")
    _hide(ctx, persons, database, dry_run, as_json, hidden=True)


def _hide_unnamed(ctx: typer.Context, max_faces: int, model_pack: str | None,
                  database: str | None, dry_run: bool, as_json: bool) -> None:
    lib = library_of(ctx, database)
    done = lib.hide_unnamed(max_faces, model_pack=model_pack, dry_run=dry_run)
    if as_json:
        print_json({"persons": [{"id": str(p), "faces": n} for p, n in done.persons],
                    "hidden": True, "count": len(done.persons), "faces": done.faces,
                    "max_faces": max_faces, "edit": done.edit_id, "dry_run": dry_run})
        return
    count = (f"{counted(len(done.persons), 'unnamed person')} with at most "
             f"{counted(max_faces, 'face')}")
    if not done.persons:
        typer.echo(f"No visible unnamed person has at most {counted(max_faces, 'face')}; "
                   "nothing changed.")
        return
    if dry_run:
        shown = done.persons[:SHOWN_HIDDEN]
        names = who(lib, *[p for p, _ in shown])
        listed = ", ".join(f"{w} ({n})" for w, (_, n) in zip(names, shown, strict=True))
        more = len(done.persons) - len(shown)
        listed += f" and {more:,} more" if more else ""
        typer.echo(f"Would hide {count} ({counted(done.faces, 'face')}): {listed}. Dry run: "
                   "nothing was changed.")
        return
    # Counted, not listed: a bulk hide can be hundreds of persons (--json lists them).
    typer.echo(f"Hid {count} ({counted(done.faces, 'face')}).")
    typer.echo("See them: `rbv persons list --hidden`; `rbv persons undo` shows them again.")


def unhide(ctx: typer.Context, persons: PersonsArg, dry_run: DryRunOption = False,
           database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Show hidden persons in `persons list` again.

    Example:

        rbv persons unhide 77c1
    """
    _hide(ctx, persons, database, dry_run, as_json, hidden=False)


def _hide(ctx: typer.Context, refs: list[str], database: str | None, dry_run: bool,
          as_json: bool, *, hidden: bool) -> None:
    lib = library_of(ctx, database)
    ids = list(dict.fromkeys(lib.find_all(refs)))
    n = len(ids) if dry_run else (lib.hide if hidden else lib.unhide)(*ids).persons
    if as_json:
        print_json({"persons": [str(p) for p in ids], "hidden": hidden, "count": n,
                    "dry_run": dry_run})
        return
    if dry_run:
        typer.echo(f"Would {'hide' if hidden else 'unhide'} {counted(n, 'person')}: "
                   f"{named_list(lib, ids)}. Dry run: nothing was changed.")
        return
    typer.echo(f"{'Hid' if hidden else 'Unhid'} {counted(n, 'person')}: "
               f"{named_list(lib, ids)}.")


def cover(ctx: typer.Context, person: PersonArg,
          face: Annotated[int | None, typer.Argument(
              help="One of the person's face ids (see `rbv persons show`).", min=1,
              max=BIGINT_MAX, show_default=False)] = None,
          auto: Annotated[bool, typer.Option(
              "--auto", help="Instead of FACE: show the person by its automatic face "
              "again (its best detection).")] = False,
          dry_run: DryRunOption = False, database: DatabaseOption = None,
          as_json: JsonOption = False) -> None:
    """Choose the face that shows a person wherever it is shown by one face: `rbv
    serve`'s people page, `rbv site`'s index, the first tile of `rbv show`'s contact
    sheet and of `persons show`. FACE must be one of the person's faces. If the face
    leaves the person later (a move, not-this-person, a clustering run), the person is
    shown by its automatic face; after a pixel edit the same face in the new image data
    is the cover. --auto goes back to the automatic face.

    Examples:

        rbv persons cover "Ada Lovelace" 1201

        rbv persons cover "Ada Lovelace" --auto --dry-run
    """
    from rbv.errors import ConfigError

    if (face is None) == (not auto):
        raise ConfigError("give a FACE of the person, or --auto for its automatic face "
                          "(not both)" if auto else "give a FACE of the person (see `rbv "
                          "persons show PERSON`), or --auto for its automatic face")
    lib = library_of(ctx, database)
    done = lib.cover(lib.find(person), face, dry_run=dry_run)
    if as_json:
        print_json({"person": str(done.person), "face": done.face, "was": done.was,
                    "edit": done.edit_id, "dry_run": dry_run})
        return
    whom = who(lib, done.person)[0]
    chosen = f"face {done.face}" if done.face is not None else "its automatic face"
    if done.was == done.face:
        typer.echo(f"{whom[0].upper()}{whom[1:]} is shown by {chosen} already; nothing "
                   "changed.")
    elif dry_run:
        typer.echo(f"Would show {whom} by {chosen}. Dry run: nothing was changed.")
    else:
        typer.echo(f"{whom[0].upper()}{whom[1:]} is shown by {chosen} now.")

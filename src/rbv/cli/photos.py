"""``rbv photos``: find photos by who is in them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rbv.cli.common import DatabaseOption, JsonOption, library_of, print_json, say
from rbv.errors import EXIT_PARTIAL, printable
from rbv.jobs.persons.birthdays import parse_ages
from rbv.words import counted


def photos_command(
    ctx: typer.Context,
    person: Annotated[list[str], typer.Option(
        "--person", "-p", help="A person in the photo (name, part of a name, uuid or "
        "uuid prefix); repeat for photos with all of them.", show_default=False)],
    without: Annotated[list[str] | None, typer.Option(
        "--without", help="Leave out photos with this person (repeatable).",
        show_default=False)] = None,
    since: Annotated[str | None, typer.Option(
        "--from", help="Taken on or after YYYY, YYYY-MM or YYYY-MM-DD (EXIF date; photos "
        "without one drop out).", show_default=False)] = None,
    until: Annotated[str | None, typer.Option(
        "--to", help="Taken up to and including YYYY, YYYY-MM or YYYY-MM-DD.",
        show_default=False)] = None,
    age: Annotated[str | None, typer.Option(
        "--age", help="Taken when the first --person was this old, in whole years: 3, 3-5 "
        "(inclusive), 4- (4 or older), -2 (up to 2); by the birthday `rbv persons born` "
        "gave (photos without a date drop out, and are counted); without a birthday, by "
        "the ages estimated from the person's faces (said as estimated).",
        show_default=False)] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many photos.",
                                              show_default=False)] = None,
    copy_to: Annotated[Path | None, typer.Option(
        "--copy-to", help="Copy the photos into this folder (a quick album).",
        show_default=False)] = None,
    link_to: Annotated[Path | None, typer.Option(
        "--link-to", help="Symlink the photos into this folder instead of copying.",
        show_default=False)] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the photos that show every given person, oldest first.

    Each line: date, path, and who else rbv found in the photo. --without drops photos
    with a person, --from/--to keep a date range (inclusive), --age keeps the photos of
    the first person at an age (by its birthday, `rbv persons born`; each line then
    says the age; without a birthday, by the ages an attribute model estimated from
    its faces, said as estimated). --copy-to or --link-to gathers the photos into a folder; re-runs
    leave what is there.

    Examples:

        rbv photos --person "Ada Lovelace"

        rbv photos -p Ada -p Charles --without Mary --from 2019 --to 2021

        rbv photos -p Ada --link-to ~/albums/ada --json

        rbv photos -p Ada --age 3-5
    """
    lib = library_of(ctx, database)
    result = lib.photos(lib.find_all(person), without=lib.find_all(without or ()),
                        since=since, until=until, age=age, limit=limit, copy_to=copy_to,
                        link_to=link_to)
    if as_json:
        print_json(result.as_dict())
    else:
        for hit in result.photos:
            when = hit.taken_at.strftime("%Y-%m-%d") if hit.taken_at else "----------"
            others = f"  (with {', '.join(hit.others)})" if hit.others else ""
            aged = f"  {result.age(hit)}" if result.aged else ""
            typer.echo(printable(f"{when}{aged}  {hit.paths[0] if hit.paths else '?'}"
                                 f"{others}"))
        placed = sum(a.action != "present" for a in result.album)
        if result.album:
            typer.echo(f"{counted(placed, 'photo')} placed in {copy_to or link_to}.")
        at = f" aged {parse_ages(age).words()}" if result.aged and age else ""
        if result.estimated is not None:
            at += (f" as estimated from the faces ({result.persons[0]} has no birthday: "
                   "`rbv persons born` gives one)")
        say(f"{counted(len(result.photos), 'photo')} with "
            f"{' and '.join(result.persons)}{at}.")
        if result.unestimated:
            say(f"{counted(result.unestimated, 'photo')} without an estimated age left out "
                "(`rbv enrich --attribute-model PATH` estimates them).")
        if result.undated:
            typer.echo(f"{counted(result.undated, 'photo')} with no date left out (no age to "
                       "tell).")
    for error in result.album_errors:
        typer.echo(printable(f"Error: {error}"), err=True)
    if result.album_errors:
        raise typer.Exit(EXIT_PARTIAL)

"""``rbv persons born``: a person's birthday, for the age at each photo."""

from __future__ import annotations

from typing import Annotated

import typer

from rbv.cli.common import DatabaseOption, JsonOption, library_of, print_json
from rbv.cli.naming import who
from rbv.errors import ConfigError
from rbv.jobs.persons import birthdays


def born(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="Name, unique part of a name, uuid or uuid "
                                          "prefix (4+ chars).")],
    day: Annotated[str | None, typer.Argument(
        metavar="[YYYY-MM-DD]", help="The birthday, a whole date (not in the future).",
        show_default=False)] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Forget the birthday.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would change; "
                                          "change nothing.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Give a person a birthday: `rbv persons show` and `rbv serve` then say the age at
    each photo (from its EXIF date), and `rbv photos --person P --age 3-5` finds the
    photos of an age. A whole date: an age from a year alone would be a year off. The
    birthday stays with the person through every `rbv cluster` run; `rbv persons undo`
    reverts it.

    Examples:

        rbv persons born "Ada Lovelace" 2019-05-02

        rbv persons born "Ada Lovelace" --clear --dry-run
    """
    if day is not None and clear:
        raise ConfigError("give a birthday or --clear, not both")
    if day is None and not clear:
        raise ConfigError("give the birthday as YYYY-MM-DD, or --clear to forget it")
    when = None if clear else birthdays.parse_born(day or "")
    lib = library_of(ctx, database)
    done = lib.set_born(lib.find(person), when, dry_run=dry_run)
    if as_json:
        print_json(done.as_dict(dry_run))
        return
    whom = who(lib, done.person)[0]
    whose = f"{whom[0].upper()}{whom[1:]}"
    if not done.changed:
        typer.echo(f"{whose} has {'no birthday' if when is None else 'that birthday'} "
                   "already; nothing changed.")
        return
    was = f" (was {done.was.isoformat()})" if done.was else ""
    if dry_run:
        what = f"set the birthday of {whom} to {when.isoformat()}" if when else \
            f"clear the birthday of {whom}"
        typer.echo(f"Would {what}{was}. Dry run: nothing was changed.")
        return
    what = f"born {when.isoformat()}" if when else "birthday cleared"
    typer.echo(f"{whose}: {what}{was}. `rbv persons undo` reverts it.")

"""``rbv persons history`` and ``rbv persons undo``: the log of manual edits."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from rbv.cli.common import DatabaseOption, JsonOption, library_of, print_json, say
from rbv.cli.tables import print_table
from rbv.errors import EditConflict, printable
from rbv.words import counted


def history(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(min=0, help="At most this many edits (0 = all).")] = 50,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Logged edits, newest first, with the rows each changed.

    Every persons name/merge/split/move/not-this-person/hide/unhide/born, eras --apply,
    faces same/different and undo is logged; `rbv persons undo` reverts them.

    Example:

        rbv persons history --limit 10
    """
    lib = library_of(ctx, database)
    rows = lib.history(limit)
    if as_json:
        print_json([r.as_dict() for r in rows])
        return
    # "what" last: it is the long one, and takes the room the others leave; persons
    # in it by name (or short id), as everywhere users read them
    states = [f"undone by #{r.undone_by}" if r.undone_by is not None
              else "undo of " + ", ".join(f"#{u}" for u in r.undoes) if r.undoes else ""
              for r in rows]
    shown = any(states)  # no column that is empty on every row
    table = Table("edit", "when", "command", *(["state"] if shown else []), "rows", "what",
                  title=counted(len(rows), "edit"), caption="Edit numbers skip dry runs and "
                  "edits that changed nothing." if rows else None)
    for r, state, what in zip(rows, states, lib.relabel([r.summary for r in rows]),
                              strict=True):
        table.add_row(f"#{r.id}", f"{r.created_at:%Y-%m-%d %H:%M}",
                      r.command.removeprefix("persons "), *([state] if shown else []),
                      f"{r.rows:,}", what)
    print_table(table, optional=["rows", "when"], whole=["edit", "command"],
                wants=("what", WHAT_WIDTH))


WHAT_WIDTH = 36
"""Characters of "what" `persons history` keeps before the other columns get more than
their longest word; "rows", then "when", are left out when it cannot (issue 52 #7: at
80 columns "what" had 13 characters and a merge took 17 lines)."""


def undo(
    ctx: typer.Context,
    count: Annotated[int, typer.Argument(min=1, metavar="N",
                                         help="How many edits to undo.")] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be undone; "
                                          "change nothing.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Undo the last N edits exactly (see `rbv persons history`).

    The rows the last N edits still in effect changed are written back as they
    were, newest edit first, all or nothing. Refused, changing nothing, when a
    row one of them changed was changed again since by something not undone
    with it (e.g. `rbv cluster` placed a face that not-this-person had taken
    out); the message names the edit. An undo shows in the history but is not
    undone by a later undo: that reverts the edit before it (redo an edit by
    running it again).

    Examples:

        rbv persons undo

        rbv persons undo 3 --dry-run
    """
    lib = library_of(ctx, database)
    try:
        result = lib.undo(count, dry_run=dry_run)
    except EditConflict as exc:  # the refusal names an edit and a row: wrapped at 80
        say(f"Error: {printable(str(exc))}", err=True)
        raise typer.Exit(exc.exit_code) from None
    if as_json:
        print_json({"undone": [e.as_dict() for e in result.undone], "rows": result.rows,
                    "edit": result.edit_id, "dry_run": dry_run})
        return
    verb = "Would undo" if dry_run else "Undid"
    for e, what in zip(result.undone, lib.relabel([e.summary for e in result.undone]),
                       strict=True):
        say(f"{verb} #{e.id} {e.command}: {what}")
    # what the rows are: the faces' persons, names and decisions the edits changed
    what = (f"{counted(result.rows, 'row')} of faces, persons, names and decisions "
            "as they were")
    say(f"Would restore {what}." if dry_run else f"Restored {what}.")
    if dry_run:
        typer.echo("Dry run: nothing was changed.")

"""``rbv persons confirm``: a person's unconfirmed faces listed, and confirmed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from rbv.bounds import BIGINT_MAX
from rbv.cli.common import (
    DatabaseOption,
    DryRunOption,
    JsonOption,
    PersonArg,
    library_of,
    print_json,
    say,
)
from rbv.cli.naming import who
from rbv.errors import ConfigError
from rbv.words import counted

if TYPE_CHECKING:
    from rbv.jobs.persons.confirms import Unconfirmed

LISTED = 24
"""Unconfirmed faces listed at once (as one screen of ``rbv serve`` shows them)."""


def confirm(ctx: typer.Context, person: PersonArg,
            faces: Annotated[list[int] | None, typer.Argument(
                help="Faces of the person to confirm (see the list this command prints "
                "without them).", min=1, max=BIGINT_MAX, metavar="[FACE]...",
                show_default=False)] = None,
            every: Annotated[bool, typer.Option(
                "--all", help="Confirm every unconfirmed face of the person.")] = False,
            limit: Annotated[int, typer.Option(
                min=1, max=100_000, help="Unconfirmed faces listed (without FACE or "
                "--all).")] = LISTED,
            dry_run: DryRunOption = False, database: DatabaseOption = None,
            as_json: JsonOption = False) -> None:
    """Confirm a person's faces: those a clustering run put there stay
    unconfirmed until you confirm them (placed by hand: no automatic run moves
    them again) or take them out (`rbv persons not-this-person`).

    Without FACE or --all, lists the unconfirmed faces, least alike to the
    person's confirmed faces first (to all its faces while none is): the wrong
    ones gather at the top, so reject those, then confirm the rest.

    Examples:

        rbv persons confirm "Ada Lovelace"

        rbv persons confirm "Ada Lovelace" 1201 1202

        rbv persons confirm "Ada Lovelace" --all --dry-run
    """
    lib = library_of(ctx, database)
    target = lib.find(person)
    if faces and every:
        raise ConfigError("give faces or --all, not both")
    if not faces and not every:
        _list(lib.unconfirmed(target, limit), as_json)
        return
    done = lib.confirm(target, None if every else faces, dry_run=dry_run)
    if as_json:
        print_json({**done.as_dict(), "dry_run": dry_run})
        return
    whom = who(lib, done.person)[0]
    left = f"{counted(done.left, 'face')} of {whom} left to confirm"
    if dry_run:
        say(f"Would confirm {counted(done.confirmed, 'face')} of {whom}. Dry run: nothing "
            "was changed.")
        return
    if done.edit_id is None:
        say(f"Nothing to confirm: those faces are confirmed already; {left}.")
        return
    say(f"Confirmed {counted(done.confirmed, 'face')} of {whom}: no automatic run moves "
        f"{'it' if done.confirmed == 1 else 'them'} again (edit #{done.edit_id}); {left}.")


def _list(found: Unconfirmed, as_json: bool) -> None:
    """The unconfirmed faces listed, least alike first."""
    if as_json:
        print_json(found.as_dict())
        return
    whom = found.name or f"person {str(found.person)[:8]}"
    if not found.left:
        say(f"Every face of {whom} is confirmed ({counted(found.confirmed, 'face')}).")
        return
    say(f"{counted(found.left, 'unconfirmed face')} of {whom} "
        f"({counted(found.confirmed, 'face')} confirmed), least alike first:")
    for face in found.faces:
        typer.echo(f"  face {face.id}  photo {face.image_id}  similarity "
                   f"{face.similarity:.2f}")
    if found.left > len(found.faces):
        say(f"… and {found.left - len(found.faces):,} more (--limit shows more).")

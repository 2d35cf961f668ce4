"""``rbv persons merge``, ``split``, ``move`` and ``not-this-person``: the edits that
move faces from person to person."""

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
from rbv.cli.remedies import command_line
from rbv.cluster.defaults import Method
from rbv.words import counted

if TYPE_CHECKING:
    from rbv.jobs.persons.person_edit import Edited
    from rbv.library import Library


FacesArg = Annotated[list[int], typer.Argument(help="Face ids (see `rbv persons show`).",
                                               min=1, max=BIGINT_MAX)]


def merge(ctx: typer.Context, target: PersonArg,
          sources: Annotated[list[str], typer.Argument(help="Persons merged into TARGET.")],
          override: Annotated[bool, typer.Option(
              "--override", help="Merge even when earlier decisions keep a face of one "
              "apart from another (not-this-person, faces different); they are removed, "
              "and said.")] = False,
          keep_name: Annotated[str | None, typer.Option(
              "--keep-name", metavar="NAME", help="Persons of different names: the one "
              "of this name is kept (its id and name), the others join it.",
              show_default=False)] = None,
          keep_born: Annotated[str | None, typer.Option(
              "--keep-born", metavar="YYYY-MM-DD", help="Persons of different birthdays: "
              "this one stays.", show_default=False)] = None,
          dry_run: DryRunOption = False, database: DatabaseOption = None,
          as_json: JsonOption = False) -> None:
    """Merge persons into one: their faces move to the person kept, which is the named
    one, whichever order you give them in (its id stays, so links to it, in the history
    and in Immich, still hold); with no name among them, TARGET. Persons of two
    different names are refused, with the two commands, unless --keep-name says which
    name stays; two different birthdays likewise (--keep-born). The kept person's
    birthday and cover face stay; where it has none, the other's pass to it. Refused
    when two of the faces are of one photo (a person has one face per photo), and when
    a face of one was rejected from another (`persons not-this-person`) or two of their
    faces are linked as different (`faces different`), unless --override.

    Examples:

        rbv persons merge "Ada Lovelace" 77c1 9e0b --dry-run

        rbv persons merge 3f2a 77c1 --keep-name "Ada Lovelace"
    """
    lib = library_of(ctx, database)
    # names before the merge (a source's may pass to TARGET)
    ids = lib.find_all([target, *sources])
    named = lib.labels(ids)
    done = lib.merge(ids[0], ids[1:], override=override, dry_run=dry_run,
                     keep_name=keep_name, keep_born=keep_born)
    kept = done.person or ids[0]
    others = [p for p in ids if p != kept]
    into, merged = named[kept], ", ".join(named[p] for p in others)
    if as_json:
        _print_edit(lib, done, dry_run, merged=[str(p) for p in others])
        return
    kept_words = (f" ({named[kept]} is kept, not {named[ids[0]]}: it has the name)"
                  if kept != ids[0] else "")
    if dry_run:
        _echo(f"Would merge {merged} into {into}: {done.faces:,} faces would move"
              f"{kept_words}. Dry run: nothing was changed.", done.overrides, dry_run)
        return
    _echo(f"Merged {merged} into {into}: {done.faces:,} faces moved{kept_words}.",
          done.overrides, dry_run)


def _print_edit(lib: Library, done: Edited, dry_run: bool, **extra: object) -> None:
    """The edit as JSON: the person (None: a new one a dry run would make), its name,
    the faces moved (would move) and what it overrode, in words."""
    name = None if done.person is None else lib.person(done.person).name
    print_json({"person": None if done.person is None else str(done.person), "name": name,
                "faces": done.faces, **extra, "overrides": done.overrides,
                "dry_run": dry_run})


def _echo(line: str, overrides: str, dry_run: bool) -> None:
    """The edit's line, then what it overrode (always said)."""
    typer.echo(line)
    if overrides:
        typer.echo(("It would override " if dry_run else "This overrides ") + overrides
                   + (": they would be removed." if dry_run else
                      ": removed (`rbv persons undo` puts them back)."))


def split(
    ctx: typer.Context, person: PersonArg,
    threshold: Annotated[float | None, typer.Option(
        min=0.0, max=1.0,
        help="Instead: re-cluster at this similarity (0-1) with a threshold method "
        "(agglomerative unless --method says).", show_default=False)] = None,
    method: Annotated[Method | None, typer.Option(
        help="Instead: re-cluster with this method (at the library's own setting for it, "
        "or at --threshold); the largest group keeps the person.",
        show_default=False)] = None,
    dry_run: DryRunOption = False,
    database: DatabaseOption = None, as_json: JsonOption = False,
) -> None:
    """Split a person in two when `rbv persons review` says it looks like two people:
    the same test, so the same halves (faces linked `same` stay together). The larger
    half keeps the person and its name, the smaller becomes a new person; both are
    placed by hand, so every re-cluster keeps the split. Otherwise it stays whole, and
    says why. --threshold/--method re-cluster its faces instead.

    Examples:

        rbv persons split "Ada Lovelace" --dry-run

        rbv persons split "Ada Lovelace" --threshold 0.5
    """
    lib = library_of(ctx, database)
    result = lib.split(lib.find(person), threshold=threshold, method=method,
                       dry_run=dry_run)
    halves = result.halves
    if as_json:
        print_json({"person": str(result.person), "kept": result.kept,
                    "new_persons": [str(p) for p in result.new_persons], "sizes": result.sizes,
                    "threshold": result.threshold, "setting": result.setting,
                    "two_people": None if halves is None else halves.as_dict(command_line),
                    "dry_run": dry_run})
        return
    whom, *created = who(lib, result.person, *result.new_persons)
    why = f": {halves.why()}" if halves is not None else ""
    if len(result.sizes) < 2:
        reason = why or (" (no two halves of two or more faces each, faces linked `same` "
                         "kept together)"
                         if result.threshold is None and method is None else "")
        say(f"{whom[0].upper()}{whom[1:]} stays whole with {result.setting}{reason}.")
        return
    if dry_run:
        say(f"Would split {whom} with {result.setting} into {len(result.sizes)} persons of "
            + ", ".join(map(str, result.sizes)) + f" faces{why}. Dry run: nothing was changed.")
        return
    made = ", ".join(f"{p} ({counted(n, 'face')})"
                     for p, n in zip(created, result.sizes[1:], strict=True))
    say(f"Split {whom} with {result.setting}: kept {counted(result.kept, 'face')}; "
        f"{'new persons' if len(created) > 1 else 'new'}: {made}")


def move(
    ctx: typer.Context, faces: FacesArg,
    to: Annotated[str | None, typer.Option("--to", help="Target person. Default: a new "
                                           "person.", show_default=False)] = None,
    dry_run: DryRunOption = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Move faces to a person by hand (kept by every re-cluster). Refused when two of
    the faces would be of one photo (a person has one face per photo). The later
    decision wins, and is said: a rejection of a face from the person
    (`not-this-person`), its 'different' links with the person's faces and its 'same'
    links with faces put in another person by hand are removed.

    Examples:

        rbv persons move 1201 1202 --to "Ada Lovelace"

        rbv persons move 1203           # into a new person of its own
    """
    lib = library_of(ctx, database)
    done = lib.move(faces, to=None if to is None else lib.find(to), dry_run=dry_run)
    if as_json:
        _print_edit(lib, done, dry_run, new_person=to is None)
        return
    whom = who(lib, done.person)[0]
    if dry_run:
        _echo(f"Would move {counted(done.faces, 'face')} to {whom}. Dry run: nothing was "
              "changed.",
              done.overrides, dry_run)
        return
    _echo(f"Moved {counted(done.faces, 'face')} to {'new ' if to is None else ''}{whom}.",
          done.overrides, dry_run)


def not_this_person(ctx: typer.Context, person: PersonArg, faces: FacesArg,
                    dry_run: DryRunOption = False, database: DatabaseOption = None,
                    as_json: JsonOption = False) -> None:
    """Take faces out of a person for good: they are never assigned to it again (the
    next `rbv cluster` places them elsewhere). Their 'same' links with the person's
    faces are removed, and said.

    Example:

        rbv persons not-this-person "Ada Lovelace" 1207 1311
    """
    lib = library_of(ctx, database)
    done = lib.reject(lib.find(person), faces, dry_run=dry_run)
    if as_json:
        _print_edit(lib, done, dry_run)
        return
    whom = who(lib, done.person)[0]
    if dry_run:
        _echo(f"Would remove {counted(done.faces, 'face')} from {whom}. Dry run: nothing was "
              "changed.",
              done.overrides, dry_run)
        return
    _echo(f"{counted(done.faces, 'face')} removed from {whom}; "
          + ("it" if done.faces == 1 else "they") + " will not be assigned to it again.",
          done.overrides, dry_run)

"""``rbv persons …``: list, name, merge, split, move faces, hide, "not this person"."""

from __future__ import annotations

from datetime import date, datetime
from types import ModuleType
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from rbv.bounds import BIGINT_MAX
from rbv.cli import persons_born, persons_review, persons_undo
from rbv.cli.common import (
    DatabaseOption,
    JsonOption,
    ModelPackOption,
    command_group,
    print_json,
    say,
    settings_of,
)
from rbv.cli.naming import named_list, short_ids, who
from rbv.cli.tables import print_table
from rbv.cluster.defaults import Method
from rbv.jobs.persons import lookup
from rbv.store import Database, open_database
from rbv.words import counted

if TYPE_CHECKING:
    from rbv.jobs.persons.edits import Edited

app = command_group(help="List, name, merge, split and fix persons; every edit is logged "
                        "(`history`) and can be undone (`undo`). A PERSON is a uuid, a unique uuid "
                        "prefix, a name, or a unique part of a name.")

PersonArg = Annotated[str, typer.Argument(help="Name, unique part of a name, uuid or uuid "
                                          "prefix (4+ chars).")]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Say what would change; "
                                            "change nothing.")]
FacesArg = Annotated[list[int], typer.Argument(help="Face ids (see `rbv persons show`).",
                                               min=1, max=BIGINT_MAX)]


def _editing() -> ModuleType:
    """The edit jobs, imported when an edit runs: they bring the clustering stack (numpy,
    scipy), which `persons list/show/history` do not need (issue 24 #8)."""
    from rbv.jobs.persons import edits as editing

    return editing


def _db(ctx: typer.Context, database: str | None):  # type: ignore[no-untyped-def]
    return open_database(settings_of(ctx, database_url=database))


@app.command("list")
def list_(
    ctx: typer.Context,
    model_pack: ModelPackOption = None,
    hidden: Annotated[bool, typer.Option("--hidden", help="Include hidden persons.")] = False,
    min_faces: Annotated[int, typer.Option(min=1, help="Only persons with this many faces "
                                           "(named persons always show).")] = 1,
    limit: Annotated[int, typer.Option(min=0, help="At most this many rows (0 = all).")] = 50,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Persons with names and face counts, most faces first.

    Examples:

        rbv persons list

        rbv persons list --min-faces 5 --json
    """
    db = _db(ctx, database)
    rows = lookup.list_persons(db, model_pack, include_hidden=hidden, min_faces=min_faces)
    total = len(rows)
    rows = rows[:limit] if limit else rows
    if as_json:
        print_json([r.as_dict() for r in rows])
        return
    packs = sorted({r.pack for r in rows})
    # one pack: said once in the title, leaving its column's room to the names
    title = f"{total:,} persons" + (f" of {packs[0]}" if len(packs) == 1 else "")
    # ids shortened (any unique prefix is accepted back; --json has them whole), so
    # that names keep their room; "hidden" only where hidden persons are listed
    table = Table("id", "name", "faces", "photos", *(["pack"] if len(packs) > 1 else []),
                  *(["hidden"] if hidden else []), title=title)
    ids = short_ids([r.id for r in rows])
    for r, short in zip(rows, ids, strict=True):
        table.add_row(short, r.name or "-", f"{r.faces:,}", f"{r.images:,}",
                      *([r.pack] if len(packs) > 1 else []),
                      *(["yes" if r.hidden else ""] if hidden else []))
    print_table(table, optional=["photos"], whole=["id", "name"])
    if len(rows) < total:
        typer.echo(f"The first {len(rows):,} shown: --limit 0 lists all {total:,} (--limit N "
                   "the first N).")


@app.command("show")
def show(ctx: typer.Context, person: PersonArg,
         limit: Annotated[int, typer.Option(min=1, help="At most this many faces.")] = 100,
         database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """A person's faces: face id, photo path, box, how it was assigned (a face drawn
    by hand, `rbv faces add`, is marked "drawn"). Best detections first, after the cover
    face chosen with `rbv persons cover` (marked "cover"); with a birthday (`rbv persons
    born`), the age at each photo ("3 years", "18 months", "no date").

    Example:

        rbv persons show "Ada Lovelace"
    """
    from rbv.jobs.persons.birthdays import age_words, born_of

    db = _db(ctx, database)
    pid, title, faces = lookup.faces(db, person, limit)
    chosen = lookup.cover(db, pid)
    born = born_of(db, pid)
    if as_json:
        print_json({"person": str(pid), "cover": chosen,
                    "born": born.isoformat() if born else None,
                    "faces": [{**f.as_dict(), **_age(born, f.taken_at)} for f in faces]})
        return
    title += "" if title.startswith("person ") else f" ({lookup.short_id(pid)})"
    title += f", born {born.isoformat()}" if born else ""
    table = Table("face", "photo", *(["age"] if born else []), "box", "score", "assigned",
                  title=title)
    for f in faces:
        table.add_row(str(f.id), f.path or "-", *([age_words(born, f.taken_at)] if born
                                                  else []),
                      ",".join(f"{v:.0f}" for v in f.bbox), f"{f.det_score:.2f}",
                      (f.assigned_by or "-") + ("" if f.drawn is None else ", drawn")
                      + (" · cover" if f.id == chosen else ""))
    print_table(table, optional=["score", "box"], whole=["face", *(["age"] if born else [])])


def _age(born: date | None, taken: datetime | None) -> dict[str, object]:
    """A face's age in --json: in words and in whole months (null: no birthday, no date,
    or before birth)."""
    from rbv.jobs.persons.birthdays import age_months, age_words

    months = age_months(born, taken) if born else None
    return {"age": age_words(born, taken) or None,
            "age_months": months if months is not None and months >= 0 else None}


@app.command("name")
def name(ctx: typer.Context, person: PersonArg,
         new_name: Annotated[str, typer.Argument(metavar="NAME")],
         force: Annotated[bool, typer.Option(
             "--force", help="Give the name even when another person has it.")] = False,
         database: DatabaseOption = None) -> None:
    """Name or rename a person. Names survive `rbv cluster --full`. A name another
    person has already is refused with the merge command that joins them (--force
    names both). A name is one line of UTF-8 text of at most 200 characters: control
    characters (a newline, a tab) and bytes that are not UTF-8 are refused; invisible
    characters (bidi controls, zero-width spaces) are removed, and said.

    Example:

        rbv persons name 3f2a9c "Ada Lovelace"
    """
    from rbv.formats.names import person_name

    db = _db(ctx, database)
    pid = lookup.resolve(db, person)
    was = lookup.labels(db, [pid])[pid]
    given = person_name(new_name)
    if given.note:
        typer.echo(f"Note: {given.note}.", err=True)
    done = _editing().name(db, pid, given.text, force=force)
    if done.edit_id is None:
        typer.echo(f"{was[0].upper()}{was[1:]} is named {given.text!r} already; "
                   "nothing changed.")
        return
    typer.echo(f"{was[0].upper()}{was[1:]} is now named {given.text!r}.")


app.command("rename", help="Same as `name`.")(name)


@app.command("merge")
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
    db = _db(ctx, database)
    # names before the merge (a source's may pass to TARGET)
    ids = lookup.resolve_all(db, [target, *sources])
    named = lookup.labels(db, ids)
    done = _editing().merge(db, ids[0], ids[1:], override=override, dry_run=dry_run,
                            keep_name=keep_name, keep_born=keep_born)
    kept = done.person or ids[0]
    others = [p for p in ids if p != kept]
    into, merged = named[kept], ", ".join(named[p] for p in others)
    if as_json:
        _print_edit(db, done, dry_run, merged=[str(p) for p in others])
        return
    kept_words = (f" ({named[kept]} is kept, not {named[ids[0]]}: it has the name)"
                  if kept != ids[0] else "")
    if dry_run:
        _echo(f"Would merge {merged} into {into}: {done.faces:,} faces would move"
              f"{kept_words}. Dry run: nothing was changed.", done.overrides, dry_run)
        return
    _echo(f"Merged {merged} into {into}: {done.faces:,} faces moved{kept_words}.",
          done.overrides, dry_run)


def _print_edit(db: Database, done: Edited, dry_run: bool, **extra: object) -> None:
    """The edit as JSON: the person (None: a new one a dry run would make), its name,
    the faces moved (would move) and what it overrode, in words."""
    name = None if done.person is None else lookup.name(db, done.person)
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


@app.command("split")
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
    db = _db(ctx, database)
    result = _editing().split(db, lookup.resolve(db, person), threshold, method,
                              dry_run=dry_run)
    halves = result.halves
    if as_json:
        print_json({"person": str(result.person), "kept": result.kept,
                    "new_persons": [str(p) for p in result.new_persons], "sizes": result.sizes,
                    "threshold": result.threshold, "setting": result.setting,
                    "two_people": None if halves is None else halves.as_dict(),
                    "dry_run": dry_run})
        return
    whom, *created = who(db, result.person, *result.new_persons)
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


@app.command("move")
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
    db = _db(ctx, database)
    done = _editing().move(db, faces, None if to is None else lookup.resolve(db, to),
                           dry_run=dry_run)
    if as_json:
        _print_edit(db, done, dry_run, new_person=to is None)
        return
    whom = who(db, done.person)[0]
    if dry_run:
        _echo(f"Would move {counted(done.faces, 'face')} to {whom}. Dry run: nothing was "
              "changed.",
              done.overrides, dry_run)
        return
    _echo(f"Moved {counted(done.faces, 'face')} to {'new ' if to is None else ''}{whom}.",
          done.overrides, dry_run)


@app.command("not-this-person")
def not_this_person(ctx: typer.Context, person: PersonArg, faces: FacesArg,
                    dry_run: DryRunOption = False, database: DatabaseOption = None,
                    as_json: JsonOption = False) -> None:
    """Take faces out of a person for good: they are never assigned to it again (the
    next `rbv cluster` places them elsewhere). Their 'same' links with the person's
    faces are removed, and said.

    Example:

        rbv persons not-this-person "Ada Lovelace" 1207 1311
    """
    db = _db(ctx, database)
    done = _editing().reject(db, lookup.resolve(db, person), faces, dry_run=dry_run)
    if as_json:
        _print_edit(db, done, dry_run)
        return
    whom = who(db, done.person)[0]
    if dry_run:
        _echo(f"Would remove {counted(done.faces, 'face')} from {whom}. Dry run: nothing was "
              "changed.",
              done.overrides, dry_run)
        return
    _echo(f"{counted(done.faces, 'face')} removed from {whom}; "
          + ("it" if done.faces == 1 else "they") + " will not be assigned to it again.",
          done.overrides, dry_run)


PersonsArg = Annotated[list[str], typer.Argument(
    help="Persons: names, unique parts of names, uuids or uuid prefixes (4+ chars).",
    metavar="PERSON")]
SomePersonsArg = Annotated[list[str] | None, typer.Argument(
    help="Persons: names, unique parts of names, uuids or uuid prefixes (4+ chars).",
    metavar="[PERSON]...", show_default=False)]
SHOWN_HIDDEN = 10
"""Persons a bulk hide's dry run lists by name (the rest are counted)."""


@app.command("hide")
def hide(ctx: typer.Context, persons: SomePersonsArg = None,
         unnamed: Annotated[bool, typer.Option(
             "--unnamed", help="Instead of PERSONs: every visible unnamed person with at "
             "most --max-faces faces (the strangers of a library), as one edit.")] = False,
         max_faces: Annotated[int | None, typer.Option(
             "--max-faces", min=1, help="With --unnamed: hide those with at most this many "
             "faces.", show_default=False)] = None,
         model_pack: Annotated[str | None, typer.Option(
             "--model-pack", help="With --unnamed: only this model pack's persons (by "
             "name or folder). Default: every pack's.", show_default=False)] = None,
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
    db = _db(ctx, database)
    done = _editing().hide_unnamed(db, max_faces, model_pack, dry_run=dry_run)
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
        names = who(db, *[p for p, _ in shown])
        listed = ", ".join(f"{w} ({n})" for w, (_, n) in zip(names, shown, strict=True))
        more = len(done.persons) - len(shown)
        listed += f" and {more:,} more" if more else ""
        typer.echo(f"Would hide {count} ({counted(done.faces, 'face')}): {listed}. Dry run: "
                   "nothing was changed.")
        return
    # Counted, not listed: a bulk hide can be hundreds of persons (--json lists them).
    typer.echo(f"Hid {count} ({counted(done.faces, 'face')}).")
    typer.echo("See them: `rbv persons list --hidden`; `rbv persons undo` shows them again.")


@app.command("unhide")
def unhide(ctx: typer.Context, persons: PersonsArg, dry_run: DryRunOption = False,
           database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Show hidden persons in `persons list` again.

    Example:

        rbv persons unhide 77c1
    """
    _hide(ctx, persons, database, dry_run, as_json, hidden=False)


def _hide(ctx: typer.Context, refs: list[str], database: str | None, dry_run: bool,
          as_json: bool, *, hidden: bool) -> None:
    db = _db(ctx, database)
    ids = list(dict.fromkeys(lookup.resolve_all(db, refs)))
    n = len(ids) if dry_run else _editing().hide(db, ids, hidden).persons
    if as_json:
        print_json({"persons": [str(p) for p in ids], "hidden": hidden, "count": n,
                    "dry_run": dry_run})
        return
    if dry_run:
        typer.echo(f"Would {'hide' if hidden else 'unhide'} {counted(n, 'person')}: "
                   f"{named_list(db, ids)}. Dry run: nothing was changed.")
        return
    typer.echo(f"{'Hid' if hidden else 'Unhid'} {counted(n, 'person')}: "
               f"{named_list(db, ids)}.")


@app.command("cover")
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
    db = _db(ctx, database)
    done = _editing().cover(db, lookup.resolve(db, person), face, dry_run=dry_run)
    if as_json:
        print_json({"person": str(done.person), "face": done.face, "was": done.was,
                    "edit": done.edit_id, "dry_run": dry_run})
        return
    whom = who(db, done.person)[0]
    chosen = f"face {done.face}" if done.face is not None else "its automatic face"
    if done.was == done.face:
        typer.echo(f"{whom[0].upper()}{whom[1:]} is shown by {chosen} already; nothing "
                   "changed.")
    elif dry_run:
        typer.echo(f"Would show {whom} by {chosen}. Dry run: nothing was changed.")
    else:
        typer.echo(f"{whom[0].upper()}{whom[1:]} is shown by {chosen} now.")


app.command("suggest")(persons_review.suggest)
app.command("review")(persons_review.review)
app.command("history")(persons_undo.history)
app.command("undo")(persons_undo.undo)
app.command("born")(persons_born.born)

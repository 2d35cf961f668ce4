"""``rbv persons …``: the command group, with ``list``, ``show`` and ``name`` (the other
commands live in the ``rbv.cli.persons_*`` modules and are added here, in the order
``--help`` lists them)."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from rbv.cli import (
    persons_born,
    persons_confirm,
    persons_hide_cover,
    persons_moves,
    persons_review,
    persons_undo,
)
from rbv.cli.common import (
    DatabaseOption,
    JsonOption,
    ModelPackOption,
    PersonArg,
    command_group,
    library_of,
    print_json,
    say,
)
from rbv.cli.naming import short_ids
from rbv.cli.tables import print_table
from rbv.words import counted

if TYPE_CHECKING:
    from rbv.faces.estimates import EstimatedAges

app = command_group(help="List, name, merge, split and fix persons; every edit is logged "
                        "(`history`) and can be undone (`undo`). A PERSON is a uuid, a unique uuid "
                        "prefix, a name, or a unique part of a name.")


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
    rows = library_of(ctx, database).persons(hidden=hidden, min_faces=min_faces,
                                             model_pack=model_pack)
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
    by hand, `rbv faces add`, is marked "drawn"; one whose box was moved, `rbv faces
    box`, "box moved"). Best detections first, after the cover
    face chosen with `rbv persons cover` (marked "cover"); with a birthday (`rbv persons
    born`), the age at each photo ("3 years", "18 months", "no date"). Where an
    attribute model has estimated the faces (`rbv index --attribute-model`, `rbv
    enrich`), each face's estimated age ("~34") and, under the table, the median and
    the range of the person's estimated ages and the gender most faces read as.

    Example:

        rbv persons show "Ada Lovelace"
    """
    from rbv.jobs.persons.birthdays import age_words
    from rbv.jobs.persons.lookup import short_id

    lib = library_of(ctx, database)
    shown = lib.person_faces(lib.find(person), limit)
    pid, title, faces, chosen, born = (shown.person, shown.label, shown.faces, shown.cover,
                                       shown.born)
    estimated = shown.estimated
    if as_json:
        print_json({"person": str(pid), "cover": chosen,
                    "born": born.isoformat() if born else None,
                    "estimated": estimated.as_dict() if estimated else None,
                    "faces": [{**f.as_dict(), **_age(born, f.taken_at)} for f in faces]})
        return
    title += "" if title.startswith("person ") else f" ({short_id(pid)})"
    title += f", born {born.isoformat()}" if born else ""
    guessed = ["est. age"] if any(f.estimated_age is not None for f in faces) else []
    table = Table("face", "photo", *(["age"] if born else []), *guessed, "box", "score",
                  "assigned", title=title)
    for f in faces:
        table.add_row(str(f.id), f.path or "-", *([age_words(born, f.taken_at)] if born
                                                  else []),
                      *([_estimate_words(f.estimated_age)] if guessed else []),
                      ",".join(f"{v:.0f}" for v in f.bbox), f"{f.det_score:.2f}",
                      (f.assigned_by or "-") + _drawn_words(f.drawn, f.moved)
                      + (" · cover" if f.id == chosen else ""))
    print_table(table, optional=["score", "box"],
                whole=["face", *(["age"] if born else []), *guessed])
    if estimated is not None:
        say(estimated_line(estimated))


def _drawn_words(drawn: str | None, moved: bool) -> str:
    """What the "assigned" column adds for a box that is the user's."""
    if drawn is None:
        return ""
    return ", box moved" if moved else ", drawn"


def _estimate_words(age: float | None) -> str:
    return "-" if age is None else f"~{age:.0f}"


def estimated_line(estimated: EstimatedAges) -> str:
    """A person's estimated ages in a sentence that says they are estimates."""
    ages = (f"median {estimated.median:.0f} years, from {estimated.youngest:.0f} to "
            f"{estimated.oldest:.0f}" if estimated.faces > 1
            else f"{estimated.median:.0f} years")
    reads = (f"; most read as {estimated.gender} "
             f"({max(estimated.female, estimated.male)} of {estimated.faces})"
             if estimated.gender else "")
    return (f"Estimated by an age model from {counted(estimated.faces, 'face')}, not "
            f"known: {ages}{reads}.")


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

    lib = library_of(ctx, database)
    pid = lib.find(person)
    was = lib.labels([pid])[pid]
    given = person_name(new_name)
    if given.note:
        typer.echo(f"Note: {given.note}.", err=True)
    done = lib.name(pid, given.text, force=force)
    if done.edit_id is None:
        typer.echo(f"{was[0].upper()}{was[1:]} is named {given.text!r} already; "
                   "nothing changed.")
        return
    typer.echo(f"{was[0].upper()}{was[1:]} is now named {given.text!r}.")


app.command("rename", help="Same as `name`.")(name)
app.command("merge")(persons_moves.merge)
app.command("split")(persons_moves.split)
app.command("move")(persons_moves.move)
app.command("not-this-person")(persons_moves.not_this_person)
app.command("confirm")(persons_confirm.confirm)
app.command("hide")(persons_hide_cover.hide)
app.command("unhide")(persons_hide_cover.unhide)
app.command("cover")(persons_hide_cover.cover)


app.command("suggest")(persons_review.suggest)
app.command("review")(persons_review.review)
app.command("history")(persons_undo.history)
app.command("undo")(persons_undo.undo)
app.command("born")(persons_born.born)

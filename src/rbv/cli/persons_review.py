"""``rbv persons suggest`` and ``rbv persons review``: what to fix, with the command
that fixes it (registered on the ``persons`` group)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from rbv.cli.common import (
    DatabaseOption,
    JsonOption,
    ModelPackOption,
    library_of,
    print_json,
    say,
)
from rbv.cli.remedies import command_line
from rbv.cli.tables import print_table
from rbv.cluster.defaults import DEFAULT_MIN_SCORE, DOUBT_Z
from rbv.errors import printable
from rbv.words import counted

if TYPE_CHECKING:
    from rbv.jobs.persons.evidence import Halves
    from rbv.jobs.persons.review import LargestReport


def _label(name: str | None, person: object) -> str:
    return f"{name} ({str(person)[:8]})" if name else str(person)[:8]


def _common_folder(paths: list[str | None]) -> tuple[str, list[str]]:
    """The folder holding every photo (or '' when that is the root), and each path
    below it ('-' for a photo without a path)."""
    known = [p for p in paths if p]
    under = os.path.commonpath([os.path.dirname(p) for p in known]) if known else ""
    if not under or os.path.dirname(under) == under or not all(
            os.path.isabs(p) == os.path.isabs(known[0]) for p in known):
        return "", [p or "-" for p in paths]
    return under, [os.path.relpath(p, under) if p else "-" for p in paths]


def suggest(
    ctx: typer.Context,
    model_pack: ModelPackOption = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many pairs.")] = 20,
    min_score: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Only pairs scoring at least this (the chance that they "
        "are one person; 0 lists every candidate).")] = DEFAULT_MIN_SCORE,
    sheet: Annotated[Path | None, typer.Option(
        "--sheet", help="Folder for one PNG per pair: the two persons' faces side by side "
        "(NN_<keep>_<merge>.png).", show_default=False)] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pairs of persons that may be one person, in the order `rbv serve` asks about
    them (the score times the faces a "yes" puts right), each with the merge command
    that accepts it.

    The score is the chance that the pair is one person: calibrated from how rarely two
    different people look this alike and how far the pair stands above the persons
    around it, and fitted again to the answers given in `rbv serve`. Persons with faces
    in one photo are never suggested, nor persons you marked as different people.
    `rbv persons undo` takes a merge back.

    Examples:

        rbv persons suggest

        rbv persons suggest --limit 10 --sheet ~/merge-sheets
    """
    report = library_of(ctx, database).suggest(limit, min_score=min_score, sheets=sheet,
                                               model_pack=model_pack)
    for face in report.unreadable:
        typer.echo(f"Error: face {face}: its photo cannot be read (grey tile)", err=True)
    if as_json:
        print_json(report.as_dict(command_line))
        return
    if not report.suggestions:
        cut = f" scoring at least {min_score:.2f}" if min_score > 0 else ""
        hint = (f"; --min-score 0 lists the {counted(report.candidates, 'candidate pair')} "
                "of any score") if min_score > 0 and report.candidates else ""
        say(f"No merge suggestions{cut} among {report.persons:,} persons "
            f"({report.pack}){hint}.")
        return
    table = Table("rank", "keep", "merge", "score", "why",
                  title=f"Merge suggestions ({report.pack}, {report.persons:,} persons)")
    for s in report.suggestions:
        table.add_row(str(s.rank), _label(s.keep.name, s.keep.id),
                      _label(s.other.name, s.other.id), f"{s.probability:.2f}", s.why)
    print_table(table, optional=["why"], whole=["keep", "merge"])
    notes = [
        "score: the chance that the pair is one person, calibrated from how rarely two "
        f"different people look this alike (impostor model: {report.impostor_source}) and "
        "from the answers given in `rbv serve`.",
        "Order: as `rbv serve` asks, the score times the faces a \"yes\" puts right, so a "
        "likely pair of small persons can come after a less likely pair of large ones.",
        (f"{len(report.suggestions)} of the {report.scoring:,} pairs" if
         report.scoring > len(report.suggestions) else "The 1 pair" if report.scoring == 1
         else f"All {report.scoring:,} pairs")
        + f" scoring at least {min_score:.2f}"
        + (" (--limit shows more)" if report.scoring > len(report.suggestions) else "")
        + f"; {counted(report.candidates, 'candidate pair')} of any score, which "
        "`rbv serve` asks about (--min-score 0 lists them)."]
    for note in notes:
        say(note)
    typer.echo("To accept a suggestion, run its command:")
    for s in report.suggestions:
        typer.echo(f"  {s.rank:>2}  {command_line(s.remedy)}")
    for path in report.sheets:
        typer.echo(f"Wrote {path}")


def review(
    ctx: typer.Context,
    person: Annotated[str | None, typer.Argument(
        help="Name, unique part of a name, uuid or uuid prefix (4+ chars). Without "
        "it: the largest persons.",
        show_default=False)] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many faces.")] = 40,
    top: Annotated[int, typer.Option(
        min=1, help="Without PERSON: review this many persons, the most faces first.")] = 30,
    model_pack: ModelPackOption = None,
    sheet: Annotated[Path | None, typer.Option(
        "--sheet", help="Also write a contact sheet PNG of the faces in this order.",
        show_default=False)] = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """A person's faces, the least typical first, with the command that takes the
    doubtful ones out at once; and whether the person looks like two people.

    Each face's similarity is its average with the person's other faces; z says how far
    that is above what a stranger's face would reach (below 3: doubtful). A face is also
    doubtful when its similarity is nearer a stranger's than the person's other faces
    are to each other. A person whose faces fall into two halves that are nearer
    strangers than one person's faces is reported as two people, with the command that
    separates them: `rbv persons split` makes the same decision. Without PERSON: that
    verdict for each of the largest persons.

    Examples:

        rbv persons review "Ada Lovelace"

        rbv persons review 3f2a --limit 20 --sheet ada.png

        rbv persons review --top 50
    """
    lib = library_of(ctx, database)
    if person is None:
        _review_largest(lib.review_largest(top, model_pack=model_pack), as_json)
        return
    report = lib.review(lib.find(person), limit, sheet=sheet)
    if as_json:
        print_json(report.as_dict(command_line))
        return
    row = report.person
    # Paths below the photos' common folder, named once above the table: whole paths
    # folded mid-name at 80 columns. The doubtful column only where a face is doubtful.
    under, paths = _common_folder([f.path for f in report.faces])
    doubtful = any(f.doubtful for f in report.faces)
    table = Table("face", "similarity", "z", *(["doubtful"] if doubtful else []), "photo",
                  title=f"{_label(row.name, row.id)}: {row.faces:,} faces, least typical first")
    for f, path in zip(report.faces, paths, strict=True):
        table.add_row(str(f.id), f"{f.similarity:.2f}",
                      "-" if f.z == float("inf") else f"{f.z:.1f}",
                      *(["yes" if f.doubtful else ""] if doubtful else []), printable(path))
    print_table(table, whole=["face", "photo"])
    if under:
        typer.echo(f"photo: under {printable(under)}{os.sep}")
    say = Console(highlight=False).print  # prose wraps between words; commands stay whole
    say("similarity: average with the person's other faces; z: how far above what "
        f"a stranger would reach (below {DOUBT_Z:g}, or nearer a stranger's than "
        "the other faces' own: doubtful).", markup=False)
    if report.split:
        say(_two_people(report.split, _label(row.name, row.id)), markup=False)
        typer.echo(f"  {command_line(report.split.remedy)}")
    if report.reject:
        typer.echo(f"{counted(len(report.doubtful), 'doubtful face')}; to take them out "
                   "for good:")
        typer.echo(f"  {command_line(report.reject)}")
    else:
        say("No face looks out of place. To take faces out:", markup=False)
        typer.echo("  rbv persons not-this-person PERSON FACE [FACE...]")
    if report.sheet:
        typer.echo(f"Wrote {report.sheet}")


def _two_people(split: Halves, label: str) -> str:
    return (f"{split.headline(label)}: {split.why()}. To split it so (the smaller half "
            "becomes a new person):")


def _review_largest(report: LargestReport, as_json: bool) -> None:
    if as_json:
        print_json(report.as_dict(command_line))
        return
    table = Table("person", "faces", "doubtful", "two people?",
                  title=f"The {len(report.persons)} largest persons ({report.pack})")
    for v in report.persons:
        split = f"{len(v.split.kept)} + {len(v.split.moved)}" if v.split else ""
        table.add_row(_label(v.person.name, v.person.id), f"{v.person.faces:,}",
                      str(len(v.doubtful) or ""), split)
    print_table(table, whole=["person"])
    splits = [v for v in report.persons if v.split]
    for v in splits:
        assert v.split is not None
        say(_two_people(v.split, _label(v.person.name, v.person.id)))
        typer.echo(f"  {command_line(v.split.remedy)}")
    doubtful = sum(1 for v in report.persons if v.doubtful)
    if not splits:
        typer.echo("No person looks like two people.")
    if doubtful:
        say(f"{counted(doubtful, 'person')} with doubtful faces; to see them and the "
            "command that takes them out:")
        typer.echo("  rbv persons review PERSON")

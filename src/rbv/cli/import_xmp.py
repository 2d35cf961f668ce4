"""``rbv import-xmp``: names in from XMP face regions (MWG, Microsoft Photo)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rbv.cli.common import (
    DatabaseOption,
    JsonOption,
    ModelPackOption,
    help_from,
    library_of,
    print_json,
)
from rbv.cli.progress import ProgressReporter
from rbv.cli.remedies import steps
from rbv.errors import EXIT_PARTIAL, printable
from rbv.jobs.exchange.import_xmp_report import DEFAULT_MIN_IOU, ImportXmpOptions
from rbv.words import counted


@help_from(min_iou=DEFAULT_MIN_IOU)
def import_xmp_command(
    ctx: typer.Context,
    roots: Annotated[list[Path] | None, typer.Argument(
        help="Only photos under these folders (default: every indexed photo).",
        show_default=False)] = None,
    sidecars_from: Annotated[Path | None, typer.Option(
        "--from", help="Also read sidecars mirrored under this folder (what "
        "`rbv export-xmp --out DIR` wrote).", show_default=False)] = None,
    min_iou: Annotated[float, typer.Option(
        min=0.05, max=1.0, help="A region names the detected face it overlaps at least "
        "this much (intersection over union).")] = DEFAULT_MIN_IOU,
    model_pack: ModelPackOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Run the import and roll it "
                                          "back: report what it would do, write "
                                          "nothing.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Name rbv's faces after the face regions other programs wrote.

    Reads MWG face regions (digiKam, Lightroom, Picasa, rbv export-xmp) and Microsoft
    Photo regions from the indexed photos and their sidecars (PHOTO.EXT.xmp,
    PHOTO.xmp). Each named region names the detected face it overlaps most (IoU ≥
    {min_iou}): the face is placed by hand in the person of that name. When no person
    has the name, the unnamed person that holds most of its faces is named (all its
    faces take the name) unless an earlier decision says otherwise; else a new person
    is made. Two faces of one photo never become one person; a face you placed by hand
    elsewhere, or rejected from this person, is left alone and reported with the
    command that does what the sidecar says. The whole import is one edit: `rbv
    persons undo` takes it back. Photos must be indexed first.

    Examples:

        rbv import-xmp ~/Pictures --dry-run

        rbv import-xmp --from ~/sidecars --json
    """
    lib = library_of(ctx, database, model_pack=model_pack)
    options = ImportXmpOptions(tuple(roots or ()), sidecars_from, min_iou, dry_run)
    with ProgressReporter(enabled=not as_json) as reporter:
        report = lib.import_xmp(options, model_pack=model_pack, reporter=reporter)
    if as_json:
        print_json(report.as_dict(steps))
    else:
        would = "would be" if dry_run else "was"
        for n in report.persons_named:
            typer.echo(printable(
                f"Person {n['person'][:8]} {would} named {n['name']!r}: it holds "
                f"{n['named_faces']} of the {counted(int(n['of']), 'face')} the sidecars "
                f"name so, and {_all_its(int(n['faces']))} {n['name']!r} now."))
        for note in report.notes:
            typer.echo(printable(f"{note.name!r}: {note.reason}; {steps(note.remedies)}."))
        _some([f"{c['path']}: {c['name']!r}: {c['note']}." for c in report.cleaned],
              "names had invisible characters removed")
        _some([f"{c.path}: {c.name!r} not applied to face {c.face}: {c.reason}; "
               f"{steps(c.remedies)}." for c in report.conflicts], "conflicts")
        _some([f"{u.path}: {u.name!r} unmatched: {u.reason}; {steps(u.remedies)}."
               for u in report.unmatched], "regions unmatched")
        verb = "would change" if dry_run else "changed"
        typer.echo(f"{counted(report.photos, 'photo')} read: "
                   f"{counted(report.regions, 'named face region')}, "
                   f"{report.matched} matched to a face, "
                   f"{counted(report.assigned, 'face')} {verb}, "
                   f"{counted(len(report.persons_named), 'person')} named, "
                   f"{counted(len(report.persons_created), 'new person')}, "
                   f"{len(report.unmatched)} unmatched, "
                   + (f"{report.repeated} repeated (a name marked twice on a photo), "
                      if report.repeated else "")
                   + f"{counted(len(report.conflicts), 'conflict')} "
                   f"(pack {report.pack}).")
        if report.edit_id is not None:
            typer.echo(f"Logged as edit #{report.edit_id}: `rbv persons undo` takes the "
                       "whole import back.")
        if dry_run:
            typer.echo("Dry run: nothing was written.")
    if report.problems:
        raise typer.Exit(EXIT_PARTIAL)


SHOWN_LINES = 50
"""Lines of one kind (conflicts, unmatched regions) the text report shows; ``--json``
lists them all."""


def _all_its(faces: int) -> str:
    """"its 1 face is", "all its 3 faces are"."""
    return "its 1 face is" if faces == 1 else f"all its {faces:,} faces are"


def _some(lines: list[str], what: str) -> None:
    """The first :data:`SHOWN_LINES` of ``lines``, and how many more there are."""
    for line in lines[:SHOWN_LINES]:
        typer.echo(printable(line))
    if len(lines) > SHOWN_LINES:
        typer.echo(f"… and {len(lines) - SHOWN_LINES:,} more {what} (`--json` lists "
                   "them all).")

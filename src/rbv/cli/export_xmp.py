"""``rbv export-xmp``: named faces out to XMP face regions (MWG)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rbv.cli.common import DatabaseOption, JsonOption, ModelPackOption, library_of, print_json
from rbv.cli.progress import ProgressReporter
from rbv.errors import EXIT_PARTIAL, printable
from rbv.words import counted


def export_xmp_command(
    ctx: typer.Context,
    roots: Annotated[list[Path] | None, typer.Argument(
        help="Only photos under these folders (default: every photo with a named face).",
        show_default=False)] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write the sidecars under this folder, mirroring the photos' "
        "tree (below each ROOT, else below /), instead of beside the photos.",
        show_default=False)] = None,
    write_into_files: Annotated[bool, typer.Option(
        "--write-into-files", help="Write the regions into the photos themselves where "
        "exiv2 can (JPEG, PNG, TIFF, WebP; others get a sidecar). The first original is "
        "kept as NAME_original, verified before the photo is touched; a NAME_original "
        "that does not verify leaves its photo alone.")] = False,
    model_pack: ModelPackOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be written; "
                                          "write nothing.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write the names of rbv's persons into XMP face regions, for other photo programs.

    For every photo with a named face, an XMP sidecar PHOTO.EXT.xmp beside it (or an
    existing PHOTO.xmp) gets one MWG face region per named face: the name, Type Face,
    the area (centre and size, normalised to the photo as displayed, after EXIF
    rotation) and AppliedToDimensions. What a sidecar holds already is kept: other
    tags, other regions, and regions someone named differently (reported as
    conflicts). A re-run changes nothing. Photos are never modified unless
    --write-into-files is given. Hidden persons are left out.

    Examples:

        rbv export-xmp

        rbv export-xmp ~/Pictures/2019 --dry-run

        rbv export-xmp ~/Pictures --out ~/sidecars --json
    """
    lib = library_of(ctx, database, model_pack=model_pack)
    with ProgressReporter(enabled=not as_json) as reporter:
        report = lib.export_xmp(roots or (), out=out, into_files=write_into_files,
                                dry_run=dry_run, model_pack=model_pack, reporter=reporter)
    if as_json:
        print_json(report.as_dict())
    else:
        verb = "would be " if dry_run else ""
        for f in report.files:
            for c in f.conflicts:
                typer.echo(printable(f"{f.target}: kept {c['other'] or c['name']!r} "
                                     f"({c['reason']}); rbv has {c['name']!r}"))
            for note in f.notes:
                typer.echo(printable(f"{f.photo if f.action == 'skipped' else f.target}: "
                                     f"{note}"))
        summary = report.as_dict()
        rewritten = sum(f.into and f.written for f in report.files)
        backups = sum(f.backup_made for f in report.files)
        sidecars = {a: sum(f.action == a and not f.into for f in report.files)
                    for a in ("created", "updated")}
        typer.echo((f"{counted(rewritten, 'photo')} {verb}rewritten, " if rewritten else "")
                   + f"{counted(sidecars['created'], 'sidecar')} {verb}created, "
                   f"{sidecars['updated']} {verb}updated, {summary['unchanged']} unchanged, "
                   f"{summary['skipped']} skipped; "
                   f"{counted(sum(f.added for f in report.files), 'region')} {verb}added, "
                   f"{counted(report.conflicts, 'conflict')}, {summary['failed']} failed "
                   f"(pack {report.pack}).")
        if rewritten:
            kept = f"; {rewritten - backups} had one from an earlier run" \
                if rewritten > backups else ""
            originals = "original" if backups == 1 else "originals"
            typer.echo(f"{counted(backups, 'backup')} of the {originals} {verb}left beside "
                       f"{'it' if backups == 1 else 'them'} as PHOTO_original (exiftool's "
                       f"name){kept}.")
        if report.temps_removed:
            typer.echo(f"Removed {counted(len(report.temps_removed), 'temporary file')} "
                       "that interrupted runs left.")
        if dry_run:
            typer.echo("Dry run: nothing was written.")
    if report.problems:
        raise typer.Exit(EXIT_PARTIAL)

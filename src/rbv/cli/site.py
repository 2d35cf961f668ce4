"""``rbv site OUT``: a static HTML review site of the persons."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rbv.cli.common import DatabaseOption, JsonOption, ModelPackOption, library_of, print_json
from rbv.cli.remedies import command_line
from rbv.errors import EXIT_PARTIAL
from rbv.jobs.exchange.site import DEFAULT_MAX_FACES, DEFAULT_SUGGESTIONS
from rbv.jobs.persons.evidence import DEFAULT_MIN_SCORE


def site(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="Folder to write the site into (created; "
                                        "nothing is written outside it).",
                                        show_default=False)],
    model_pack: ModelPackOption = None,
    max_faces: Annotated[int, typer.Option(
        min=1, help="Faces shown per person, the least typical first.")] = DEFAULT_MAX_FACES,
    suggestions: Annotated[int, typer.Option(
        min=0, help="Merge suggestions listed.")] = DEFAULT_SUGGESTIONS,
    min_score: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Only pairs scoring at least this (the chance that they "
        "are one person).")] = DEFAULT_MIN_SCORE,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write a static review site: OUT/index.html lists the persons (name, face count, a
    face thumbnail); a page per person shows its faces, least typical first, with face
    ids; suggestions.html shows the likely merges; every fix is shown as the rbv command
    that applies it. Opens from disk, no server. Re-runs only render the crops that are
    missing or stale.

    Examples:

        rbv site ~/rbv-review

        rbv site ~/rbv-review --max-faces 60 --suggestions 20
    """
    report = library_of(ctx, database).site(out, command_line, max_faces=max_faces,
                                            suggestions=suggestions, min_score=min_score,
                                            model_pack=model_pack)
    for face in report.unreadable:
        typer.echo(f"Error: face {face}: its photo cannot be read (grey tile; retried on "
                   "the next run)", err=True)
    if as_json:
        print_json(report.as_dict())
    else:
        typer.echo(f"Wrote {out / 'index.html'}: {report.pages:,} pages; face crops: "
                   f"{report.thumbs_written:,} new, {report.thumbs_kept:,} kept, "
                   f"{report.thumbs_removed:,} removed.")
    if report.unreadable:
        raise typer.Exit(EXIT_PARTIAL)

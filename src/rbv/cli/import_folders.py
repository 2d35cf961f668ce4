"""``rbv import-folders``: named persons from hand-sorted folders."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from rbv.cli.common import (
    DatabaseOption,
    DeviceOption,
    JsonOption,
    ModelPackOption,
    help_from,
    library_of,
    print_json,
)
from rbv.cli.embed import say_losses
from rbv.cli.progress import ProgressReporter
from rbv.cli.remedies import steps
from rbv.cli.tables import print_table
from rbv.errors import printable
from rbv.jobs.exchange.import_folders import ImportParams, Skipped
from rbv.words import counted

_D = ImportParams()


@help_from(_D)
def import_folders_command(
    ctx: typer.Context,
    roots: Annotated[list[Path], typer.Argument(help="Folders whose sub-folders are named "
                                                "after persons (one folder per person).",
                                                show_default=False)],
    mixed: Annotated[list[Path] | None, typer.Option("--mixed", help="Photos or folders of "
                                                     "several people: each face goes to the "
                                                     "identity it matches (repeatable).",
                                                     show_default=False)] = None,
    first_pass_similarity: Annotated[float, typer.Option(
        min=-1.0, max=1.0, help="Pass 1: keep faces at least this similar (cosine) to the "
        "mean of all the folder's faces.")] = _D.first_pass_similarity,
    second_pass_similarity: Annotated[float, typer.Option(
        min=-1.0, max=1.0, help="Pass 2: keep faces at least this similar to the pass-1 "
        "mean.")] = _D.second_pass_similarity,
    route_similarity: Annotated[float, typer.Option(
        min=-1.0, max=1.0, help="A mixed photo's face joins the nearest identity if at "
        "least this similar.")] = _D.route_similarity,
    no_index: Annotated[bool, typer.Option("--no-index", help="Do not index the folders "
                                           "first (they are indexed already).")] = False,
    model_pack: ModelPackOption = None,
    device: DeviceOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Run the import and roll it "
                                          "back: report what it would change, write nothing "
                                          "(photos not indexed yet are left out, and "
                                          "counted).")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Create or update one named person per hand-sorted folder.

    Each sub-folder of ROOTS is one person, named after the folder. Its faces give
    the person's centroid in two passes (cosine similarity {first_pass_similarity},
    then {second_pass_similarity}), so bystanders in the folder's photos drop out; one
    face per photo is kept. Faces are placed by hand (manual), so `rbv cluster` never
    undoes them. --mixed photos (group shots) send each face to the nearest identity
    at least {route_similarity} similar: a photo of two known people lands in both.
    The folders are indexed first (incremental). Re-runs find the persons by name and
    duplicate nothing. --dry-run runs the same import and rolls it back, so it reports
    what the real run changes, given indexed photos: it does not index, and says how
    many photos the real run would index first. The import is one edit: `rbv persons
    history` lists it, `rbv persons undo` takes it back whole.

    Examples:

        rbv import-folders ~/sorted-people

        rbv import-folders ~/sorted-people --mixed ~/group-shots --json
    """
    lib = library_of(ctx, database, model_pack=model_pack, device=device)
    params = ImportParams(first_pass_similarity=first_pass_similarity,
                          second_pass_similarity=second_pass_similarity,
                          route_similarity=route_similarity)
    with ProgressReporter(enabled=not as_json) as reporter:
        done = lib.import_folders(roots, mixed or [], params, index=not no_index,
                                  dry_run=dry_run, model_pack=model_pack, reporter=reporter)
    if done.index is not None and done.index.embed:
        say_losses(lib, done.index.embed, err=as_json)
    report = done.result
    if as_json:
        print_json(report.as_dict())
        return
    table = Table("person", "photos", "faces", "pass 1", "kept", "changed", "new",
                  title=f"import-folders ({report.pack})")
    for i in report.identities:
        table.add_row(i.name, str(i.photos), str(i.faces), str(i.after_first_pass),
                      str(i.kept), str(i.assigned), "yes" if i.created else "")
    print_table(table, optional=["pass 1", "new"])
    for i in report.identities:
        if i.note:
            typer.echo(printable(f"{i.folder}: {i.note}"))
    unindexed = [i.name for i in report.identities if not i.photos]
    if unindexed:
        has, them = ("has", "it") if len(unindexed) == 1 else ("have", "them")
        typer.echo(f"{counted(len(unindexed), 'folder')} {has} no indexed photo "
                   f"({_few(unindexed)}): "
                   + (f"drop --dry-run (import-folders indexes {them}), or run `rbv index` "
                      "first." if dry_run and report.to_index
                      else f"run `rbv index` on {them} first, or drop --no-index." if no_index
                      else f"are there photos in {them}?"))
    if report.to_index:
        photos = counted(report.to_index, "new, changed or unscanned photo")
        them = "it" if report.to_index == 1 else "them"
        typer.echo(f"Not the whole import: the real run first indexes {photos} under these "
                   f"folders, which this dry run leaves out; run `rbv index` on {them} first "
                   "for a dry run that is the run.")
    for r in report.routed:
        typer.echo(printable(f"{r.path}: face {r.face_id} → {r.identity} "
                             f"(similarity {r.similarity:.2f})"))
    for k in report.skipped:
        typer.echo(printable(f"{k.path}: face {k.face_id} not given to {k.identity}: "
                             f"{_skipped(k)}."))
    if report.removed_persons:
        typer.echo(f"{counted(report.removed_persons, 'automatic person')} left without "
                   "faces " + ("would be" if dry_run else "was" if report.removed_persons == 1
                               else "were") + " removed.")
    if report.unrouted_faces:
        typer.echo(f"{counted(report.unrouted_faces, 'face')} of mixed photos matched no "
                   "identity; "
                   "`rbv discover FOLDER OUT` turns new people among them into facesets.")
    if report.edit_id is not None:
        typer.echo(f"Logged as edit #{report.edit_id}: `rbv persons undo` takes the whole "
                   "import back.")
    if dry_run:
        typer.echo("Dry run: nothing was written.")


def _few(names: list[str]) -> str:
    return ", ".join(map(printable, names[:5])) + (", …" if len(names) > 5 else "")


def _skipped(k: Skipped) -> str:
    """Why a face was not given to its folder's person, and the commands that give it."""
    if k.reason:
        return f"{k.reason}, and that earlier decision stands; {steps(k.remedies)}"
    faces = "face" if len(k.photo_has) == 1 else "faces"
    return (f"it has {faces} {', '.join(map(str, k.photo_has))} of that photo already (one "
            f"face per photo); if face {k.face_id} is the one, {steps(k.remedies)}")

"""``rbv index``: catalogue photos under folders, then detect and embed their faces."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rbv.cli.common import (
    AttributeModelOption,
    ConcurrencyOption,
    DatabaseOption,
    DetThresholdOption,
    DeviceOption,
    JsonOption,
    MinFaceOption,
    MlUriOption,
    ModelPackOption,
    PathMapOption,
    library_of,
    path_map_of,
    print_json,
    say,
)
from rbv.cli.embed import carry_line, helpers_line, say_losses, taken_over_line
from rbv.cli.progress import ProgressReporter, rate
from rbv.errors import EXIT_PARTIAL, ConfigError
from rbv.jobs.library.index import IndexSummary
from rbv.media.discovery import refuse_missing
from rbv.words import counted


def index(
    ctx: typer.Context,
    targets: Annotated[list[Path] | None, typer.Argument(
        help="Folders (galleries, chunks, roots, any folder) or files.", metavar="TARGETS",
        show_default=False)
    ] = None,
    target: Annotated[list[Path] | None, typer.Option(
        "--target", help="A folder or file to index, as TARGETS (repeatable; added to "
        "TARGETS when both are given).", show_default=False)] = None,
    no_embed: Annotated[bool, typer.Option(
        "--no-embed", help="Only catalogue; leave face detection to `rbv embed`.")] = False,
    include: Annotated[list[str] | None, typer.Option(
        "--include", help="Only files whose path or name matches this glob (repeatable).",
        show_default=False)] = None,
    exclude: Annotated[list[str] | None, typer.Option(
        "--exclude", help="Skip files and folders matching this glob (repeatable).",
        show_default=False)] = None,
    concurrency: ConcurrencyOption = None,
    path_map: PathMapOption = None,
    model_pack: ModelPackOption = None,
    attribute_model: AttributeModelOption = None,
    device: DeviceOption = None,
    det_threshold: DetThresholdOption = None,
    min_face: MinFaceOption = None,
    ml_uri: MlUriOption = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Say how many files would be catalogued (reading only the first "
        "bytes of each new file, to tell images from other files); write nothing.")
    ] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Catalogue photos under TARGETS (and each --target), then detect and embed every face.

    Incremental: files already catalogued (same size and modification time) are
    skipped, images already scanned with the model pack are not scanned again. A file
    that fails is reported on one line, recorded with its reason, and retried on the
    next run; the exit code is then 3.

    A catalogued file gone from a folder named here is marked missing (its
    faces stay until `rbv prune`); one found at a new path with the same
    content is a move (same image, faces and person). Folders not named, or
    that cannot be read, never mark anything missing.

    With an attribute model (--attribute-model, $RBV_ATTRIBUTE_MODEL, or one in the
    pack's folder) each new face also gets an estimated age and gender.

    Image types are told by content, not by file name. In a gallery (a folder with
    index.json and tn/) the tn/ thumbnails are skipped.

    Examples:

        rbv index ~/Pictures

        rbv index /photos/2023 /photos/2024 --exclude '*/Screenshots/*'

        rbv index ~/Pictures --no-embed --json

        rbv index --target /mnt/galleries --ml-uri http://ml:3003

        RBV_MODEL_PACK=../shared/models/scrfd_sface rbv index ../shared/data/faces

        rbv index ~/Pictures --attribute-model ~/models/faceres_age_gender.onnx

        rbv index /Volumes/photos --path-map /mnt/photos=/Volumes/photos

        rbv index ~/Pictures --ml-uri http://gpu1:3003,http://gpu2:3003

    With --path-map, photos found under LOCAL are catalogued under the STORED name that
    other machines use: the same photos are not catalogued twice, nor marked missing.
    """
    targets = [*(targets or ()), *(target or ())]
    if not targets:
        raise ConfigError("name what to index: rbv index FOLDER (or --target FOLDER)")
    refuse_missing(targets)
    lib = library_of(ctx, database, concurrency=concurrency, model_pack=model_pack,
                     device=device, det_threshold=det_threshold, min_face=min_face,
                     ml_uri=ml_uri, path_map=path_map_of(path_map),
                     attribute_model=attribute_model)
    reporter = ProgressReporter(enabled=not as_json)
    if not no_embed and not dry_run:  # fail fast on a bad pack or device
        reporter.errors.print(lib.analyzer_words(), markup=False, highlight=False)
    with reporter:
        summary = lib.index(targets, embed=not no_embed, include=include or (),
                            exclude=exclude or (), dry_run=dry_run, reporter=reporter)
    if as_json:
        print_json(summary.as_dict())
    else:
        for paragraph in _paragraphs(summary, dry_run):
            say(paragraph)  # wrapped at the terminal's width (issue 62 #13: ~160 columns)
    if summary.embed:
        say_losses(lib, summary.embed, err=as_json)
    if summary.failed:
        raise typer.Exit(EXIT_PARTIAL)


def _paragraphs(s: IndexSummary, dry_run: bool) -> list[str]:
    """What the run did: the catalogue, the faces found, what failed."""
    c = s.catalogue
    if dry_run:
        return [f"Would catalogue {c.new_images:,} of {c.files:,} files "
                f"({c.unchanged:,} unchanged, {c.not_images:,} not images); nothing was "
                "written."]
    text = (f"Catalogued {c.files:,} files: {c.new_images:,} new images, {c.aliases:,} aliases, "
            f"{c.unchanged:,} unchanged, {c.not_images:,} not images, {c.failed:,} failed.")
    if c.new_metadata:
        text += f" {c.new_metadata:,} photos with new metadata, faces kept."
    if c.new_image_data:
        text += (f" {c.new_image_data:,} photos with new image data: their faces are found "
                 "again and keep their persons and decisions"
                 + ("." if s.embed is not None else " once `rbv embed` has found them."))
    if c.moved or c.missing or c.returned:
        text += f" {c.moved:,} moved, {c.missing:,} missing"
        text += f", {c.returned:,} back." if c.returned else "."
        if c.missing:
            text += " Missing photos keep their faces until `rbv prune`."
    for note in c.notes:
        text += f" Note: {note}."

    out = [text]
    if s.embed is not None:
        e = s.embed
        out.append(f"Scanned {counted(e.images, 'image')}: {counted(e.faces, 'face')}, "
                   f"{e.no_faces:,} without faces, {e.failed:,} failed "
                   f"({rate(e.images_per_s, 'images/s')})." + helpers_line(e.helpers)
                   + taken_over_line(e.taken_over)
                   + carry_line(e.carry))
    if s.failed:
        out.append(f"{counted(s.failed, 'item')} failed; "
                   f"{'it is' if s.failed == 1 else 'they are'} retried on the next run.")
    return out

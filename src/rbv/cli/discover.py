"""``rbv discover FOLDER OUT``: new facesets from a folder of mixed photos."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
from rbv.cluster.refine import RefineParams
from rbv.jobs.exchange.discover import DiscoverParams
from rbv.jobs.exchange.export_swap import SwapParams

_D = DiscoverParams()
_R = RefineParams()
_S = SwapParams()


@help_from(_D, _R, swap_min_face=_S.min_face, top=_S.top)
def discover_command(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="A folder of mixed photos (searched "
                                           "recursively).")],
    out: Annotated[Path, typer.Argument(help="The export-swap folder: new facesets are "
                                        "added there beside the ones it has.")],
    covered_similarity: Annotated[float, typer.Option(
        min=-1.0, max=1.0, help="A face at least this similar (cosine) to a known "
        "faceset's centroid is that identity, not a new one.")] = _D.covered_similarity,
    initial_similarity: Annotated[float | None, typer.Option(
        min=-1.0, max=1.0, show_default=False, help="Cosine similarity at which faces join "
        "an initial average-linkage cluster. Default: the pack's calibrated one (its "
        f"agglomerative threshold), else {_R.initial_similarity:g}.")] = None,
    merge_similarity: Annotated[float, typer.Option(
        min=-1.0, max=1.0, help="Merge clusters whose centroids are at least this "
        "similar.")] = _R.merge_similarity,
    outlier_similarity: Annotated[float, typer.Option(
        min=-1.0, max=1.0, help="Drop faces less similar than this to their "
        "centroid.")] = _R.outlier_similarity,
    min_images: Annotated[int, typer.Option(min=1, help="Keep facesets with at least this "
                                            "many different photos.")] = _R.min_images,
    min_face: Annotated[float, typer.Option(min=0.0, help="Quality gate: minimum face short "
                                            "edge (original pixels).")] = _R.min_face_short,
    min_blur: Annotated[float, typer.Option(min=0.0, help="Quality gate: minimum sharpness "
                                            "(Laplacian variance).")] = _R.min_blur,
    min_det: Annotated[float, typer.Option(min=0.0, max=1.0, help="Quality gate: minimum "
                                           "detection score.")] = _R.min_det_score,
    split_named: Annotated[bool, typer.Option(
        "--split-named", help="Re-group named persons' faces like any others (a named "
        "person who has a faceset may then get another).")] = False,
    top: Annotated[int, typer.Option(min=1, help="Faces in each <faceset>_topN.fsz "
                                     "bundle.")] = _S.top,
    swap_min_face: Annotated[float, typer.Option(min=0.0, help="Only faces with a short "
                                                 "edge of at least this many pixels go into "
                                                 "the PNGs.")] = _S.min_face,
    no_index: Annotated[bool, typer.Option("--no-index", help="Do not index FOLDER first "
                                           "(it is indexed already).")] = False,
    model_pack: ModelPackOption = None,
    device: DeviceOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report the clusters and the "
                                          "facesets they would give; write nothing (FOLDER "
                                          "must be indexed).")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Find new identities in a folder of mixed photos and add them as facesets.

    The faces of FOLDER's photos (indexed first, incremental) that are in no
    known faceset, less than {covered_similarity} similar to every one's centroid,
    and not of a named person who has a faceset go through refine's pipeline
    (cosine similarities: clusters at the pack's calibrated threshold or
    {initial_similarity}, merge {merge_similarity}, quality gate, outliers
    below {outlier_similarity}, at least {min_images} different photos). Each set
    that survives gets a number past the highest ever used and is written to
    OUT as export-swap writes it (PNGs, .fsz bundles), with provenance.json;
    the facesets OUT holds already are not touched. --dry-run shows every
    cluster's size and survivors.

    Examples:

        rbv discover ~/Pictures/unsorted ~/swap --dry-run

        rbv discover ~/Pictures/unsorted ~/swap --min-images 8 --json
    """
    lib = library_of(ctx, database, model_pack=model_pack, device=device)
    refine = RefineParams(initial_similarity=(_R.initial_similarity
                                              if initial_similarity is None
                                              else initial_similarity),
                          merge_similarity=merge_similarity,
                          outlier_similarity=outlier_similarity, min_images=min_images,
                          min_face_short=min_face, min_blur=min_blur, min_det_score=min_det,
                          split_named=split_named)
    params = DiscoverParams(covered_similarity=covered_similarity, refine=refine,
                            initial_given=initial_similarity is not None)
    swap = SwapParams(top=top, min_face=swap_min_face)
    with ProgressReporter(enabled=not as_json) as reporter:
        done = lib.discover(folder, out, params, swap, index=not no_index, dry_run=dry_run,
                            model_pack=model_pack, reporter=reporter)
    if done.index is not None and done.index.embed:
        say_losses(lib, done.index.embed, err=as_json)
    report = done.result
    if as_json:
        print_json(report.as_dict())
        return
    c = report.counts
    typer.echo(f"{report.folder}: {c.get('photos', 0):,} photos, {c.get('faces', 0):,} faces; "
               f"{c.get('in_facesets', 0):,} in known facesets, {c.get('covered', 0):,} near "
               f"one; {c.get('after_merge', 0):,} clusters of the rest, "
               f"{c.get('failed_quality', 0):,} faces failed the quality gate, "
               f"{c.get('outliers', 0):,} outliers.")
    if not c.get("photos"):
        how = ("drop --dry-run, or run `rbv index FOLDER` first" if dry_run else
               "run `rbv index FOLDER` first, or drop --no-index" if no_index else
               "are there photos in it?")
        typer.echo(f"No photo of {report.folder} is indexed: {how}.")
    shown = [k for k in report.clusters if k["faces"] > 1 or k["kept"]]
    if shown:
        typer.echo("Clusters (faces → passed quality → survivors, photos):")
    for k in shown:
        typer.echo(f"  {k['faces']:>5} → {k['passed_quality']:>5} → {k['survivors']:>5}, "
                   f"{k['images']:>4} photos{'  kept' if k['kept'] else ''}")
    if len(report.clusters) > len(shown):
        typer.echo(f"  and {len(report.clusters) - len(shown):,} lone faces")
    for fs in report.facesets:
        written = "" if fs.written is None else f", {fs.written} PNGs"
        typer.echo(f"New {fs.folder}  {fs.person_name or '-'}  {len(fs.face_ids)} faces, "
                   f"{fs.image_count} photos{written}")
    typer.echo("Dry run: nothing was written." if dry_run else
               f"Added {len(report.facesets)} new facesets to {out}.")

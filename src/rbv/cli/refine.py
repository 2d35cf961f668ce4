"""``rbv refine OUT``: quality-gated facesets with stable numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from rbv.cli.common import (
    DatabaseOption,
    JsonOption,
    ModelPackOption,
    help_from,
    library_of,
    print_json,
    say,
)
from rbv.cluster.refine import RefineParams
from rbv.errors import EXIT_PARTIAL
from rbv.words import counted

_D = RefineParams()


@help_from(_D)
def refine(
    ctx: typer.Context,
    out: Annotated[Path, typer.Argument(help="Folder for faceset_NNN/ and "
                                        "refine_manifest.json.")],
    initial_similarity: Annotated[float, typer.Option(
        min=-1.0, max=1.0, help="Cosine similarity at which faces join an initial "
        "average-linkage cluster.")] = _D.initial_similarity,
    merge_similarity: Annotated[float, typer.Option(
        min=-1.0, max=1.0, help="Merge clusters whose centroids are at least this "
        "similar.")] = _D.merge_similarity,
    outlier_similarity: Annotated[float, typer.Option(
        min=-1.0, max=1.0, help="Drop faces less similar than this to their "
        "centroid.")] = _D.outlier_similarity,
    outlier_min_cluster: Annotated[int, typer.Option(
        min=1, help="Outlier rejection only in clusters this big.")] = _D.outlier_min_cluster,
    min_images: Annotated[int, typer.Option(min=1, help="Keep facesets with at least this "
                                            "many different photos.")] = _D.min_images,
    min_face: Annotated[float, typer.Option(min=0.0, help="Minimum face short edge (original "
                                            "pixels).")] = _D.min_face_short,
    min_blur: Annotated[float, typer.Option(min=0.0, help="Minimum sharpness (Laplacian "
                                            "variance of the aligned crop).")] = _D.min_blur,
    min_det: Annotated[float, typer.Option(min=0.0, max=1.0, help="Minimum detection "
                                           "score.")] = _D.min_det_score,
    split_named: Annotated[bool, typer.Option(
        "--split-named", help="Re-group named persons' faces like any others (a named "
        "person may then become several facesets).")] = False,
    crops: Annotated[bool, typer.Option("--crops/--no-crops", help="Write a JPEG crop of "
                                        "every face into its faceset folder.")] = True,
    model_pack: ModelPackOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report what would be built; "
                                          "write nothing.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Build quality-gated facesets: OUT/faceset_NNN/ plus OUT/refine_manifest.json.

    Pipeline (thresholds are cosine similarities, as `rbv cluster`'s): initial
    average-linkage clusters at {initial_similarity} → merge clusters whose centroids
    are at least {merge_similarity} similar → quality gate (face ≥ {min_face_short} px,
    blur ≥ {min_blur}, detection score ≥ {min_det_score}) → outlier rejection (faces
    less than {outlier_similarity} similar to the centroid, clusters of ≥
    {outlier_min_cluster}) → keep sets with ≥ {min_images} different photos. A named
    person's faces are one cluster from the start (one faceset; --split-named re-groups
    them). Facesets are recorded in
    the database (tables facesets, faceset_faces) and each names the person holding
    most of its faces. Numbers are stable: a re-run after new photos keeps every
    faceset's number; new sets get numbers past the highest ever used.

    Examples:

        rbv refine ~/facesets

        rbv refine ~/facesets --min-images 5 --no-crops --json

        rbv refine /tmp/preview --dry-run
    """
    lib = library_of(ctx, database)
    params = RefineParams(initial_similarity=initial_similarity,
                          merge_similarity=merge_similarity,
                          outlier_similarity=outlier_similarity,
                          outlier_min_cluster=outlier_min_cluster, min_images=min_images,
                          min_face_short=min_face, min_blur=min_blur, min_det_score=min_det,
                          split_named=split_named)
    console = Console(stderr=True)
    quiet = as_json or not console.is_terminal
    with Progress(console=console, disable=quiet or dry_run) as bar:
        task = bar.add_task("writing", total=None)
        refined = lib.refine(out, params, crops=crops, dry_run=dry_run, model_pack=model_pack,
                             progress=lambda done, total: bar.update(task, completed=done,
                                                                     total=total))
    report, problems = refined.report, refined.problems
    for p in problems:
        typer.echo(f"Error: {p}", err=True)
    if as_json:
        print_json(report.as_dict())
    else:
        c = report.counts
        say(f"Pack {report.pack}: {counted(c.get('faces', 0), 'face')} → "
            f"{counted(c.get('initial_clusters', 0), 'initial cluster')} → "
            f"{c.get('after_merge', 0):,} after merge (+{c.get('split_apart', 0):,} split off: "
            "another person by `rbv cluster`'s rule); "
            f"{counted(c.get('failed_quality', 0), 'face')} failed the quality gate, "
            f"{counted(c.get('outliers', 0), 'outlier')}, "
            f"{counted(c.get('too_small', 0), 'cluster')} too small.")
        for fs in report.facesets:
            typer.echo(f"  {fs.folder}  {fs.person_name or '-':<24} {len(fs.face_ids):>5} "
                       f"faces {fs.image_count:>5} photos{'  (new)' if fs.new else ''}")
        if report.retired:
            say("Retired (no longer found): "
                + ", ".join(f"faceset_{n:03d}" for n in report.retired))
        if not report.facesets:
            say(_no_faceset(c, params))
        say("Dry run: nothing was written." if dry_run
            else f"Wrote {counted(len(report.facesets), 'faceset')} to {out}.")
    if problems:
        raise typer.Exit(EXIT_PARTIAL)


def _no_faceset(counts: dict[str, int], params: RefineParams) -> str:
    """Why no faceset came out: what each gate dropped, and the flags that keep more."""
    if not counts.get("faces"):
        return "No faceset: the pack has no faces yet; run `rbv index` first."
    return (f"No faceset: {counted(counts.get('too_small', 0), 'cluster')} had faces of fewer "
            f"than {params.min_images} different photos (--min-images lowers that); "
            f"{counts.get('failed_quality', 0):,} of {counted(counts['faces'], 'face')} failed "
            f"the quality gate (--min-face {params.min_face_short:g}, --min-blur "
            f"{params.min_blur:g}, --min-det {params.min_det_score:g} lower it).")

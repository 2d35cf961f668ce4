"""``rbv enrich``: per-face pose, frontality, symmetry, sharpness and size."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from rbv.cli.common import DatabaseOption, JsonOption, ModelPackOption, print_json, settings_of
from rbv.jobs.library.analyzer import load_landmark_models, with_library_pack
from rbv.jobs.library.enrich import run_enrich
from rbv.store import open_database


def enrich(
    ctx: typer.Context,
    model_pack: ModelPackOption = None,
    redo: Annotated[bool, typer.Option("--redo", help="Score every face again, not only "
                                       "faces without scores.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add the quality inputs `refine` and `export-swap` need to every new face.

    Per face: yaw/pitch/roll, frontality, landmark symmetry, sharpness (from the blur
    measure) and face size. Without landmark models these come from the detector's 5
    landmarks (method 5pt, no photo is decoded); where the pack folder has
    InsightFace's 2d106det.onnx / 1k3d68.onnx, the 106/68 landmarks are stored and the
    pose comes from the 3-D model (method 3d68). Incremental: re-runs score only new
    faces.

    Examples:

        rbv enrich

        rbv enrich --model-pack ~/.insightface/models/buffalo_l --redo --json
    """
    settings = settings_of(ctx, database_url=database, model_pack=model_pack)
    db = open_database(settings)
    settings = with_library_pack(settings, db)
    pack = settings.model_pack
    models = load_landmark_models(settings)
    console = Console(stderr=True)
    with Progress(console=console, disable=as_json or not console.is_terminal) as bar:
        task = bar.add_task("enrich", total=None)
        summary = run_enrich(db, pack, redo=redo, models=models,
                             max_pixels=settings.max_image_pixels,
                             progress=lambda done, total: bar.update(task, completed=done,
                                                                     total=total),
                             sole_fallback=not model_pack)
    for failure in summary.failed:
        typer.echo(f"Error: {failure}", err=True)
    if as_json:
        print_json(summary.as_dict())
        return
    methods = ", ".join(f"{n:,} by {m}" for m, n in sorted(summary.methods.items())) or "none"
    typer.echo(f"Pack {summary.pack}: scored {summary.faces:,} faces ({methods}).")
    if not models:
        typer.echo("No 2d106det/1k3d68 models in the pack: pose is estimated from the 5 "
                   "detector landmarks.")

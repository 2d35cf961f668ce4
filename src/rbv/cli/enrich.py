"""``rbv enrich``: per-face pose, frontality, symmetry, sharpness and size, and an
estimated age and gender where an attribute model is given."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress

from rbv.cli.common import (
    AttributeModelOption,
    DatabaseOption,
    JsonOption,
    ModelPackOption,
    library_of,
    print_json,
    say,
)
from rbv.words import counted


def enrich(
    ctx: typer.Context,
    model_pack: ModelPackOption = None,
    attribute_model: AttributeModelOption = None,
    redo: Annotated[bool, typer.Option("--redo", help="Score every face again, not only "
                                       "faces without scores.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Add the quality inputs `refine` and `export-swap` need to every new face, and
    an estimated age and gender where an attribute model is given.

    Per face: yaw/pitch/roll, frontality, landmark symmetry, sharpness (from the blur
    measure) and face size. Without landmark models these come from the detector's 5
    landmarks (method 5pt, no photo is decoded); where the pack folder has
    InsightFace's 2d106det.onnx / 1k3d68.onnx, the 106/68 landmarks are stored and the
    pose comes from the 3-D model (method 3d68). With an attribute model
    (--attribute-model, $RBV_ATTRIBUTE_MODEL, or one in the pack's folder) every face
    without an estimate gets its estimated age and gender (its photo is decoded; one
    that cannot be read is said on one line and its faces wait for the next run).
    Incremental: re-runs score only new faces.

    Examples:

        rbv enrich

        rbv enrich --attribute-model ~/models/faceres_age_gender.onnx

        rbv enrich --model-pack ~/.insightface/models/buffalo_l --redo --json
    """
    lib = library_of(ctx, database, model_pack=model_pack, attribute_model=attribute_model)
    console = Console(stderr=True)
    with Progress(console=console, disable=as_json or not console.is_terminal) as bar:
        task = bar.add_task("enrich", total=None)
        summary = lib.enrich(redo=redo, model_pack=model_pack,
                             progress=lambda done, total: bar.update(task, completed=done,
                                                                     total=total))
    for failure in summary.failed:
        typer.echo(f"Error: {failure}", err=True)
    if as_json:
        print_json(summary.as_dict())
        return
    methods = ", ".join(f"{n:,} by {m}" for m, n in sorted(summary.methods.items())) or "none"
    typer.echo(f"Pack {summary.pack}: scored {summary.faces:,} faces ({methods}).")
    if not summary.dense_models:
        typer.echo("No 2d106det/1k3d68 models in the pack: pose is estimated from the 5 "
                   "detector landmarks.")
    if summary.attribute_model is not None:
        say(f"Estimated the age and gender of {counted(summary.estimated, 'face')} with "
            f"{summary.attribute_model}.")

"""``rbv export-swap MANIFEST OUT``: ranked single-face crops and .fsz bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from rbv.cli.common import (
    DatabaseOption,
    DeviceOption,
    JsonOption,
    MlUriOption,
    ModelPackOption,
    help_from,
    library_of,
    print_json,
)
from rbv.cli.tables import print_table
from rbv.jobs.exchange.export_swap import WEIGHTS, SwapParams
from rbv.words import counted

_D = SwapParams()


@help_from(_D, **{k: f"{v:.2f}" for k, v in WEIGHTS.items()})
def export_swap_command(
    ctx: typer.Context,
    manifest: Annotated[Path, typer.Argument(help="refine_manifest.json written by "
                                             "`rbv refine`.")],
    out: Annotated[Path, typer.Argument(help="Output folder.")],
    top: Annotated[int, typer.Option(min=1, help="Faces in the <faceset>_topN.fsz "
                                     "bundle.")] = _D.top,
    outlier_similarity: Annotated[float, typer.Option(
        min=-1.0, max=1.0, help="Drop faces less similar (cosine) than this to the "
        "identity's centroid.")] = _D.outlier_similarity,
    pad: Annotated[float, typer.Option(min=0.0, help="Margin around the face box, as a "
                                       "fraction of its long edge per side.")] = _D.pad,
    size: Annotated[int, typer.Option(min=32, help="Side of the square PNGs.")] = _D.size,
    min_face: Annotated[float, typer.Option(min=0.0, help="Only faces with a short edge of "
                                            "at least this many pixels.")] = _D.min_face,
    candidates: Annotated[bool, typer.Option("--candidates", help="Also copy faces that are "
                                             "in no faceset but match an identity into "
                                             "OUT/_candidates/ for review.")] = False,
    candidate_similarity: Annotated[float, typer.Option(
        min=-1.0, max=1.0, help="Cosine similarity a candidate needs to the identity's "
        "centroid.")] = _D.candidate_similarity,
    candidate_min_score: Annotated[float, typer.Option(min=0.0, max=1.0, help="Minimum "
                                                       "composite score of a candidate.")
                                   ] = _D.candidate_min_score,
    model_pack: ModelPackOption = None,
    device: DeviceOption = None,
    ml_uri: MlUriOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Per identity of a refine manifest: ranked 512×512 single-face PNGs and .fsz bundles.

    For each faceset: tight outlier gate (cosine similarity to the centroid ≥
    {outlier_similarity}), visual duplicates collapsed, faces
    ranked by {frontality}·frontality + {det_score}·det_score + {symmetry}·landmark
    symmetry + {size}·face size + {sharpness}·sharpness, square crops (pad {pad}) of
    faces ≥ {min_face} px, each re-detected
    so it holds exactly one face (a crop with a second face is tightened once, else
    dropped). Writes OUT/<faceset>/0.png, 1.png, … (best first), <faceset>_top{top}.fsz and
    <faceset>_all.fsz (zips that roop-unleashed loads; none for a faceset with no PNG),
    <faceset>/manifest.json and OUT/manifest.json. Pose comes from `rbv enrich` (run
    automatically for new faces).

    Examples:

        rbv export-swap ~/facesets/refine_manifest.json ~/swap

        rbv export-swap out/refine_manifest.json swap --top 20 --candidates --json
    """
    lib = library_of(ctx, database, model_pack=model_pack, device=device, ml_uri=ml_uri)
    params = SwapParams(top=top, outlier_similarity=outlier_similarity, pad=pad, size=size,
                        min_face=min_face, candidates=candidates,
                        candidate_similarity=candidate_similarity,
                        candidate_min_score=candidate_min_score)
    console = Console(stderr=True)
    with Progress(console=console, disable=as_json or not console.is_terminal) as bar:
        task = bar.add_task("cropping", total=None)
        results = lib.export_swap(manifest, out, params,
                                  advance=lambda n: bar.advance(task, n))
    if as_json:
        print_json({"out": out, "facesets": [r.summary() for r in results]})
        return
    # One column says why faces were not written: at 80 columns a column per reason
    # did not fit, and the first ones left out were the ones that explained a 0.
    table = Table("faceset", "name", "in", "written", "left out", "candidates")
    for r in results:
        s = r.summary()
        table.add_row(s["faceset"], s["name"] or "-", str(s["faces_in"]), str(s["written"]),
                      _left_out(s), str(s["candidates"]))
    # the folder on a line of its own: a table title folds a long path mid-name
    Console().print(f"export-swap → {out}", highlight=False, soft_wrap=True)
    print_table(table, optional=["candidates"], whole=["faceset"])
    empty = [r.folder for r in results if not r.written]
    if empty:
        Console().print(f"No .fsz bundle for {', '.join(empty)}: no face written (see "
                        "\"left out\").", highlight=False)


_REASONS = (("rejected", "not this person", "not this person"),
            ("other_person", "of another person", "of another person"),
            ("outliers", "outlier", "outliers"), ("too_small", "too small", "too small"),
            ("duplicates", "duplicate", "duplicates"),
            ("dropped", "not one face in the crop", "not one face in the crop"))
"""Why faces were left out of a faceset: its summary's key, the words for one, for more."""


def _left_out(summary: dict[str, Any]) -> str:
    """'3 outliers, 1 too small', or '-' when every face was written."""
    return ", ".join(counted(summary[key], one, many)
                     for key, one, many in _REASONS if summary[key]) or "-"

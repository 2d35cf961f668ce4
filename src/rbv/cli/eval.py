"""``rbv eval``: clustering quality on labelled photos, and threshold calibration."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rbv.cli.common import (
    DatabaseOption,
    DeviceOption,
    JsonOption,
    ModelPackOption,
    print_json,
    settings_of,
)
from rbv.cli.progress import ProgressReporter
from rbv.cluster.evaluation import BASELINE
from rbv.jobs.analyzer import load_face_analyzer
from rbv.jobs.eval import EvalReport, run_eval, scratch_settings, store_thresholds
from rbv.store import open_database


def eval_(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="<identity>/<image> folders, or a folder "
                                           "with labels.csv (path,identity).")],
    labels: Annotated[Path | None, typer.Option(help="A labels.csv elsewhere (paths "
                                                "relative to it).", show_default=False)] = None,
    threshold: Annotated[float | None, typer.Option(
        help="Similarity for every method. Default: the pack's calibrated value, else 0.65.",
        show_default=False)] = None,
    calibrate: Annotated[bool, typer.Option("--calibrate", help="Sweep thresholds "
                                            "0.20-0.80 and recommend one per method.")] = False,
    store: Annotated[bool, typer.Option("--store", help="With --calibrate: save the "
                                        "recommended thresholds as the pack's defaults in "
                                        "the database (used by `rbv cluster`).")] = False,
    model_pack: ModelPackOption = None,
    device: DeviceOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score clustering on labelled photos: pairwise and BCubed precision/recall/F for
    each method and for an Immich-style baseline, on the same embeddings.

    The photos are indexed into a scratch database under the data directory (kept, so
    re-runs are fast) unless --database / DATABASE_URL names one. Labels name the main
    (largest) face of each photo.

    Examples:

        rbv eval ../shared/data/faces --model-pack ../shared/models/scrfd_sface

        rbv eval ../shared/data/faces --calibrate --store --model-pack scrfd_sface
    """
    settings = settings_of(ctx, database_url=database, model_pack=model_pack, device=device)
    work = settings if settings.database_url else scratch_settings(settings)
    analyzer = load_face_analyzer(settings)
    reporter = ProgressReporter(enabled=not as_json)
    with reporter:
        report = run_eval(work, folder, analyzer, labels_csv=labels, threshold=threshold,
                          calibrate=calibrate, reporter=reporter)
    if store and calibrate:
        store_thresholds(open_database(settings), analyzer.pack, report, folder)
    if as_json:
        print_json(report.as_dict())
        return
    _print(report)


def _print(report: EvalReport) -> None:
    console = Console()
    console.print(f"Pack {report.pack}: {report.labelled_faces} labelled faces of "
                  f"{report.identities} identities ({report.images} photos, "
                  f"{report.photos_without_face} without a detected face); {report.database}")
    table = Table("method", "threshold", "clusters", "pairwise P / R / F", "BCubed P / R / F",
                  title="At the configured thresholds")
    for s in report.scores:
        table.add_row(s.method, f"{s.threshold:.2f}", str(s.clusters),
                      f"{s.pairwise.precision:.3f} / {s.pairwise.recall:.3f} / {s.pairwise.f1:.3f}",
                      f"{s.bcubed.precision:.3f} / {s.bcubed.recall:.3f} / {s.bcubed.f1:.3f}")
    console.print(table)
    if not report.calibration:
        return
    best = Table("method", "best threshold", "clusters", "pairwise F", "BCubed F",
                 title="Calibration (best BCubed F per method)")
    for method in report.calibration:
        s = report.best(method)
        best.add_row(method, f"{s.threshold:.2f}", str(s.clusters), f"{s.pairwise.f1:.3f}",
                     f"{s.bcubed.f1:.3f}")
    console.print(best)
    base = report.best(BASELINE)
    default = report.best("connected")
    console.print(f"Default method (connected) vs {BASELINE}: BCubed F "
                  f"{default.bcubed.f1:.3f} vs {base.bcubed.f1:.3f} "
                  f"({default.bcubed.f1 - base.bcubed.f1:+.3f}), pairwise F "
                  f"{default.pairwise.f1:.3f} vs {base.pairwise.f1:.3f} "
                  f"({default.pairwise.f1 - base.pairwise.f1:+.3f}).")
    same = next(s for s in report.calibration[BASELINE] if s.threshold == default.threshold)
    console.print(f"At the same threshold {default.threshold:.2f}, {BASELINE}: BCubed F "
                  f"{same.bcubed.f1:.3f}, pairwise F {same.pairwise.f1:.3f}.")
    console.print(f"Recommended threshold for connected: {default.threshold:.2f} "
                  f"(calibrated on {report.identities} identities; a library with many more "
                  "people may need a stricter one)."
                  + (" Stored as the pack's default." if report.stored else ""))

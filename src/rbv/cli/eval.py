"""``rbv eval``: clustering quality on labelled photos, and threshold calibration."""

from __future__ import annotations

import textwrap
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
from rbv.cli.tables import print_table
from rbv.cluster.calibrations import DEFAULT_METHOD
from rbv.cluster.evaluation import BASELINE
from rbv.errors import ConfigError, RbvError
from rbv.jobs.grouping.eval import (
    EvalReport,
    library_settings,
    run_eval,
    scratch_settings,
    store_calibration,
)
from rbv.jobs.library.analyzer import load_face_analyzer, with_library_pack
from rbv.store import open_database


def eval_(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(help="<identity>/<image> folders, or a folder "
                                           "with labels.csv (path,identity).")],
    labels: Annotated[Path | None, typer.Option(help="A labels.csv elsewhere (paths "
                                                "relative to it).", show_default=False)] = None,
    threshold: Annotated[float | None, typer.Option(
        help="Similarity for the threshold methods. Default: what `rbv cluster` would use.",
        show_default=False)] = None,
    budget: Annotated[float | None, typer.Option(
        help="Budget for the evidence method. Default: what `rbv cluster` would use.",
        show_default=False)] = None,
    calibrate: Annotated[bool, typer.Option("--calibrate", help="Sweep each method's "
                                            "parameter and report the best and the range "
                                            "within 0.005 pairwise F of it.")] = False,
    store: Annotated[bool, typer.Option("--store", help="With --calibrate: save the "
                                        "recognizer's impostor model measured on these "
                                        "labels (used by the evidence method) and each "
                                        "threshold method's best threshold as the pack's "
                                        "calibration in the library database.")] = False,
    model_pack: ModelPackOption = None,
    device: DeviceOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Score clustering on labelled photos: pairwise and BCubed precision/recall/F for
    each method and for an Immich-style baseline, on the same embeddings.

    The photos are indexed into a scratch database under the data directory (kept, so
    re-runs are fast) unless --database / DATABASE_URL names one; only the faces of
    photos under FOLDER are scored. A label names the photo's subject: its largest face,
    unless that one is off centre (over 1/4 of the shorter side) while another face is
    central (within 0.15), as in a crop centred on its subject beside someone larger.
    Each method runs with the setting `rbv cluster` would use on the library.

    Examples:

        rbv eval ../shared/data/faces --model-pack ../shared/models/scrfd_sface

        rbv eval ../shared/data/faces --calibrate --store --model-pack scrfd_sface
    """
    if store and not calibrate:
        raise ConfigError("--store saves what --calibrate measures; add --calibrate")
    settings = settings_of(ctx, database_url=database, model_pack=model_pack, device=device)
    try:
        library = open_database(settings)
    except RbvError:  # no library yet: eval needs none (the default pack then)
        library = None
    if library is not None:
        settings = with_library_pack(settings, library)
    work = settings if settings.database_url else scratch_settings(settings)
    analyzer = load_face_analyzer(settings)
    # The library's database: where `rbv cluster` reads its settings and --store writes.
    library, stored = library_settings(settings, analyzer.pack.name, required=store)
    reporter = ProgressReporter(enabled=not as_json)
    with reporter:
        report = run_eval(work, folder, analyzer, stored=stored, labels_csv=labels,
                          threshold=threshold, budget=budget, calibrate=calibrate,
                          reporter=reporter)
    if store and library is not None:
        store_calibration(library, analyzer.pack, report, folder)
    if as_json:
        print_json(report.as_dict())
        return
    _print(report)


def _print(report: EvalReport) -> None:
    console = Console()
    console.print(f"Pack {report.pack}: {report.labelled_faces} labelled faces of "
                  f"{report.identities} identities ({report.images} photos, "
                  f"{report.photos_without_face} without a detected face); {report.database}")
    # The settings are long sentences: a legend under the table, so that the scores keep
    # one line each at 80 columns.
    table = Table("method", "clusters", "pairwise P / R / F", "BCubed P / R / F",
                  title="With the settings `rbv cluster` would use")
    for s in report.scores:
        table.add_row(s.method, str(s.clusters),
                      f"{s.pairwise.precision:.3f} / {s.pairwise.recall:.3f} / {s.pairwise.f1:.3f}",
                      f"{s.bcubed.precision:.3f} / {s.bcubed.recall:.3f} / {s.bcubed.f1:.3f}")
    print_table(table, whole=["pairwise P / R / F", "BCubed P / R / F"], console=console)
    console.print("Settings:")
    for s in report.scores:
        for line in textwrap.wrap(f"{s.method}: {report.settings[s.method]}",
                                  width=console.width - 1, initial_indent="  ",
                                  subsequent_indent="      "):
            console.print(line, highlight=False, soft_wrap=True)
    m = report.impostor
    console.print(f"Different-person similarity on these labels: mean {m['mu']:.3f}, "
                  f"spread {m['sigma']:.3f} (the evidence method's impostor model).")
    if not report.calibration:
        return
    best = Table("method", "parameter", "best", "range within 0.005 F", "clusters",
                 "pairwise F", "BCubed F", title="Calibration (best pairwise F per method)")
    for method in report.calibration:
        s = report.best(method)
        lo, hi = report.plateaus[method]
        best.add_row(method, s.parameter, f"{s.threshold:g}", f"{lo:g} – {hi:g}",
                     str(s.clusters), f"{s.pairwise.f1:.3f}", f"{s.bcubed.f1:.3f}")
    print_table(best, optional=["range within 0.005 F", "clusters"], console=console)
    default = next(s for s in report.scores if s.method == DEFAULT_METHOD.value)
    base = report.best(BASELINE)
    console.print(f"Default ({DEFAULT_METHOD.value}, as `rbv cluster` would run it) vs "
                  f"{BASELINE} at its best threshold: pairwise F {default.pairwise.f1:.3f} vs "
                  f"{base.pairwise.f1:.3f} ({default.pairwise.f1 - base.pairwise.f1:+.3f}), "
                  f"BCubed F {default.bcubed.f1:.3f} vs {base.bcubed.f1:.3f}.")
    console.print("Thresholds calibrated on one library do not transfer to one with many "
                  "more people; the impostor model does (it belongs to the recognizer)."
                  + (" Stored as the pack's calibration." if report.stored else ""))

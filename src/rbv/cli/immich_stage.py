"""``rbv immich-stage``: import an Immich library into a folder, then index it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from rbv.cli.common import (
    DatabaseOption,
    DeviceOption,
    JsonOption,
    MlUriOption,
    ModelPackOption,
    print_json,
    settings_of,
)
from rbv.cli.index import index_first
from rbv.config import Settings
from rbv.errors import EXIT_PARTIAL, ConfigError
from rbv.faces.types import FaceAnalyzer
from rbv.immich.client import ImmichClient
from rbv.jobs.exchange.immich_stage import (
    BREAKER_THRESHOLD,
    DEFAULT_WORKERS,
    STAGE_MIN_FACE,
    StageOptions,
    StageSummary,
    stage_library,
)
from rbv.jobs.library.analyzer import load_face_analyzer, with_library_pack
from rbv.jobs.library.index import IndexSummary
from rbv.jobs.recording import recorded_run
from rbv.store import Database, open_database
from rbv.words import counted


def immich_stage(
    ctx: typer.Context,
    out: Annotated[Path, typer.Option("--out", "-o", help="Staging folder; files go to "
                                      "OUT/<user>/<yyyy>/<yyyy-mm-dd>/<original name> (or "
                                      "the storage template's path).")],
    url: Annotated[str | None, typer.Option(
        "--url", help="Immich server URL. Default: $IMMICH_URL.", show_default=False)] = None,
    user: Annotated[str, typer.Option(help="Label of this library: the sub-folder of --out.")]
    = "immich",
    min_face: Annotated[float, typer.Option(
        help="Keep an asset if some face's short edge, in original pixels, is at least this."
    )] = STAGE_MIN_FACE,
    workers: Annotated[int, typer.Option(help="Concurrent per-asset workers.")]
    = DEFAULT_WORKERS,
    page_size: Annotated[int, typer.Option(help="Assets per search page (1..1000).")] = 1000,
    no_index: Annotated[bool, typer.Option("--no-index", help="Only stage; do not index.")]
    = False,
    retry_wait: Annotated[float, typer.Option(
        help="Seconds before the first retry of a failed request (doubles each retry).")] = 2.0,
    timeout: Annotated[float, typer.Option(
        help="Seconds each request may take in all (not per read; an original's download "
        "may go on past it while it keeps up 64 KiB/s).")]
    = 60.0,
    max_download_mb: Annotated[int, typer.Option(help="Refuse originals larger than this.")]
    = 4096,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List and check faces, but download and write nothing.")] = False,
    model_pack: ModelPackOption = None,
    device: DeviceOption = None,
    ml_uri: MlUriOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Import an Immich library: stage every image asset with a face of at least
    --min-face pixels (short edge, in the original), skipping byte-duplicates of images
    already in the database or already staged, then index the staged folder.

    The API key is read from $IMMICH_API_KEY (never from the command line, so it stays
    out of shell history and process lists). Re-running the same command resumes: assets
    finished earlier are not asked for or downloaded again; failed ones are retried, and
    assets without faces are asked about again (Immich may not have looked yet). The
    listing is checked against the server's own count: exit code 3 when they differ.
    After 12 consecutive errors the server is probed; if it is down, the state is saved
    and rbv exits with code 2 (re-run later to resume).

    Examples:

        export IMMICH_URL=https://photos.example.org IMMICH_API_KEY=...

        rbv immich-stage --out ~/staging --user alice

        rbv immich-stage --out ~/staging --user alice --no-index --json

        rbv immich-stage --out ~/staging --ml-uri http://gpu-box:3003
    """
    settings = settings_of(ctx, database_url=database, immich_url=url, model_pack=model_pack,
                           device=device, ml_uri=ml_uri)
    if not settings.immich_url:
        raise ConfigError("no Immich server: pass --url or set IMMICH_URL")
    if not settings.immich_api_key:
        raise ConfigError("no API key: set IMMICH_API_KEY (create one in Immich under "
                          "Account Settings → API Keys)")
    db = open_database(settings)
    indexing = not no_index and not dry_run
    analyzer = (load_face_analyzer(with_library_pack(settings, db))  # fail fast: bad pack
                if indexing else None)
    options = StageOptions(out_dir=out, user=user, min_face=min_face, workers=workers,
                           page_size=page_size, breaker_threshold=BREAKER_THRESHOLD,
                           dry_run=dry_run)
    client = ImmichClient(settings.immich_url, settings.immich_api_key, timeout_s=timeout,
                          retry_wait_s=retry_wait, max_download_bytes=max_download_mb << 20)
    progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                        console=Console(stderr=True), transient=True, disable=as_json)
    with client, progress:
        task = progress.add_task("Staging", total=None)

        def show(s: StageSummary) -> None:
            progress.update(task, description=f"Staging: {s.seen:,} seen, "
                            f"{s.staged:,} staged, {s.failed:,} failed")

        parameters = {"user": user, "out": str(out), "min_face": min_face, "workers": workers}
        with recorded_run(db, "immich-stage", parameters, dry_run=dry_run) as run:
            summary = stage_library(client, db, options, on_progress=show)
            run.counts = {"seen": summary.seen, "staged": summary.staged,
                          "failed": summary.failed}
            if summary.failed or not summary.listing_complete:
                run.status = "partial"
    indexed = None
    if analyzer is not None and options.user_dir.is_dir():
        indexed = _index_staged(settings, db, analyzer, options.user_dir, as_json)
    if as_json:
        print_json({**summary.as_dict(), "out": options.user_dir,
                    "index": indexed.as_dict() if indexed else None})
    else:
        _print_summary(summary, options, dry_run)
        if indexed is not None:
            e = indexed.embed
            typer.echo(f"Indexed {options.user_dir}: {indexed.catalogue.new_images:,} new "
                       f"images" + (f", {e.faces:,} faces" if e else "") + ".")
    if not summary.listing_complete:
        typer.echo(f"Warning: the server counts {summary.server_images:,} image assets but "
                   f"listed {summary.seen:,}; some were not staged. Re-run; if it persists, "
                   "report it with `rbv immich-stage --json` output.", err=True)
    if summary.failed or not summary.listing_complete or \
            (indexed is not None and indexed.failed):
        raise typer.Exit(EXIT_PARTIAL)


def _index_staged(settings: Settings, db: Database, analyzer: FaceAnalyzer, folder: Path,
                  as_json: bool) -> IndexSummary:
    """``rbv index FOLDER`` with this run's settings (every run: it is incremental, and
    picks up files staged by a run that stopped before indexing)."""
    return index_first(db, settings, [folder], analyzer, as_json=as_json)


def _print_summary(s: StageSummary, options: StageOptions, dry_run: bool) -> None:
    console = Console()
    title = f"Immich staging into {options.user_dir}" + (" (dry run)" if dry_run else "")
    table = Table("assets", Column("count", justify="right"), title=title)
    rows = [("seen", s.seen), ("finished in earlier runs", s.resumed), ("staged", s.staged),
            ("duplicate of an image in the database", s.dup_db),
            ("duplicate of a file staged earlier", s.dup_run),
            ("no face (asked again on every run)", s.no_face),
            (f"only faces under {options.min_face:g} px", s.small_face), ("errors", s.failed)]
    if dry_run:
        rows.insert(3, ("would download", s.would_download))
    for name, count in rows:
        table.add_row(name, f"{count:,}")
    console.print(table)
    for asset, error in s.errors[:10]:
        console.print(f"  failed {asset}: {error}", style="red", markup=False)
    if s.server_images is not None:
        console.print(f"The server counts {s.server_images:,} image assets; "
                      f"{s.seen:,} listed.", markup=False)
    if s.detection_pending:
        jobs = counted(s.detection_pending, "thumbnail/metadata/face detection job")
        console.print(f"Immich still has {jobs} to run: assets without faces may not have "
                      "been looked at yet; re-run once "
                      + ("it is" if s.detection_pending == 1 else "they are") + " done.",
                      markup=False)
    if s.failed:
        console.print(f"{counted(s.failed, 'asset')} failed; re-run the same command to "
                      f"retry {'it' if s.failed == 1 else 'them'}.")

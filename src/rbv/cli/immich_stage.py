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
    library_of,
    print_json,
    settings_of,
)
from rbv.cli.embed import say_losses
from rbv.cli.progress import ProgressReporter
from rbv.errors import EXIT_PARTIAL, ConfigError
from rbv.jobs.exchange.immich_stage import (
    BREAKER_THRESHOLD,
    DEFAULT_WORKERS,
    STAGE_MIN_FACE,
    StageOptions,
    StageSummary,
)
from rbv.jobs.reporting import Problem
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
    settings = settings_of(ctx, immich_url=url)
    if not settings.immich_url:
        raise ConfigError("no Immich server: pass --url or set IMMICH_URL")
    if not settings.immich_api_key:
        raise ConfigError("no API key: set IMMICH_API_KEY (create one in Immich under "
                          "Account Settings → API Keys)")
    lib = library_of(ctx, database, immich_url=url, model_pack=model_pack, device=device,
                     ml_uri=ml_uri)
    options = StageOptions(out_dir=out, user=user, min_face=min_face, workers=workers,
                           page_size=page_size, breaker_threshold=BREAKER_THRESHOLD,
                           dry_run=dry_run)
    with _StagingThenIndexing(enabled=not as_json) as shown:
        done = lib.immich_stage(options, timeout_s=timeout, retry_wait_s=retry_wait,
                                max_download_bytes=max_download_mb << 20,
                                index=not no_index, on_progress=shown.staging,
                                reporter=shown)
    summary, indexed = done.result, done.index
    if indexed is not None and indexed.embed:
        say_losses(lib, indexed.embed, err=as_json)
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


class _StagingThenIndexing:
    """The run's progress on stderr: a spinner with the staging's counts (gone when it
    ends), then the indexing's bar (:class:`ProgressReporter`), one after the other, as
    a terminal shows one at a time."""

    def __init__(self, *, enabled: bool) -> None:
        self._spinner = Progress(SpinnerColumn(), TextColumn("{task.description}"),
                                 TimeElapsedColumn(), console=Console(stderr=True),
                                 transient=True, disable=not enabled)
        self._task = self._spinner.add_task("Staging", total=None)
        self._indexing = ProgressReporter(enabled=enabled)
        self._indexing_started = False

    def __enter__(self) -> _StagingThenIndexing:
        self._spinner.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._spinner.stop()
        if self._indexing_started:
            self._indexing.__exit__(None, None, None)

    def staging(self, s: StageSummary) -> None:
        self._spinner.update(self._task, description=f"Staging: {s.seen:,} seen, "
                             f"{s.staged:,} staged, {s.failed:,} failed")

    def _index(self) -> ProgressReporter:
        if not self._indexing_started:
            self._spinner.stop()
            self._indexing.__enter__()
            self._indexing_started = True
        return self._indexing

    def stage(self, name: str, total: int | None) -> None:
        self._index().stage(name, total)

    def advance(self, items: int = 1, *, faces: int = 0, errors: int = 0) -> None:
        self._index().advance(items, faces=faces, errors=errors)

    def problem(self, problem: Problem) -> None:
        self._index().problem(problem)


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

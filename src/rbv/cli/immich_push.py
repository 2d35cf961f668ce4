"""``rbv immich-push``: rbv's names out to Immich people."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from rbv.cli.common import (
    DatabaseOption,
    JsonOption,
    ModelPackOption,
    library_of,
    print_json,
    settings_of,
)
from rbv.errors import EXIT_PARTIAL, ConfigError, printable
from rbv.jobs.exchange.immich_push import (
    DEFAULT_PUSH_WORKERS,
    PUSH_MIN_IOU,
    PushOptions,
    PushSummary,
)
from rbv.jobs.exchange.immich_stage import BREAKER_THRESHOLD
from rbv.words import counted


def immich_push(
    ctx: typer.Context,
    url: Annotated[str | None, typer.Option(
        "--url", help="Immich server URL, as given to immich-stage. Default: $IMMICH_URL.",
        show_default=False)] = None,
    user: Annotated[str | None, typer.Option(
        help="Only assets staged with this immich-stage --user label. Default: all of "
        "the server's.", show_default=False)] = None,
    min_iou: Annotated[float, typer.Option(
        min=0.01, max=1.0, help="An Immich face is rbv's face from this box overlap on.")]
    = PUSH_MIN_IOU,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Concurrent per-asset workers.")]
    = DEFAULT_PUSH_WORKERS,
    recheck: Annotated[bool, typer.Option(
        "--recheck", help="Also ask about assets finished by earlier runs (after changes "
        "made in Immich).")] = False,
    retry_wait: Annotated[float, typer.Option(
        help="Seconds before the first retry of a failed request (doubles each retry).")] = 2.0,
    timeout: Annotated[float, typer.Option(
        help="Seconds each request may take in all (not per read).")]
    = 60.0,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Say what would change; change nothing in Immich or rbv.")] = False,
    model_pack: ModelPackOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Push rbv's person names to Immich, for the photos that came from it.

    For each photo staged by `rbv immich-stage` with faces of named persons, the
    Immich faces of that asset that overlap rbv's faces (boxes scaled to one frame,
    IoU >= --min-iou) get rbv's name. When every face rbv matched in an unnamed Immich
    person (Immich's own cluster) has the same name and no Immich person has it yet, that
    person is named as a whole (its faces rbv never staged too); otherwise faces are put
    one by one in the Immich person with the name, found by name or created. A face
    Immich already shows under another name is left alone and reported as a conflict; no
    Immich person is ever deleted or merged, and no named one renamed. A face drawn by
    hand in rbv (`rbv faces add`) that Immich has no face for is created there, at its
    box, in the person of its name (Immich's "tag a face"). Re-running
    resumes: finished assets are skipped, and nothing already right is changed. If the
    server stops answering, rbv exits with code 2 (re-run later).

    The API key is read from $IMMICH_API_KEY only.

    Examples:

        export IMMICH_URL=https://photos.example.org IMMICH_API_KEY=...

        rbv immich-push --dry-run

        rbv immich-push --user alice --json
    """
    settings = settings_of(ctx, immich_url=url)
    if not settings.immich_url:
        raise ConfigError("no Immich server: pass --url or set IMMICH_URL")
    if not settings.immich_api_key:
        raise ConfigError("no API key: set IMMICH_API_KEY (create one in Immich under "
                          "Account Settings → API Keys)")
    lib = library_of(ctx, database, immich_url=url)
    options = PushOptions(user=user, min_iou=min_iou, workers=workers,
                          breaker_threshold=BREAKER_THRESHOLD, dry_run=dry_run,
                          recheck=recheck)
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), console=Console(stderr=True), transient=True,
                        disable=as_json)
    with progress:
        task = progress.add_task("Pushing names", total=None)

        def show(s: PushSummary, total: int) -> None:
            progress.update(task, total=total, completed=s.checked,
                            description=f"Pushing names: {s.assigned:,} faces assigned")

        summary = lib.immich_push(options, timeout_s=timeout, retry_wait_s=retry_wait,
                                  model_pack=model_pack, on_progress=show)
    if as_json:
        print_json(summary.as_dict())
    else:
        _print_summary(summary)
    if summary.failed:
        raise typer.Exit(EXIT_PARTIAL)


def _print_summary(s: PushSummary) -> None:
    console = Console()
    title = f"Names pushed to {s.server} (pack {s.pack})" + (" (dry run)" if s.dry_run else "")
    table = Table("faces and assets", Column("count", justify="right"), title=title)
    verb = "to assign" if s.dry_run else "assigned"
    rows = [("assets with named faces", s.assets), ("finished in earlier runs", s.resumed),
            ("assets checked", s.checked),
            ("faces to name with their person" if s.dry_run
             else "faces named with their person", s.named_faces),
            (f"faces {verb}", s.assigned),
            ("faces already right", s.unchanged), ("conflicts (left as they are)",
                                                   len(s.conflicts)),
            ("faces drawn by hand, to create in Immich" if s.dry_run
             else "faces drawn by hand, created in Immich", s.created),
            ("rbv faces Immich has no face for", s.unmatched), ("failed assets", s.failed)]
    for name, count in rows:
        table.add_row(name, f"{count:,}")
    console.print(table)
    if s.people_named:
        named = "would name" if s.dry_run else "named"
        console.print(f"Unnamed Immich people {named} (whole, faces rbv never saw "
                      "included): " + ", ".join(printable(n) for n in s.people_named),
                      markup=False)
    if s.people_split:
        console.print(f"{s.people_split:,} unnamed Immich people held faces rbv names "
                      "differently: rbv's faces were moved out one by one, the rest left "
                      "unnamed.", markup=False)
    if s.people_created:
        created = "would create" if s.dry_run else "created"
        console.print(f"Immich people {created}: " + ", ".join(printable(n)
                                                              for n in s.people_created),
                      markup=False)
    for c in s.conflicts[:20]:
        console.print(f"  conflict: asset {c.asset_id} face {c.immich_face_id}: rbv says "
                      f"{printable(c.name)!r}, Immich {printable(c.immich_name)!r} ({c.reason})",
                      style="yellow", markup=False)
    if len(s.conflicts) > 20:
        console.print(f"  … and {len(s.conflicts) - 20:,} more (--json lists them all)")
    for asset, error in s.errors[:10]:
        console.print(f"  failed {asset}: {printable(error)}", style="red", markup=False)
    if s.failed:
        console.print(f"{counted(s.failed, 'asset')} failed; re-run the same command to "
                      f"retry {'it' if s.failed == 1 else 'them'}.")

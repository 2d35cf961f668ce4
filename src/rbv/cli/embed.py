"""``rbv embed``: detect and embed faces of catalogued images (one of N workers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from rbv.cli.common import (
    ConcurrencyOption,
    DatabaseOption,
    DetThresholdOption,
    DeviceOption,
    JsonOption,
    MinFaceOption,
    MlUriOption,
    ModelPackOption,
    PathMapOption,
    library_of,
    path_map_of,
    print_json,
    say,
)
from rbv.cli.progress import ProgressReporter, rate
from rbv.errors import EXIT_PARTIAL
from rbv.jobs.library.carry import CarrySummary
from rbv.jobs.library.embed import EmbedSummary
from rbv.words import counted

if TYPE_CHECKING:
    from rbv.library import Library


def embed(
    ctx: typer.Context,
    model_pack: ModelPackOption = None,
    device: DeviceOption = None,
    det_threshold: DetThresholdOption = None,
    min_face: MinFaceOption = None,
    ml_uri: MlUriOption = None,
    concurrency: ConcurrencyOption = None,
    path_map: PathMapOption = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", min=1, help="Stop after this many images.", show_default=False)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Say how many images would be scanned; load no model, write "
        "nothing.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Detect and embed faces of catalogued images that the model pack has not scanned.

    Work is claimed in the database, so any number of `rbv embed` processes on any
    number of machines can share one PostgreSQL: no image is done twice. Results are
    committed in batches; after a crash, re-run and only the lost batch is redone.
    Images that fail are recorded and retried on later runs (exit code 3).

    Examples:

        rbv embed

        rbv embed --model-pack buffalo_l --device cpu --limit 1000

        rbv embed -d postgresql://me@dbhost/photos --json   # on each worker

        rbv embed -d postgresql://me@dbhost/photos --path-map /mnt=/Volumes

        rbv embed --ml-uri http://gpu1:3003 --ml-uri http://gpu2:3003

    A worker that has the library under another root reads it there with --path-map.
    Each worker renews its claims with every batch; claims not renewed for
    $RBV_CLAIM_LEASE_S seconds are taken back by any worker, those of a process of this
    machine that is gone at once. `rbv stats` shows who works on what.
    """
    lib = library_of(ctx, database, concurrency=concurrency, model_pack=model_pack,
                     device=device, det_threshold=det_threshold, min_face=min_face,
                     ml_uri=ml_uri, path_map=path_map_of(path_map))
    if dry_run:
        pack, todo = lib.embed_work()
        if as_json:
            print_json({"pack": pack, "would_scan": todo})
        else:
            typer.echo(f"Would scan {todo:,} images with {pack}; nothing was written.")
        return
    reporter = ProgressReporter(enabled=not as_json)
    reporter.errors.print(lib.analyzer_words(), markup=False, highlight=False)
    with reporter:
        summary = lib.embed(limit=limit, reporter=reporter)
    if as_json:
        print_json(summary.as_dict())
    else:
        say(
            f"Scanned {counted(summary.images, 'image')} with {summary.pack}: "
            f"{counted(summary.faces, 'face')}, "
            f"{summary.no_faces:,} without faces, {summary.failed:,} failed "
            f"({rate(summary.images_per_s, 'images/s')})."
            + helpers_line(summary.helpers)
            + (" Failed images are retried on the next run." if summary.failed else "")
            + taken_over_line(summary.taken_over)
            + carry_line(summary.carry)
        )
    say_losses(lib, summary, err=as_json)
    if summary.failed:
        raise typer.Exit(EXIT_PARTIAL)


def say_losses(lib: Library, summary: EmbedSummary, *, err: bool = False) -> None:
    """Say what the carry could not keep (a decision on a face of an edited photo that
    was not found again), then let the library forget it (killed before, the next run
    says it again), and each ML server's share (on stderr with ``err``, when stdout is
    JSON: the JSON holds them too where the command prints the scan's)."""
    for line in [*summary.carry.dropped, *server_lines(summary.servers)]:
        typer.echo(line, err=err)
    lib.losses_said(summary.carry)


def server_lines(servers: list[dict[str, object]]) -> list[str]:
    """One line per ``--ml-uri`` server when there are several: the images it answered,
    and why it is down or not used at the end."""
    if len(servers) < 2:
        return []
    return [f"Server {s['url']}: {s['images']:,} images"
            + (f" (at the end: {s['problem']})" if s["problem"] else "") for s in servers]


def helpers_line(helpers: list[int]) -> str:
    """What the run's helper processes scanned (a GPU's big runs, RBV_EMBED_PROCESSES),
    in one sentence (or "")."""
    if not helpers:
        return ""
    if len(helpers) == 1:
        return f" A helper process scanned {helpers[0]:,} of them."
    each = ", ".join(f"{n:,}" for n in helpers[:-1]) + f" and {helpers[-1]:,}"
    return f" {len(helpers)} helper processes scanned {each} of them."


def taken_over_line(taken_over: int) -> str:
    """What other workers took from this one when its lease lapsed, in one sentence (or
    ""): those images are theirs to count, not this worker's."""
    if not taken_over:
        return ""
    return (f" {counted(taken_over, 'image')} it had claimed went to another worker when "
            "its lease lapsed (RBV_CLAIM_LEASE_S); that worker counts them.")


def carry_line(carry: CarrySummary) -> str:
    """What the carry to photos whose image data changed did, in one sentence (or "")."""
    text = ""
    if carry.photos:
        text += (f" {carry.carried:,} faces of {carry.photos:,} edited photos found again, "
                 "with their persons and decisions")
        text += f"; {len(carry.dropped):,} faces' decisions could not go (below)." \
            if carry.dropped else "."
    if carry.busy:
        text += f" Note: {carry.busy}."
    return text

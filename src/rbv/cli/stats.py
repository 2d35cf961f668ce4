"""``rbv stats``: what is in the database."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from rbv.cli.common import DatabaseOption, JsonOption, library_of, print_json
from rbv.cli.tables import print_table
from rbv.jobs.library.stats import looks_loose


def stats(ctx: typer.Context, database: DatabaseOption = None, as_json: JsonOption = False,
          verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show the clustering "
                                                "setting's impostor model (mu, sigma, tau)."
                                                )] = False) -> None:
    """Show images, faces, persons and unassigned faces per model pack, the `embed`
    workers at work (what each holds claimed, since when, and whether its lease has
    lapsed), and the last runs.

    Examples:

        rbv stats

        rbv stats --verbose

        rbv stats --json | jq '.packs[0].unassigned_faces'
    """
    lib = library_of(ctx, database)
    report = lib.stats()
    if as_json:
        print_json(report)
        return
    console = Console()
    im = report["images"]
    console.print(
        f"Images: {im['images']:,} ({im['catalogued']:,} catalogued, {im['failed']:,} failed), "
        f"{im['paths']:,} paths, {im['bytes'] / 1e9:.2f} GB ({lib.db.display})"
    )
    if im["missing_paths"]:
        console.print(f"Missing: {im['missing_paths']:,} paths, {im['missing_images']:,} "
                      "photos found at no other path (`rbv prune` removes them).")
    if not report["packs"]:
        console.print("No photos indexed yet: `rbv index FOLDER` finds the faces in a "
                      "folder's photos.")
    packs = Table("pack", "dim", "scanned", "scan failures", "faces", "unassigned", "persons",
                  "named", title="Per model pack")
    for p in report["packs"]:
        packs.add_row(p["pack"], str(p["embedding_dim"]), f"{p['images_scanned']:,}",
                      f"{p['scan_failures']:,}", f"{p['faces']:,}", f"{p['unassigned_faces']:,}",
                      f"{p['persons']:,}", f"{p['named_persons']:,}")
    if report["packs"]:
        print_table(packs, optional=["scan failures", "dim", "named"], whole=["pack"],
                    console=console)
    for p in report["packs"]:
        check = p["clustering"]
        line = f"{p['pack']}: {check['setting' if verbose else 'in_words']}."
        if "above_merge_bar" in check:
            line += (f" Faces sharing a photo (different people): {check['same_photo_pairs']:,} "
                     f"pairs, mean similarity {check['same_photo_mean']:.2f}, "
                     f"{check['above_merge_bar']:,} at or above the merge bar "
                     f"{check['merge_bar']:.2f}.")
        console.print(line, markup=False, highlight=False)  # wrapped between words
        if looks_loose(check):
            console.print("  That is more than chance: the setting looks too loose for this "
                          "library; try `rbv cluster --full --budget 1`, or calibrate with "
                          "`rbv eval LABELLED --calibrate --store`.")
    if report["workers"]:
        workers = Table("worker", "pack", "images claimed", "since", "renewed", "lease",
                        title="Working now")
        for w in report["workers"]:
            since, renewed = w["claimed_since"], w["renewed_at"]
            workers.add_row(w["worker"], w["pack"], f"{w['images']:,}",
                            f"{since:%Y-%m-%d %H:%M:%S}",
                            f"{renewed:%H:%M:%S}" if renewed.date() == since.date()
                            else f"{renewed:%Y-%m-%d %H:%M:%S}",
                            "lapsed" if w["lease_lapsed"]
                            else "held")
        print_table(workers, whole=["worker"], console=console)
    if report["last_runs"]:
        runs = Table("command", "status", "started", "finished", title="Last runs")
        for r in report["last_runs"]:
            started, finished = r["started_at"], r["finished_at"]
            runs.add_row(r["command"], r["status"], f"{started:%Y-%m-%d %H:%M:%S}",
                         "-" if finished is None else f"{finished:%H:%M:%S}"
                         if finished.date() == started.date() else f"{finished:%Y-%m-%d %H:%M:%S}")
        print_table(runs, console=console)

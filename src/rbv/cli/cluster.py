"""``rbv cluster``: group faces into persons."""

from __future__ import annotations

from functools import partial
from typing import Annotated

import typer
from rich.console import Console

from rbv.cli.common import (
    DatabaseOption,
    JsonOption,
    ModelPackOption,
    library_of,
    print_json,
    say,
)
from rbv.cli.remedies import command
from rbv.cluster.assign import MATCH_MARGIN
from rbv.cluster.defaults import DEFAULT_BUDGET, DEFAULT_K, DEFAULT_THRESHOLD, Method
from rbv.jobs.grouping.cluster import ClusterReport
from rbv.words import counted


def cluster(
    ctx: typer.Context,
    method: Annotated[Method | None, typer.Option(
        help="evidence (linkage tested against the recognizer's different-person "
        "similarities; the default), connected components, agglomerative (average "
        "linkage) or hdbscan. Default: evidence, or connected when only --threshold is "
        "given.", show_default=False)] = None,
    threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0,
                     help="Threshold methods: cosine similarity (0-1, higher = stricter, "
                     "as every threshold of rbv). An incremental run groups the new "
                     "faces with it, --full every face. Default: the pack's calibrated value "
                     "(`rbv eval --calibrate --store`), "
                     f"else rbv's built-in one for the recognizer, else {DEFAULT_THRESHOLD}.",
                     show_default=False),
    ] = None,
    budget: Annotated[
        float | None,
        typer.Option(min=0.0, help="Evidence method: how many chance (different-person) face pairs "
                     "the whole library may let through; lower = stricter. Default: "
                     f"{DEFAULT_BUDGET:g}.", show_default=False),
    ] = None,
    match_threshold: Annotated[
        float | None,
        typer.Option(min=0.0, max=1.0,
                     help="Threshold methods: similarity a new face needs to join a known "
                     f"person. Default: threshold + {MATCH_MARGIN}.", show_default=False),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Re-cluster every face; manual names, "
                                       "merges, moves and rejections are kept.")] = False,
    by_age: Annotated[bool | None, typer.Option(
        "--by-age/--as-made", help="With --full, on faces with estimated ages (an attribute "
        "model): compare faces centred on the library's faces of their age, so a child "
        "meets the adult they became (--by-age), or as the recognizer made them "
        "(--as-made). Kept for later runs and reviews. Default: by age for a recognizer "
        "rbv measured it on (SFace), as made for others.", show_default=False)] = None,
    neighbors: Annotated[int, typer.Option("--neighbors", "-k", min=2,
                                           help="k of the k-NN graph.")] = DEFAULT_K,
    model_pack: ModelPackOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Compute and report; write "
                                          "nothing.")] = False,
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="Also print the recognizer's model of different people "
        "(impostor mu, sigma, tau) behind the evidence method's bar.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Group faces into persons (incremental by default).

    Faces that already have a person keep it; new faces join a known person
    when the evidence is strong enough (a whole new fragment of a known person
    can join it), the rest form new persons. Two faces of one photo never
    share a person. --full re-clusters everything but keeps names, merges,
    manual moves and "not this person" decisions; person ids stay. The default
    method, evidence linkage, needs no calibration: it tests each merge against
    the recognizer's different-person similarities and asks more of a merge
    the bigger the library; so once the library holds 1.25 times the faces its
    persons were made with, an incremental run re-clusters every face as --full
    does, and says so.

    A person's id and name follow its faces: each person keeps the cluster
    holding most of its former faces, and a face placed by hand stays where it
    was placed without carrying others along. Every run lists what it did to
    named persons ("Ada: 27 → 25 faces (2 to person 3f2a9c12)") and names the
    named persons left without faces, with the SQL that deletes them.

    Examples:

        rbv cluster

        rbv cluster --full --budget 5

        rbv cluster --full --by-age

        rbv cluster --full --method agglomerative --threshold 0.4

        rbv cluster --model-pack scrfd_sface --dry-run --json

        rbv cluster --verbose
    """
    lib = library_of(ctx, database)
    console = Console(stderr=True)
    run = partial(lib.cluster, method=method, threshold=threshold, budget=budget,
                  match_threshold=match_threshold, full=full, dry_run=dry_run,
                  neighbors=neighbors, model_pack=model_pack, by_age=by_age)
    if as_json or not console.is_terminal:
        report = run()
    else:
        with console.status("clustering") as status:
            report = run(progress=lambda stage: status.update(stage))
    if as_json:
        print_json(report.as_dict())
        return
    # In words, wrapped between words at the terminal's width; the impostor model's
    # parameters only with --verbose (issue 62 #12)
    say(f"Pack {report.pack}: {report.setting if verbose else report.in_words}"
        f"{_match_words(report, match_threshold)}.")
    would = "Would assign" if dry_run else "Assigned"
    if report.full:
        by_hand = (f", {report.kept_by_hand:,} of them kept where they were placed by hand"
                   if report.kept_by_hand else "")
        say(f"{would} {counted(report.faces, 'face')}{by_hand} ({report.reassigned:,} "
            f"changed person, {counted(report.new_persons, 'new person')}, "
            f"{counted(report.removed_persons, 'emptied person')} removed).")
    else:
        say(f"{counted(report.considered, 'new face')}: {report.matched:,} joined known "
            f"persons, {report.clustered:,} clustered into "
            f"{counted(report.new_persons, 'new person')}.")
    _print_named(report)
    for note in report.notes:
        say(note)
    for remedy in report.remedies:
        say(_ADVICE[remedy.action].format(command(remedy)))
    if dry_run:
        typer.echo("Dry run: nothing was written.")


def _match_words(report: ClusterReport, given: float | None) -> str:
    """Where a new face joins a known person, on the threshold's scale (similarity), and
    why it differs from the threshold given."""
    if report.match_threshold is None or report.full:
        return ""
    why = "--match-threshold" if given is not None else f"the threshold + {MATCH_MARGIN:g}"
    return (f"; a new face joins a known person at similarity {report.match_threshold:g} "
            f"or more ({why})")


_ADVICE = {"calibrate": "The setting is a fallback: {}.",
           "cluster_full": "Run {} to re-cluster every face with it (names, merges and "
                           "other manual fixes are kept)."}
"""A report's remedies (:attr:`ClusterReport.remedies`) in a sentence of their own."""


NAMED_SHOWN = 20
"""Named persons listed one per line after a run (--json lists them all)."""


def _print_named(report: ClusterReport) -> None:
    """What the run did to named persons, one line each, most faces lost first; and the
    named persons left without faces, with the command that deletes them."""
    lost = [c for c in report.named if c.lost]
    for change in lost[:NAMED_SHOWN]:
        typer.echo(change.describe())
    if len(lost) > NAMED_SHOWN:
        typer.echo(f"… and {len(lost) - NAMED_SHOWN:,} more named persons lost faces "
                   "(--json lists them all).")
    gained = [c for c in report.named if not c.lost]
    if len(gained) == 1:
        typer.echo(gained[0].describe())
    elif gained:
        typer.echo(f"{len(gained):,} named persons gained {sum(c.gained for c in gained):,} "
                   "faces (--json lists them).")
    if report.empty_named:
        shown = ", ".join(repr(e["name"]) for e in report.empty_named[:NAMED_SHOWN])
        more = (f" and {len(report.empty_named) - NAMED_SHOWN:,} more"
                if len(report.empty_named) > NAMED_SHOWN else "")
        say(f"{counted(len(report.empty_named), 'named person')} "
            f"{'holds' if len(report.empty_named) == 1 else 'hold'} no faces: {shown}{more}. "
            "A name is kept until you delete it (its faces were unassigned by SQL or "
            "moved out by hand); to delete:")
        typer.echo(f"  rbv psql -c \"{report.delete_empty_named}\"")

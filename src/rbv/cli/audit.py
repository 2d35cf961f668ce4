"""``rbv audit``: what is inconsistent in the library; ``--fix`` repairs what is safe."""

from __future__ import annotations

from typing import Annotated

import typer

from rbv.cli.common import DatabaseOption, JsonOption, library_of, print_json
from rbv.errors import printable
from rbv.jobs.persons.audit import AuditReport, faces_to_unassign
from rbv.words import counted


def audit(
    ctx: typer.Context,
    fix: Annotated[bool, typer.Option(
        "--fix", help="Repair what is safe (see above) and say what was done.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="With --fix: say what it would repair; write nothing.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report empty persons, photos with two faces in one person, faces in
    a person they were rejected from, faces linked as different in one
    person, faces linked as one person but placed by hand in two, duplicate
    names, missing files, and claims and runs left by dead workers.

    Without --fix nothing is written. --fix repairs what loses no one's
    work: dead workers' claims go back to the queue and their runs are
    marked interrupted; empty persons without a name are deleted; of two
    faces of one photo in one person, the face placed by hand (else the one
    most like the person's other photos) stays and the others are
    unassigned; a face placed automatically in a person it was rejected
    from, or linked as different from another face of its person, is
    unassigned (`rbv persons undo` puts those back). The rest (faces placed
    by hand among them) is reported with the command that settles it
    (persons move/not-this-person/rename/merge, prune).

    Examples:

        rbv audit

        rbv audit --fix --dry-run

        rbv audit --fix

        rbv audit --json | jq '.missing.paths'
    """
    report = library_of(ctx, database).audit(fix=fix, dry_run=dry_run)
    if as_json:
        print_json({**report.as_dict(), "dry_run": dry_run})
        return
    for line in _lines(report, dry_run):
        typer.echo(printable(line))


def _lines(r: AuditReport, dry_run: bool) -> list[str]:
    def pack(pack_id: int | None) -> str:
        return r.pack(pack_id) or "no pack"

    lines = []
    for p in r.empty_persons:
        what = f"named {p.name!r}, kept: delete or reuse it by hand" if p.name is not None \
            else "unnamed, " + ("others were merged into it: kept" if p.merge_target
                                else "--fix deletes it")
        lines.append(f"Empty person {p.id} ({pack(p.pack_id)}): no faces, {what}.")
    for c in r.conflicts:
        faces = ", ".join(f"{f.id} ({f.assigned_by or '?'})" for f in c.faces)
        drop = faces_to_unassign(c)
        then = (f"--fix unassigns {', '.join(map(str, drop))}" if drop else
                "decide by hand: `rbv persons move` or `rbv persons not-this-person`")
        lines.append(f"Same photo twice in person {c.person_id}: {c.path or c.image_id}, "
                     f"faces {faces}; {then}.")
    taken = {f for faces in r.contradicting().values() for f in faces}
    for x in r.rejected_inside:
        then = ("--fix unassigns it" if x.face_id in taken else
                f"decide by hand: `rbv persons not-this-person {x.person_id} {x.face_id}` (it "
                f"is not) or `rbv persons move {x.face_id} --to {x.person_id}` (it is)")
        lines.append(f"Face {x.face_id} ({x.assigned_by or '?'}) is in person {x.person_id} "
                     f"it was rejected from; {then}.")
    for a in r.apart_inside:
        out = [f for f in a.faces if f in taken]
        then = (f"--fix unassigns {', '.join(map(str, out))}" if out else
                f"decide by hand: `rbv persons not-this-person {a.person_id} FACE` or undo "
                "the link (`rbv persons history`)")
        faces = ", ".join(f"{f} ({by or '?'})" for f, by in zip(a.faces, a.assigned_by,
                                                               strict=True))
        lines.append(f"Faces {faces} are linked as different persons but both in person "
                     f"{a.person_id}; {then}.")
    for linked in r.same_apart:
        (one, two), (here, there) = linked.faces, linked.persons
        lines.append(f"Faces {one} and {two} are linked as one person but placed by hand in "
                     f"two persons, {here} and {there}; decide by hand: `rbv persons move "
                     f"{one} --to {there}` (they are one) or `rbv persons move {one} --to "
                     f"{here}` (they are not: the link goes).")
    for d in r.duplicate_names:
        lines.append(f"Name {d.name!r} is held by {len(d.persons)} persons "
                     f"({', '.join(str(p) for p in d.persons)}) in {pack(d.pack_id)}: merge "
                     "them (`rbv persons merge`) or rename one.")
    if r.missing_paths:
        lines.append(f"Missing files: {r.missing_paths:,} paths ({r.missing_images:,} photos "
                     "found at no other path); `rbv prune` removes them and their faces.")
        lines += [f"  {path}" for path in r.missing_listed]
        if r.missing_paths > len(r.missing_listed):
            lines.append(f"  ... and {r.missing_paths - len(r.missing_listed):,} more "
                         "(`rbv audit --json`)")
    for s in r.stale_claims:
        lines.append(f"Stale claim: image {s.image_id} ({pack(s.pack_id)}) held by dead worker "
                     f"{s.worker} since {s.claimed_at:%Y-%m-%d %H:%M}; --fix puts it back "
                     "in the queue.")
    for run in r.stale_runs:
        lines.append(f"Stale run: {run.command} (run {run.id}, pid {run.pid}) started "
                     f"{run.started_at:%Y-%m-%d %H:%M} is recorded as running but its "
                     "process is gone; --fix marks it interrupted.")
    if not r.findings:
        lines.append("No problems found.")
    else:
        lines.append(f"{counted(r.findings, 'finding')}.")
    if r.fixed:
        f = r.fixed
        lines.append(f"{'Would fix' if dry_run else 'Fixed'}: {f['runs_closed']:,} runs "
                     f"marked interrupted, {f['claims_released']:,} claims put back in the "
                     f"queue, {f['empty_persons_deleted']:,} empty unnamed persons deleted, "
                     f"{f['faces_unassigned']:,} faces unassigned from same-photo conflicts, "
                     f"{f['contradicting_unassigned']:,} from persons they were rejected "
                     "from or linked apart in" + ("; nothing was written." if dry_run else "."))
    return lines

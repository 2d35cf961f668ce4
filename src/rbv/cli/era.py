"""``rbv eras PERSON``: split a person into age eras by EXIF year."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer

from rbv.cli.common import DatabaseOption, JsonOption, help_from, library_of, print_json
from rbv.cluster.eras import Era, EraParams
from rbv.words import counted

_D = EraParams()


@help_from(_D)
def eras(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="Name, unique part of a name, uuid or uuid "
                                          "prefix (4+ chars).")],
    sub_cluster_similarity: Annotated[float, typer.Option(
        min=-1.0, max=1.0, help="Cosine similarity at which faces join a sub-cluster "
        "(average linkage).")] = _D.sub_cluster_similarity,
    anchor_min: Annotated[int, typer.Option(min=1, help="Faces a sub-cluster needs to "
                                            "anchor an era.")] = _D.anchor_min,
    attach_similarity: Annotated[float, typer.Option(
        min=-1.0, max=1.0, help="A fragment joins an era whose centroid is at least this "
        "similar to its own...")] = _D.attach_similarity,
    year_window: Annotated[int, typer.Option(min=0, help="...and whose dominant year is "
                                             "within this many years.")] = _D.year_window,
    apply: Annotated[bool, typer.Option("--apply", help="Split the person: each era after "
                                        "the largest becomes a new person named "
                                        "'NAME (YEAR–YEAR)'. Thin fragments stay.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Split one person into age eras using the photos' EXIF years.

    Sub-clusters at {sub_cluster_similarity} cosine similarity; those of ≥ {anchor_min}
    faces anchor eras; smaller fragments join the nearest era if its centroid's
    similarity is at least {attach_similarity} and its dominant year within
    ±{year_window}; the rest stay apart, marked thin. Years come from the catalogue's
    EXIF (read once at index time). Without --apply nothing is written.

    Examples:

        rbv eras "Ada Lovelace"

        rbv eras 3f2a9c --apply --json
    """
    from rbv.cli.naming import who

    lib = library_of(ctx, database)
    params = EraParams(sub_cluster_similarity=sub_cluster_similarity, anchor_min=anchor_min,
                       attach_similarity=attach_similarity, year_window=year_window)
    result = lib.split_eras(lib.find(person), params, apply=apply)
    pid, created = result.person, [str(p) for p in result.new_persons]
    face_ids = np.array(result.face_ids, np.int64)
    document = {"person": str(pid), "faces": len(result.face_ids), "faces_with_year":
                sum(y is not None for y in result.years), "applied": bool(created),
                "new_persons": created, "eras": [e.as_dict(face_ids) for e in result.eras]}
    if as_json:
        print_json(document)
        return
    whom, *new = who(lib, pid, *result.new_persons)
    for line in _lines(whom, result.eras, result.years):
        typer.echo(line)
    if apply:
        typer.echo(f"Created {counted(len(created), 'person')}: {', '.join(new)}." if created
                   else "Nothing to split: fewer than two anchored eras.")


def _lines(whom: str, eras: list[Era], years: list[float | None]) -> list[str]:
    """The eras in words. That photos carry no date is said once, not on every era (a
    library without EXIF years has dozens of one-face fragments): eras with a year are
    listed, undated thin fragments summed up in one line."""
    dated_faces, faces = sum(y is not None for y in years), len(years)
    head = (f"{whom[0].upper()}{whom[1:]}: {counted(faces, 'face')}, "
            f"{dated_faces or 'none'} with an EXIF year")
    lines = [head + ("." if dated_faces == faces else
                     f" (the photos of {faces - dated_faces} carry no date)." if dated_faces
                     else ".\nTheir photos carry no date, so eras are by look alone.")]
    undated_thin = []
    for e in eras:
        dated = sum(years[r] is not None for r in e.rows)
        if e.thin and not dated:
            undated_thin.append(len(e.rows))
            continue
        year = f", {_years(e, dated)}" if dated else ", no dated photo" if dated_faces else ""
        lines.append(f"  era {len(lines)}: {len(e.rows):>4} faces{year}"
                     f"{', thin' if e.thin else ''}")
    if undated_thin:
        least, most = min(undated_thin), max(undated_thin)
        lines.append(f"  {counted(len(undated_thin), 'thin fragment')}"
                     f"{' of undated photos' if dated_faces else ''}: "
                     f"{counted(sum(undated_thin), 'face')}, "
                     f"{least if least == most else f'{least}–{most}'} each.")
    return lines


def _years(era: Era, dated: int) -> str:
    """The era's years, and from how many of its faces when not all have one: "2019" of
    one dated face among nine read as if all nine were of 2019."""
    span = (f"{era.first_year}" if era.first_year == era.last_year
            else f"{era.first_year}–{era.last_year} (mostly {era.dominant_year})")
    return span if dated == len(era.rows) else f"only {dated} with a year: {span}"

"""``rbv eras PERSON``: split a person into age eras by EXIF year."""

from __future__ import annotations

from typing import Annotated

import numpy as np
import typer

from rbv.cli.common import DatabaseOption, JsonOption, print_json, settings_of
from rbv.cluster.editing import editing
from rbv.cluster.eras import EraParams, split_eras
from rbv.store import persons as store
from rbv.store.assignments import load_faces
from rbv.store.packs import PackRow

_D = EraParams()


def eras(
    ctx: typer.Context,
    person: Annotated[str, typer.Argument(help="uuid, uuid prefix (4+ chars) or name.")],
    sub_cluster: Annotated[float, typer.Option(min=0.0, max=2.0, help="Cosine distance of "
                                               "the sub-clusters.")] = _D.sub_cluster,
    anchor_min: Annotated[int, typer.Option(min=1, help="Faces a sub-cluster needs to "
                                            "anchor an era.")] = _D.anchor_min,
    attach: Annotated[float, typer.Option(min=0.0, max=2.0, help="A fragment joins an era "
                                          "whose centroid is this close...")] = _D.attach,
    year_window: Annotated[int, typer.Option(min=0, help="...and whose dominant year is "
                                             "within this many years.")] = _D.year_window,
    apply: Annotated[bool, typer.Option("--apply", help="Split the person: each era after "
                                        "the largest becomes a new person named "
                                        "'NAME (YEAR–YEAR)'. Thin fragments stay.")] = False,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Split one person into age eras using the photos' EXIF years.

    Sub-clusters at 0.35 cosine distance; those of ≥ 20 faces anchor eras; smaller
    fragments join the nearest era if its centroid is within 0.40 and its dominant
    year within ±5; the rest stay apart, marked thin. Years come from the catalogue's
    EXIF (read once at index time). Without --apply nothing is written.

    Examples:

        rbv eras "Ada Lovelace"

        rbv eras 3f2a9c --apply --json
    """
    from rbv.store import open_database

    db = open_database(settings_of(ctx, database_url=database))
    params = EraParams(sub_cluster=sub_cluster, anchor_min=anchor_min, attach=attach,
                       year_window=year_window)
    with editing(db, person) as (conn, pid):
        pack_id = store.pack_of(conn, pid)
        row = conn.execute("SELECT id, name, fingerprint, embedding_dim FROM model_packs "
                           "WHERE id = %s", (pack_id,)).fetchone()
        assert row is not None
        faces = load_faces(conn, PackRow(*row), person=pid)
        taken = dict(conn.execute(
            "SELECT f.id, extract(year FROM i.taken_at) FROM face_detections f "
            "JOIN images i ON i.id = f.image_id WHERE f.person_id = %s", (pid,)).fetchall())
        years = np.array([np.nan if taken.get(int(f)) is None else float(taken[int(f)])
                          for f in faces.ids.tolist()], np.float64)
        found = split_eras(faces.embeddings, years, faces.image_ids, params)
        name_row = conn.execute("SELECT name FROM person_names WHERE person_id = %s",
                                (pid,)).fetchone()
        created: list[str] = []
        anchored = [e for e in found if not e.thin]
        if apply and len(anchored) > 1:
            thin_rows = [r for e in found if e.thin for r in e.rows]
            groups = [[int(faces.ids[r]) for r in anchored[0].rows + thin_rows]]
            groups += [[int(faces.ids[r]) for r in e.rows] for e in anchored[1:]]
            new_ids = store.assign_split(conn, groups, pid, pack_id)
            for era, new in zip(anchored[1:], new_ids, strict=True):
                label = f"{era.first_year}–{era.last_year}" if era.first_year else "era"
                store.set_name(conn, new, f"{name_row[0] if name_row else 'person'} ({label})")
                created.append(str(new))
    document = {"person": str(pid), "faces": len(faces), "faces_with_year":
                int((~np.isnan(years)).sum()), "applied": bool(created),
                "new_persons": created, "eras": [e.as_dict(faces.ids) for e in found]}
    if as_json:
        print_json(document)
        return
    typer.echo(f"Person {pid}: {len(faces)} faces, {document['faces_with_year']} with an "
               "EXIF year.")
    for i, e in enumerate(found, 1):
        years_text = (f"{e.first_year}–{e.last_year} (mostly {e.dominant_year})"
                      if e.first_year else "no year")
        typer.echo(f"  era {i}: {len(e.rows):>4} faces, {years_text}"
                   f"{', thin' if e.thin else ''}")
    if apply:
        typer.echo(f"Created {len(created)} person(s)." if created
                   else "Nothing to split: fewer than two anchored eras.")

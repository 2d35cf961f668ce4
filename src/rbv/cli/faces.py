"""``rbv faces same|different``: tell rbv which faces are (not) one person;
``rbv faces not-a-face|is-a-face|not-faces``: detections that are no face;
``rbv faces add``: a face the detector missed, drawn by hand."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from rbv.bounds import BIGINT_MAX
from rbv.cli import forecasts
from rbv.cli.common import (
    DatabaseOption,
    JsonOption,
    ModelPackOption,
    command_group,
    library_of,
    print_json,
    say,
)
from rbv.cli.tables import print_table
from rbv.errors import ConfigError, printable
from rbv.words import counted

app = command_group(help="Link faces as one person or as different persons (every "
                        "clustering keeps the links), mark a detection not a face, or add a "
                        "face the detector missed. Undo with `rbv persons undo`.")

FacesArg = Annotated[list[int], typer.Argument(
    metavar="FACE", help="Two or more face ids (see `rbv persons show`).", min=1,
    max=BIGINT_MAX, show_default=False)]
DryRunOption = Annotated[bool, typer.Option("--dry-run", help="Say what the link would "
                                            "change; change nothing.")]
ForecastOption = Annotated[bool | None, typer.Option(
    "--forecast/--no-forecast", help="Say what the next `rbv cluster --full` will change, "
    "person by person, by running it after the link and rolling it back, and again "
    "without the link to tell what the link changes from what the run changes anyway (as "
    "long as those two runs take). Default: with --dry-run only.", show_default=False)]


def _link(ctx: typer.Context, faces: list[int], same: bool, dry_run: bool,
          forecast: bool | None, database: str | None, as_json: bool,
          override: bool = False) -> None:
    lib = library_of(ctx, database)
    forecast = dry_run if forecast is None else forecast
    result = (lib.same(faces, override=override, dry_run=dry_run, forecast=forecast) if same
              else lib.different(faces, dry_run=dry_run, forecast=forecast))
    if as_json:
        shown = result.as_dict()
        if result.forecast is not None:
            shown["forecast"] = forecasts.as_json(result.forecast)
        print_json({**shown, "dry_run": dry_run})
        return
    kind = "one person" if same else "different persons"
    if dry_run:
        typer.echo(f"Would link faces {', '.join(map(str, faces))} as {kind}. Dry run: "
                   "nothing was changed.")
    elif result.added:
        typer.echo(f"Linked faces {', '.join(map(str, faces))} as {kind} "
                   f"(edit #{result.edit_id}; `rbv persons undo` removes it).")
    else:
        typer.echo(f"Faces {', '.join(map(str, faces))} were linked as {kind} already.")
    say(result.effect[0].upper() + result.effect[1:] + ".")
    if result.caution:
        say(f"Look first: {result.caution}.")
    if result.overrides:
        say(("It would override " if dry_run else "This overrides ") + result.overrides
             + (": they would be removed." if dry_run else
                ": removed (`rbv persons undo` puts them back)."))
    if result.forecast is not None:
        for line in forecasts.lines(result.forecast, edit="the link"):
            typer.echo(line)


@app.command("same")
def same(ctx: typer.Context, faces: FacesArg,
         override: Annotated[bool, typer.Option(
             "--override", help="Link them even against earlier 'different' links or a "
             "rejection (not-this-person) of one from a person another was put in by "
             "hand; those are removed, and said.")] = False,
         dry_run: DryRunOption = False, forecast: ForecastOption = None,
         database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Link faces as one person, in every clustering.

    Every `rbv cluster` (any method, full or incremental) keeps them together.
    Faces without a person follow at the next `rbv cluster`, assigned ones at
    `rbv cluster --full`. With --dry-run (or --forecast) the output says what
    that full run will change, person by person, the link's own changes first
    and apart: it runs it with and without the link and rolls all back. A face
    far smaller than the other (a bystander's?) is pointed out.
    Refused for two faces of one photo, or faces placed by hand in different
    persons; and, unless --override, for faces linked `different`, or a face
    rejected (`persons not-this-person`) from a person another of them was
    put in by hand.

    Example:

        rbv faces same 1201 3307 --dry-run
    """
    _link(ctx, faces, True, dry_run, forecast, database, as_json, override)


@app.command("different")
def different(ctx: typer.Context, faces: FacesArg, dry_run: DryRunOption = False,
              forecast: ForecastOption = None,
              database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Link faces as different persons, in every clustering.

    No `rbv cluster` puts two of them (any pair of those named) in one person.
    Faces now in one person are put apart at `rbv cluster --full`; with
    --dry-run (or --forecast) the output says what that full run will change,
    person by person: it runs it after the link and rolls both back. Refused
    for faces linked `same`, or placed by hand in one person.

    Example:

        rbv faces different 1201 1202
    """
    _link(ctx, faces, False, dry_run, forecast, database, as_json)


MarkFacesArg = Annotated[list[int], typer.Argument(
    metavar="FACE", help="One or more face ids (see `rbv persons show`, or a photo's page "
    "in `rbv serve`).", min=1, max=BIGINT_MAX, show_default=False)]


@app.command("not-a-face")
def not_a_face(ctx: typer.Context, faces: MarkFacesArg,
               dry_run: Annotated[bool, typer.Option(
                   "--dry-run", help="Say what marking would change; change nothing.")]
               = False,
               model_pack: ModelPackOption = None, database: DatabaseOption = None,
               as_json: JsonOption = False) -> None:
    """Mark detections that are no face (a poster, a statue, a pattern).

    Each leaves its person and every clustering: no `rbv cluster` (any method,
    full or incremental) gives it a person again, suggestions and review never
    show it, and export-xmp, immich-push, refine and export-swap skip it. The
    decisions about it are dropped, each said: its rejections from persons
    (`persons not-this-person`) and its 'same' and 'different' links (nobody is
    the same as, or other than, anyone). A pixel edit's carry gives the mark to
    the same detection in the new content. `rbv persons undo` puts it all back;
    `rbv faces is-a-face` takes the mark back alone. Faces marked already are
    said, not refused; an unknown face id changes nothing.

    Example:

        rbv faces not-a-face 4711 4712 --dry-run
    """
    from rbv.jobs.persons.not_faces import person_words

    result = library_of(ctx, database).not_a_face(faces, model_pack=model_pack,
                                                  dry_run=dry_run)
    if as_json:
        print_json({**result.as_dict(), "dry_run": dry_run})
        return
    ids = ", ".join(map(str, result.changed))
    if result.changed:
        typer.echo(f"{'Would mark' if dry_run else 'Marked'} face{_s(result.changed)} {ids} "
                   "not a face" + (". Dry run: nothing was changed." if dry_run else
                                   f" (edit #{result.edit_id}; `rbv persons undo` takes it "
                                   "back)."))
    for face, person, name in result.left:
        typer.echo(f"Face {face} {'would leave' if dry_run else 'left'} "
                   f"{person_words(person, name)}.")
    if result.dropped:
        say(("It would drop " if dry_run else "Dropped ") + result.dropped
             + (": a face that is no face holds no decision." if dry_run else
                " (`rbv persons undo` puts them back)."))
    if result.already:
        typer.echo(f"Face{_s(result.already)} {', '.join(map(str, result.already))} "
                   f"{'were' if len(result.already) > 1 else 'was'} marked not a face "
                   "already.")


@app.command("is-a-face")
def is_a_face(ctx: typer.Context, faces: MarkFacesArg,
              dry_run: Annotated[bool, typer.Option(
                  "--dry-run", help="Say which marks would go; change nothing.")] = False,
              model_pack: ModelPackOption = None, database: DatabaseOption = None,
              as_json: JsonOption = False) -> None:
    """Take back a "not a face" mark: the faces are faces again.

    They wait, with no person, for the next `rbv cluster`, which places them as
    any new face. The decisions `not-a-face` dropped stay dropped (`rbv persons
    undo` of that edit puts them back instead). A logged edit; once a clustering
    run has given such a face a person, `rbv persons undo` of it is refused (the
    mark would sit on a face in a person): mark it again with `rbv faces
    not-a-face`.

    Example:

        rbv faces is-a-face 4712
    """
    result = library_of(ctx, database).is_a_face(faces, model_pack=model_pack,
                                                 dry_run=dry_run)
    if as_json:
        print_json({**result.as_dict(), "dry_run": dry_run})
        return
    if result.changed:
        ids = ", ".join(map(str, result.changed))
        typer.echo(f"{'Would take' if dry_run else 'Took'} back the mark of face"
                   f"{_s(result.changed)} {ids}" + (
                       ". Dry run: nothing was changed." if dry_run else
                       f" (edit #{result.edit_id}); the next `rbv cluster` places "
                       f"{'them' if len(result.changed) > 1 else 'it'}."))
    if result.already:
        typer.echo(f"Face{_s(result.already)} {', '.join(map(str, result.already))} "
                   f"{'were' if len(result.already) > 1 else 'was'} not marked.")


@app.command("not-faces")
def not_faces(ctx: typer.Context, model_pack: ModelPackOption = None,
              database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """List the faces marked not a face, newest mark first.

    Example:

        rbv faces not-faces --json
    """
    rows = library_of(ctx, database).not_faces(model_pack=model_pack)
    if as_json:
        print_json({"not_faces": [r.as_dict() for r in rows]})
        return
    if not rows:
        typer.echo("No face is marked not a face.")
        return
    # a table whose photo column folds: a tab-separated line per face ran past 80 columns
    table = Table("face", "marked", "photo", "box",
                  title=f"{counted(len(rows), 'face')} marked not a face")
    for r in rows:
        table.add_row(str(r.id), f"{r.marked_at:%Y-%m-%d %H:%M}",
                      printable(r.path) if r.path else f"photo {r.image_id}",
                      ",".join(f"{v:.0f}" for v in r.bbox))
    print_table(table, optional=["box", "marked"], whole=["face"])
    typer.echo("To take a mark back: rbv faces is-a-face FACE")


def _s(items: list[int]) -> str:
    return "s" if len(items) > 1 else ""


@app.command("add")
def add(ctx: typer.Context,
        photo: Annotated[str, typer.Argument(help="The photo, by its path (as indexed; "
                                             "a symlink to it will do).",
                                             show_default=False)],
        box: Annotated[str, typer.Option("--box", help="X,Y,W,H: the face's box in pixels "
                                         "of the photo as shown (upright, after its EXIF "
                                         "orientation), from its top-left corner.",
                                         show_default=False)],
        person: Annotated[str | None, typer.Option(
            "--person", help="Put the face in this person by hand (kept by every "
            "re-cluster). Default: the next `rbv cluster` places it like any face.",
            show_default=False)] = None,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be added; "
                                              "change nothing.")] = False,
        model_pack: ModelPackOption = None,
        database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Add a face the detector missed, drawn by hand as a box.

    The face is aligned and embedded with the library's model pack: its
    landmarks come from the pack's detector run again inside the box (and a
    margin around it) when it finds a face there, else from the box itself;
    the line says which. It is a face like any other from then on (persons,
    pages, contact sheets, export-xmp, immich-push), kept by every automatic
    run; after a pixel edit the carry draws it again at its place in the new
    content, or says it is gone. Refused: a box outside the photo or under
    16×16 pixels, a photo not indexed (scanned) yet, a box that is mostly a
    face found already (move that one instead), a person that has a face of
    the photo already. Undo with `rbv persons undo`.

    Examples:

        rbv faces add ~/beach.jpg --box 412,188,96,110 --person "Ada Lovelace"

        rbv faces add ~/beach.jpg --box 40,60,48,52 --dry-run --json
    """
    shape = parse_box(box)
    lib = library_of(ctx, database, model_pack=model_pack)
    done = lib.add_face(photo, shape, person=None if person is None else lib.find(person),
                        dry_run=dry_run)
    if as_json:
        print_json({**done.as_dict(), "dry_run": dry_run})
        return
    how = ("landmarks from the detector run inside the box" if done.drawn == "detector"
           else "landmarks placed from the box (the detector found no face in it)")
    x, y, w, h = done.box
    into = (f" in {done.person_name!r}" if done.person_name
            else f" in person {done.person}" if done.person else "")
    if dry_run:
        say(f"Would add a face at {x},{y} {w}×{h}{into} ({how}). Dry run: nothing was "
            "changed.")
        return
    later = "" if done.person else "; the next `rbv cluster` places it"
    say(f"Added face {done.face_id}{into} ({how}){later} (edit #{done.edit_id}; "
        "`rbv persons undo` removes it).")


Corner = Annotated[int, typer.Argument(min=0, max=1_000_000, show_default=False)]


@app.command("box")
def box(ctx: typer.Context,
        face: Annotated[int, typer.Argument(help="The face (see `rbv persons show`).",
                                            min=1, max=BIGINT_MAX, show_default=False)],
        x1: Corner, y1: Corner, x2: Corner, y2: Corner,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would change; "
                                              "change nothing.")] = False,
        database: DatabaseOption = None, as_json: JsonOption = False) -> None:
    """Move or resize a face's box: X1 Y1 (its top-left corner) and X2 Y2 (its
    bottom-right one) in pixels of the photo as shown (upright, after its EXIF
    orientation).

    The face keeps its id, its person and every decision about it; it is
    aligned and embedded again at the new box (as `rbv faces add` embeds a
    face drawn by hand), and the box is yours from then on: no automatic run
    replaces it (after a pixel edit it is carried as a face drawn by hand is).
    Refused: a box outside the photo or under 16×16 pixels, a box that is
    mostly another face of the photo, a face marked not a face. `rbv persons
    undo` puts the old box back.

    Example:

        rbv faces box 1207 400 180 520 330
    """
    lib = library_of(ctx, database)
    done = lib.move_box(face, (x1, y1, x2, y2), dry_run=dry_run)
    if as_json:
        print_json({**done.as_dict(), "dry_run": dry_run})
        return
    how = ("landmarks from the detector run inside the box" if done.drawn == "detector"
           else "landmarks placed from the box (the detector found no face in it)")
    was = ",".join(str(round(v)) for v in done.before)
    if dry_run:
        say(f"Would move the box of face {face} from {was} to {x1},{y1},{x2},{y2} ({how}). "
            "Dry run: nothing was changed.")
        return
    if done.edit_id is None:
        say(f"The box of face {face} is at {x1},{y1},{x2},{y2} already; nothing changed.")
        return
    say(f"Moved the box of face {face} from {was} to {x1},{y1},{x2},{y2} ({how}); it keeps "
        f"its person (edit #{done.edit_id}; `rbv persons undo` puts the old box back).")


def parse_box(text: str) -> tuple[int, int, int, int]:
    """``X,Y,W,H`` in whole pixels."""
    parts = [p.strip() for p in text.split(",")]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise ConfigError(f"--box {printable(text)!r}: give X,Y,W,H in whole pixels of the "
                          "photo as shown (e.g. --box 120,80,64,64)")
    x, y, w, h = values
    return x, y, w, h

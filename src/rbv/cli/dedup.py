"""``rbv dedup``: byte-identical copies and visual near-duplicates."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from rbv.cli.common import DatabaseOption, JsonOption, ModelPackOption, library_of, print_json
from rbv.cli.tables import print_table
from rbv.jobs.library.dedup import DedupParams

_D = DedupParams()


def dedup(
    ctx: typer.Context,
    strong_bits: Annotated[int, typer.Option(min=0, max=64, help="Photos whose perceptual "
                                             "hashes differ in at most this many of 64 bits "
                                             "are candidate near-duplicates...")] = _D.strong_bits,
    face_similarity: Annotated[float, typer.Option(min=0.0, max=1.0, help="...or share a face "
                                                   "this similar (cosine) and...")
                               ] = _D.face_similarity,
    min_correlation: Annotated[float, typer.Option(min=0.0, max=1.0, help="...line up, "
                                                   "aligned on that face, with this pixel "
                                                   "correlation.")] = _D.min_correlation,
    min_matches: Annotated[int, typer.Option(min=4, max=500, help="...either way confirmed "
                                             "when this many keypoints of the two pictures "
                                             "(plain borders cut off) match where one "
                                             "resize-crop-shift puts them, spread over the "
                                             "picture, or by the face alignment above.")
                           ] = _D.min_matches,
    model_pack: ModelPackOption = None,
    database: DatabaseOption = None,
    as_json: JsonOption = False,
) -> None:
    """Report byte-identical files and visually near-duplicate photos.

    Byte-identical: one content (sha256) found under several paths. Near-duplicates:
    re-encodes, resizes and small crops of one photo, found by a 64-bit perceptual hash
    (pHash) or a shared face, and confirmed by matching keypoints of the two pictures
    (a plain border cut off) or by the shared face's alignment lining up the whole
    photos pixel by pixel; in a group every two photos are confirmed.
    Different photos of one person are not grouped. Hashes are computed once per photo
    and stored (table image_hashes); nothing else is written, no file is touched.

    Examples:

        rbv dedup

        rbv dedup --json > duplicates.json
    """
    lib = library_of(ctx, database, model_pack=model_pack)
    console = Console(stderr=True)
    params = DedupParams(strong_bits=strong_bits, face_similarity=face_similarity,
                         min_correlation=min_correlation, min_matches=min_matches)
    with Progress(console=console, disable=as_json or not console.is_terminal) as bar:
        task = bar.add_task("hashing", total=None)
        report = lib.dedup(params, advance=lambda n: bar.advance(task, n))
    for failure in report.failed:
        typer.echo(f"Error: {failure}", err=True)
    if as_json:
        print_json(report.as_dict())
        return
    # a group kind with none is one line, not an empty table under "0 … groups"
    out = Console(highlight=False)
    if report.exact:
        exact = Table("sha256", "paths", title=f"{len(report.exact):,} byte-identical groups")
        for g in report.exact:
            exact.add_row(g.sha256[:12], "\n".join(g.paths))
        print_table(exact, whole=["sha256"], console=out)
    else:
        out.print("No byte-identical files: no content is found under two paths.")
    among = f"among {report.images:,} photos"
    if report.near:
        near = Table("group", "photos", "max bits", "by face",
                     title=f"{len(report.near):,} near-duplicate groups {among}")
        for i, n in enumerate(report.near, 1):
            near.add_row(str(i), "\n".join(n.paths), str(n.max_bits),
                         "yes" if n.by_face else "")
        print_table(near, console=out)
    else:
        out.print(f"No near-duplicate photos {among}.")

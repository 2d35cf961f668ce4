"""Whether a face's tile shows the face that is meant, before and after the tile rule of
issue 50 (:func:`rbv.pictures.pixels.face_tile`), over every face of an indexed library.

    uv run python scripts/bench/tile_centres.py --data /tmp/rbv-review-effort-family-974bccfaa3
    uv run python scripts/bench/tile_centres.py --data /tmp/rbv-review-effort-faces-ec44306b3e \\
        --folder ../shared/data/faces --json

``--data`` is a data folder already indexed with ``--pack`` (``scripts/bench/review_effort.py``
leaves one per labelled set under /tmp); it is only read (no migration, no write).
``--folder`` keeps the faces of photos under it. Pure geometry, no photo is decoded:
per face, the square of the photo its tile shows (original pixels, from the face boxes
and the photo's size in the database), before (``square_window``: side capped at the
photo's short edge, moved to lie inside the photo) and after (``tile_window``: centred
on the face, grey beyond the photo), at the tiles' padding
(``rbv.pictures.pixels.FACE_PAD``).
Printed per rule, over the faces that share their photo with another face:

- ``centre on another``: the tile's centre lies in another face's box;
- ``other as large``: another face's box shows in the tile with at least as much area
  as the meant face's box;
- ``off centre``: the meant face's centre is more than 2 % of the tile's side from the
  tile's centre;
- ``outlined`` (after only): tiles where another face shows, so the meant face's box is
  drawn (``tile_marked``);
- ``tightened`` (after only): tiles drawn tighter than the padding so that a larger
  face beside the meant one shows less.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path

from rbv.config import Settings
from rbv.jobs.grouping.eval import faces_under
from rbv.pictures.pixels import FACE_PAD, Box, square_window, tile_marked, tile_window
from rbv.store import open_database
from rbv.store.queries.assignments import faces_with_paths
from rbv.store.queries.pack_lookup import find_pack


@dataclass
class Counts:
    faces: int = 0  # faces sharing their photo with another face
    centre_on_another: int = 0
    other_as_large: int = 0
    off_centre: int = 0
    outlined: int = 0
    tightened: int = 0


def visible(box: Box, window: Box) -> float:
    """The area of ``box`` inside ``window``."""
    return max(0.0, min(box[2], window[2]) - max(box[0], window[0])) * max(
        0.0, min(box[3], window[3]) - max(box[1], window[1]))


def judge(counts: Counts, box: Box, others: list[Box], window: Box) -> None:
    side = window[2] - window[0]
    cx, cy = (window[0] + window[2]) / 2.0, (window[1] + window[3]) / 2.0
    counts.faces += 1
    counts.centre_on_another += any(o[0] <= cx <= o[2] and o[1] <= cy <= o[3]
                                    for o in others)
    counts.other_as_large += any(visible(o, window) >= visible(box, window) for o in others)
    counts.off_centre += max(abs((box[0] + box[2]) / 2.0 - cx),
                             abs((box[1] + box[3]) / 2.0 - cy)) > 0.02 * side


def measure(data: Path, pack_name: str, folder: Path | None) -> dict[str, Counts]:
    db = open_database(Settings(data_dir=data, model_pack=pack_name), require_schema=False)
    with db.connect() as conn:
        places = faces_with_paths(conn, find_pack(conn, pack_name))
    if folder is not None:
        inside = faces_under(places, folder)
        places = [p for p in places if p.face_id in inside]
    photos: dict[str, dict[int, Box]] = defaultdict(dict)
    sizes: dict[str, tuple[float, float]] = {}
    for p in places:
        photos[p.path][p.face_id] = p.box
        sizes[p.path] = (float(p.width or "inf"), float(p.height or "inf"))
    before, after, seen = Counts(), Counts(), set()
    for path, faces in photos.items():
        width, height = sizes[path]
        for face, box in faces.items():
            others = [b for f, b in faces.items() if f != face]
            if face in seen or not others:
                continue
            seen.add(face)  # a photo with two paths holds its faces once
            judge(before, box, others, square_window(box, FACE_PAD, width, height))
            judge(after, box, others, tile_window(box, FACE_PAD, others))
            after.outlined += tile_marked(box, FACE_PAD, others)
            window = tile_window(box, FACE_PAD, others)
            after.tightened += window[2] - window[0] < (1 + 2 * FACE_PAD) * max(
                box[2] - box[0], box[3] - box[1]) - 1e-6
    return {"before": before, "after": after, "faces": Counts(faces=len(
        {p.face_id for p in places}))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True,
                        help="an indexed data folder (read only)")
    parser.add_argument("--pack", default="scrfd_sface")
    parser.add_argument("--folder", type=Path, help="only photos under this folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = measure(args.data, args.pack, args.folder)
    if args.json:
        print(json.dumps({k: asdict(v) for k, v in result.items()}, indent=2))
        return
    shared = result["before"].faces
    print(f"{result['faces'].faces} faces, {shared} sharing their photo with another face")
    print(f"{'rule':<8} {'centre on another':>18} {'other as large':>15} {'off centre':>11} "
          f"{'outlined':>9} {'tightened':>10}")
    for name in ("before", "after"):
        c = result[name]
        outlined, tightened = (str(c.outlined), str(c.tightened)) if name == "after" \
            else ("-", "-")
        print(f"{name:<8} {c.centre_on_another:>18} {c.other_as_large:>15} "
              f"{c.off_centre:>11} {outlined:>9} {tightened:>10}")


if __name__ == "__main__":
    main()

"""How well an edited photo's faces are found again (issue 29: carrying decisions).

For the first photos of each identity in ``data/faces``: the photo is edited (a crop
that shifts the frame, a retouch, a resize to half) or replaced (by a photo of another
identity; by another photo of the same identity), its faces detected and embedded again
with the pack, and the old faces matched to the new ones by
:func:`rbv.faces.correspondence.match_faces` (the same place and the same person) at the
pack's carry similarity. Printed per case: how often the main face is found again, how
often it goes to a face of another person, and the similarity of the same face after
the edit; against the baseline of the embedding alone (the most alike new face above the
same similarity, no geometry).

    uv run python scripts/bench/bench_face_carry.py --per-identity 3
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageOps

from rbv.faces.analyzer import load_analyzer
from rbv.faces.correspondence import PhotoFaces, match_faces
from rbv.faces.types import Face
from rbv.jobs.library.carry import carry_similarity
from rbv.media.decode import decode_for_detection
from rbv.media.sniff import sniff_format

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def _photo(faces: list[Face], size: tuple[int, int]) -> PhotoFaces:
    boxes = np.array([f.bbox for f in faces], np.float64).reshape(-1, 4)
    marks = (np.array([f.landmarks for f in faces], np.float64).reshape(-1, 5, 2)
             if faces and all(f.landmarks is not None for f in faces) else None)
    embeddings = (np.array([f.embedding for f in faces], np.float32) if faces
                  else np.zeros((0, 0), np.float32))
    return PhotoFaces(size, boxes, marks, embeddings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--faces", type=Path, default=SHARED / "data" / "faces")
    parser.add_argument("--pack", type=Path, default=SHARED / "models" / "scrfd_sface")
    parser.add_argument("--per-identity", type=int, default=3)
    args = parser.parse_args()
    analyzer = load_analyzer(str(args.pack), device="cpu")
    threshold = carry_similarity({}, analyzer.pack.files)
    work = Path(tempfile.mkdtemp(prefix="rbv-carry-"))

    def analyze(path: Path) -> tuple[list[Face], tuple[int, int]]:
        fmt = sniff_format(path.read_bytes()[:64]) or "JPEG"
        image = decode_for_detection(path, fmt, image_id=0, long_edge=analyzer.decode_long_edge,
                                     max_pixels=10**9)
        with Image.open(path) as im:
            size = ImageOps.exif_transpose(im).size  # faces are in the upright picture
        return analyzer.analyze(image).faces, size

    photos = [sorted(p for p in d.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
              [:args.per_identity] for d in sorted(args.faces.iterdir()) if d.is_dir()]
    photos = [p for p in photos if p]
    edits: dict[str, Callable[[Image.Image, tuple[float, ...]], Image.Image]] = {
        "crop (frame shifted)": lambda im, b: im.crop(
            (int(b[0] * 0.5), int(b[1] * 0.5), im.width, im.height)),
        "retouch (brightness 1.3)": lambda im, b: ImageEnhance.Brightness(im).enhance(1.3),
        "resize to half": lambda im, b: im.resize((im.width // 2, im.height // 2)),
    }
    rows: dict[str, list[tuple[bool, bool, float | None]]] = {}
    for n, paths in enumerate(photos):
        stranger = photos[(n + 1) % len(photos)][0]
        for i, path in enumerate(paths):
            faces, size = analyze(path)
            if not faces:
                continue
            main_face = max(range(len(faces)), key=lambda k: (faces[k].bbox[2] - faces[k].bbox[0])
                            * (faces[k].bbox[3] - faces[k].bbox[1]))
            old = _photo(faces, size)
            cases: dict[str, tuple[Path, bool]] = {}
            with Image.open(path) as im:
                rgb = ImageOps.exif_transpose(im).convert("RGB")
                for label, edit in edits.items():
                    out = work / f"{label[:4]}.jpg"
                    edit(rgb, faces[main_face].bbox).save(out, quality=90)
                    cases[label] = (out, True)
            cases["another person's photo"] = (stranger, False)
            if len(paths) > 1:
                cases["another photo, same person"] = (paths[(i + 1) % len(paths)], False)
            for label, (edited, same) in cases.items():
                new_faces, new_size = analyze(edited)
                new = _photo(new_faces, new_size)
                pairs = {a: b for a, b, _ in match_faces(old, new, threshold)}
                sims = (new.embeddings @ old.embeddings[main_face]) if new_faces else np.zeros(0)
                alone = int(np.argmax(sims)) if len(sims) and sims.max() >= threshold else None
                rows.setdefault(label, []).append(
                    (main_face in pairs, alone is not None,
                     float(sims.max()) if same and len(sims) else None))
    print(f"pack {analyzer.pack.name}, carry similarity {threshold:.3f}")
    print(f"{'case':28s} {'photos':>6s} {'carried':>8s} {'embedding alone':>16s} "
          f"{'ratio':>6s} {'sim p5':>7s} {'sim median':>10s}")
    for label, results in rows.items():
        carried = sum(r[0] for r in results)
        alone = sum(r[1] for r in results)
        sims = [r[2] for r in results if r[2] is not None]
        p5 = f"{np.quantile(sims, 0.05):.3f}" if sims else "-"
        median = f"{np.median(sims):.3f}" if sims else "-"
        ratio = f"{carried / alone:.2f}" if alone else "-"
        print(f"{label:28s} {len(results):6d} {carried:8d} {alone:16d} {ratio:>6s} "
              f"{p5:>7s} {median:>10s}")


if __name__ == "__main__":
    main()

"""Decoders for `rbv embed` (#11): time and faces of each candidate against Pillow's.

Every image of ``--images`` (default ``../shared/data/faces``) is decoded for detection
by each candidate at the analyzer's ``decode_long_edge`` (or ``--long-edge``), best of
``--repeat`` rounds, then analysed with ``--pack``. A candidate keeps the faces when every
image has the same face count as with the baseline and every matched face (same
order: the detector ranks by score) has cosine ≥ 0.999 to the baseline's embedding.

    uv run python scripts/bench_decode.py [--limit 200] [--repeat 3] [--long-edge 640]

Prints one line per decoder: total decode seconds, ms per image, the ratio against the
baseline (Pillow for every format, what ``decode_for_detection`` did before it used
OpenCV for JPEGs), face-count mismatches and the lowest cosine; then the peak RSS.
"""

from __future__ import annotations

import argparse
import math
import resource
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageOps

from rbv.faces.analyzer import load_analyzer
from rbv.media.decode import decode_for_detection, to_rgb
from rbv.media.sniff import sniff_format
from rbv.media.types import DecodedImage

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MAX_PIXELS = 200_000_000
Decoder = Callable[[Path, str, int], DecodedImage]


def rbv_now(path: Path, fmt: str, long_edge: int) -> DecodedImage:
    """rbv's decode_for_detection: OpenCV for RGB/greyscale JPEGs, Pillow otherwise."""
    return decode_for_detection(path, fmt, image_id=0, long_edge=long_edge,
                                max_pixels=MAX_PIXELS)


def pillow(path: Path, fmt: str, long_edge: int, *, reduce: bool = True) -> DecodedImage:
    """Pillow for everything, as decode_for_detection did before OpenCV: JPEG draft
    mode (DCT scaling to ≥ long_edge), EXIF transpose, integer box reduction."""
    with Image.open(path) as im:
        raw = im.size
        if fmt == "JPEG" and max(raw) > long_edge:
            ratio = long_edge / max(raw)
            im.draft("RGB", (math.ceil(raw[0] * ratio), math.ceil(raw[1] * ratio)))
        im.load()
        upright = ImageOps.exif_transpose(im) or im
        factor = max(upright.size) // long_edge
        if reduce and factor >= 2:
            upright = upright.reduce(factor)
        rgb = to_rgb(upright)
        swapped = upright.size != im.size and upright.size == (im.size[1], im.size[0])
    original = (raw[1], raw[0]) if swapped else raw
    return DecodedImage(0, path, rgb, max(original) / max(rgb.shape[:2]), original)


def pillow_draft_only(path: Path, fmt: str, long_edge: int) -> DecodedImage:
    """Pillow, JPEG draft mode, no integer reduction afterwards."""
    return pillow(path, fmt, long_edge, reduce=False)


DECODERS: dict[str, Decoder] = {
    "Pillow draft + reduce (before; baseline)": pillow,
    "Pillow draft, no reduce": pillow_draft_only,
    "rbv now: OpenCV IMREAD_REDUCED_* for JPEG": rbv_now,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", default=str(SHARED / "data" / "faces"))
    parser.add_argument("--pack", default=str(SHARED / "models" / "scrfd_sface"))
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--long-edge", type=int, default=0,
                        help="decode long edge (default: the analyzer's decode_long_edge)")
    args = parser.parse_args()
    analyzer = load_analyzer(args.pack)
    long_edge = args.long_edge or analyzer.decode_long_edge
    inputs: list[tuple[Path, str]] = []
    for path in sorted(Path(args.images).rglob("*")):
        if path.is_file():
            with path.open("rb") as f:
                fmt = sniff_format(f.read(64))
            if fmt:
                inputs.append((path, fmt))
    inputs = inputs[:args.limit]
    print(f"{len(inputs)} images, decode long edge {long_edge}, pack {Path(args.pack).name}")
    seconds: dict[str, float] = {}
    decoded: dict[str, list[DecodedImage]] = {}
    for _ in range(args.repeat):  # interleaved rounds, best of each
        for name, decoder in DECODERS.items():
            started = time.perf_counter()
            out = [decoder(path, fmt, long_edge) for path, fmt in inputs]
            took = time.perf_counter() - started
            seconds[name] = min(seconds.get(name, math.inf), took)
            decoded[name] = out
    faces = {name: analyzer.analyze_many(images) for name, images in decoded.items()}
    base_name = next(iter(DECODERS))
    base = faces[base_name]
    for name in DECODERS:
        counts = sum(len(a.faces) != len(b.faces) for a, b in zip(base, faces[name],
                                                                   strict=True))
        cosines = [float(fa.embedding @ fb.embedding)
                   for a, b in zip(base, faces[name], strict=True)
                   if len(a.faces) == len(b.faces)
                   for fa, fb in zip(a.faces, b.faces, strict=True)]
        print(f"{name:<42} {seconds[name]:6.2f} s {1000 * seconds[name] / len(inputs):6.1f} "
              f"ms/image  ratio baseline/this {seconds[base_name] / seconds[name]:5.2f}x  "
              f"faces {sum(len(r.faces) for r in faces[name])}, images with another count "
              f"{counts}, min cosine {min(cosines, default=1.0):.4f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


if __name__ == "__main__":
    main()

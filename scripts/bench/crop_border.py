"""How much of export-swap's square face crops is black border, on real small faces.

Every face the pack detects in ``data/faces`` whose short edge is within
``--min-short``..``--max-short`` px is cropped as export-swap crops it (pad 0.5, 512 px)
with rbv's ``square_crop`` and with the baseline: the square of (1 + 2·pad) × the face's
long edge centred on the face, black outside the photo (rbv's crop before #12 item 11).
Prints the mean and worst fraction of pure-black pixels of each (a photo's own black
background counts too: the worst rbv crops are of photos that are 24-46 % black
themselves), and their ratio.

    uv run python scripts/bench/crop_border.py
    uv run python scripts/bench/crop_border.py --shared /path/to/shared --max-short 120
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
from numpy.typing import NDArray

from rbv.errors import ImageUnreadable
from rbv.faces.analyzer import load_analyzer
from rbv.media.decode import decode_for_detection
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.media.types import DecodedImage
from rbv.pictures.pixels import square_crop

PAD, SIZE = 0.5, 512


def centred_crop(image: DecodedImage, box: tuple[float, float, float, float]
                 ) -> NDArray[np.uint8]:
    """The baseline: centred on the face, black beyond the photo."""
    x1, y1, x2, y2 = (v / image.scale for v in box)
    side = max(x2 - x1, y2 - y1) * (1.0 + 2.0 * PAD)
    cx, cy = (x1 + x2) / 2.0, (y1 + y2) / 2.0
    k = SIZE / side
    matrix = np.array([[k, 0.0, SIZE / 2.0 - k * cx], [0.0, k, SIZE / 2.0 - k * cy]])
    return np.asarray(cv2.warpAffine(image.rgb, matrix, (SIZE, SIZE),
                                     flags=cv2.INTER_CUBIC), np.uint8)


def black(crop: NDArray[np.uint8]) -> float:
    return float((crop.max(axis=2) <= 2).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shared", type=Path,
                        default=Path(__file__).resolve().parents[2].parent / "shared")
    parser.add_argument("--min-short", type=float, default=60.0)
    parser.add_argument("--max-short", type=float, default=100.0)
    args = parser.parse_args()
    analyzer = load_analyzer(str(args.shared / "models" / "scrfd_sface"), device="cpu")
    ours: list[float] = []
    base: list[float] = []
    for path in sorted((args.shared / "data" / "faces").glob("*/*")):
        try:
            image = decode_for_detection(path, "JPEG", image_id=0, long_edge=0,
                                         max_pixels=DEFAULT_MAX_IMAGE_PIXELS)
        except ImageUnreadable:
            continue
        for b in analyzer.detector.detect(image.rgb, 0.5).boxes:
            box = tuple(float(v) * image.scale for v in b)
            if args.min_short <= min(box[2] - box[0], box[3] - box[1]) <= args.max_short:
                ours.append(black(square_crop(image, box, PAD, SIZE)))  # type: ignore[arg-type]
                base.append(black(centred_crop(image, box)))  # type: ignore[arg-type]
    print(f"{len(ours)} faces of {args.min_short:g}-{args.max_short:g} px, pad {PAD}, {SIZE} px")
    print(f"black pixels, mean / worst: rbv {np.mean(ours):.4f} / {max(ours):.4f}; "
          f"centred baseline {np.mean(base):.4f} / {max(base):.4f}; "
          f"ratio of means {np.mean(ours) / np.mean(base):.3f}")


if __name__ == "__main__":
    main()

"""Decoders for `rbv embed` (#11): time and faces of each candidate against Pillow's.

Every image of ``--images`` (default ``../shared/data/faces``) is decoded for detection
by each candidate at the analyzer's ``decode_long_edge`` (or ``--long-edge``), best of
``--repeat`` rounds, then analysed with ``--pack``. A candidate keeps the faces when every
image has the same face count as with the baseline and every matched face (same
order: the detector ranks by score) has cosine ≥ 0.999 to the baseline's embedding.

    uv run python scripts/bench/bench_decode.py [--limit 200] [--repeat 3] [--long-edge 640]
    uv run --with simplejpeg --with pyvips --with pyvips-binary --with "pyturbojpeg<2" \
        python scripts/bench/bench_decode.py --images ../shared/data/faces ../shared/data/misc \
        --limit 1000 --cpu                                          # other decoders too

Besides Pillow and rbv's decoder it times the JPEG decoders that are installed (they
are not rbv dependencies; each decodes RGB/greyscale JPEGs at the same DCT scale and
EXIF orientation as rbv, everything else goes through rbv): simplejpeg (its wheel
bundles libjpeg-turbo), PyTurboJPEG (needs the system's libturbojpeg) and pyvips.

Prints one line per decoder: total decode seconds, ms per image, the ratio against the
baseline (Pillow for every format, what ``decode_for_detection`` did before it used
OpenCV for JPEGs), face-count mismatches, the lowest cosine and how many images got
exactly rbv's pixels; then the peak RSS. With ``--cpu`` the time is the process's
CPU time (steadier on a busy machine)."""

from __future__ import annotations

import argparse
import functools
import importlib.util
import math
import os
import resource
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps

from rbv.faces.analyzer import load_analyzer
from rbv.media.decode import decode_for_detection, to_rgb
from rbv.media.sniff import sniff_format
from rbv.media.types import DecodedImage

ROOT = Path(__file__).resolve().parents[2]
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


JpegDecoder = Callable[[bytes, int], NDArray[np.uint8]]  # (file bytes, 1/scale) -> RGB


def jpeg_with(decode_jpeg: JpegDecoder) -> Decoder:
    """A decoder that hands RGB/greyscale JPEGs to ``decode_jpeg`` at the DCT scale rbv
    picks, then applies EXIF orientation and rbv's integer reduction; other images go
    through rbv."""
    def decoder(path: Path, fmt: str, long_edge: int) -> DecodedImage:
        if fmt != "JPEG":
            return rbv_now(path, fmt, long_edge)
        data = path.read_bytes()
        with Image.open(path) as im:
            raw, mode = im.size, im.mode
            orientation = im.getexif().get(0x0112, 1)
        if mode not in ("RGB", "L"):
            return rbv_now(path, fmt, long_edge)
        scale = 1
        if 0 < long_edge < max(raw):
            ratio = long_edge / max(raw)
            fit = min(n // math.ceil(n * ratio) for n in raw)
            scale = next((k for k in (8, 4, 2) if fit >= k), 1)
        rgb = decode_jpeg(data, scale)
        if orientation in _TRANSPOSE:
            rgb = np.asarray(Image.fromarray(rgb).transpose(_TRANSPOSE[orientation]))
        factor = max(rgb.shape[:2]) // long_edge if long_edge > 0 else 1
        if factor >= 2:
            rgb = to_rgb(Image.fromarray(rgb).reduce(factor))
        swapped = orientation in (5, 6, 7, 8)
        original = (raw[1], raw[0]) if swapped else raw
        return DecodedImage(0, path, np.ascontiguousarray(rgb),
                            max(original) / max(rgb.shape[:2]), original)
    return decoder


_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
              8: Image.Transpose.ROTATE_90}


def optional_decoders() -> dict[str, Decoder]:
    """The JPEG decoders of this environment beyond rbv's own."""
    found: dict[str, Decoder] = {}
    if importlib.util.find_spec("simplejpeg"):
        import simplejpeg

        def simple(data: bytes, scale: int) -> NDArray[np.uint8]:
            return simplejpeg.decode_jpeg(data, "RGB", min_factor=scale)

        found["simplejpeg (libjpeg-turbo in its wheel)"] = jpeg_with(simple)
    if importlib.util.find_spec("turbojpeg"):
        import turbojpeg

        try:
            turbo = turbojpeg.TurboJPEG()
        except (OSError, RuntimeError) as exc:
            print(f"PyTurboJPEG left out: {exc}".splitlines()[0])
        else:
            def pyturbo(data: bytes, scale: int) -> NDArray[np.uint8]:
                return turbo.decode(data, pixel_format=turbojpeg.TJPF_RGB,
                                    scaling_factor=(1, scale))

            found["PyTurboJPEG (system libturbojpeg)"] = jpeg_with(pyturbo)
    if importlib.util.find_spec("pyvips"):
        import pyvips

        def vips(data: bytes, scale: int) -> NDArray[np.uint8]:
            im = pyvips.Image.jpegload_buffer(data, shrink=scale)
            if im.bands == 1:
                im = im.bandjoin([im, im])
            return im.numpy()

        found["pyvips jpegload shrink"] = jpeg_with(vips)
    return found


DECODERS: dict[str, Decoder] = {
    "Pillow draft + reduce (before; baseline)": pillow,
    "Pillow draft, no reduce": pillow_draft_only,
    "rbv now: OpenCV IMREAD_REDUCED_* for JPEG": rbv_now,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", nargs="+", default=[str(SHARED / "data" / "faces")])
    parser.add_argument("--pack", default=str(SHARED / "models" / "scrfd_sface"))
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--long-edge", type=int, default=0,
                        help="decode long edge (default: the analyzer's decode_long_edge)")
    parser.add_argument("--cpu", action="store_true",
                        help="time by process CPU-seconds instead of the wall clock")
    parser.add_argument("--other-edges", default="",
                        help="comma-separated long edges, e.g. 960,640: rbv's decoder at "
                             "each as a candidate too (other pixels: what a smaller decode "
                             "would save and change)")
    args = parser.parse_args()
    decoders = {**DECODERS, **optional_decoders()}
    for edge in filter(None, args.other_edges.split(",")):
        decoders[f"rbv now at long edge {int(edge)}"] = functools.partial(at_edge, int(edge))
    clock = cpu_seconds if args.cpu else time.perf_counter
    analyzer = load_analyzer(args.pack)
    long_edge = args.long_edge or analyzer.decode_long_edge
    inputs: list[tuple[Path, str]] = []
    for path in sorted(p for folder in args.images for p in Path(folder).rglob("*")):
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
        for name, decoder in decoders.items():
            started = clock()
            out = [decoder(path, fmt, long_edge) for path, fmt in inputs]
            took = clock() - started
            seconds[name] = min(seconds.get(name, math.inf), took)
            decoded[name] = out
    faces = {name: analyzer.analyze_many(images) for name, images in decoded.items()}
    base_name = next(iter(DECODERS))
    base = faces[base_name]
    rbv = decoded["rbv now: OpenCV IMREAD_REDUCED_* for JPEG"]
    for name in decoders:
        same = sum(a.rgb.shape == b.rgb.shape and bool(np.array_equal(a.rgb, b.rgb))
                   for a, b in zip(rbv, decoded[name], strict=True))
        counts = sum(len(a.faces) != len(b.faces) for a, b in zip(base, faces[name],
                                                                   strict=True))
        cosines = [float(fa.embedding @ fb.embedding)
                   for a, b in zip(base, faces[name], strict=True)
                   if len(a.faces) == len(b.faces)
                   for fa, fb in zip(a.faces, b.faces, strict=True)]
        print(f"{name:<42} {seconds[name]:6.2f} s {1000 * seconds[name] / len(inputs):6.1f} "
              f"ms/image  ratio baseline/this {seconds[base_name] / seconds[name]:5.2f}x  "
              f"faces {sum(len(r.faces) for r in faces[name])}, images with another count "
              f"{counts}, min cosine {min(cosines, default=1.0):.4f}, pixels as rbv's "
              f"{same}/{len(inputs)}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")


def at_edge(edge: int, path: Path, fmt: str, long_edge: int) -> DecodedImage:
    """rbv's decoder at long edge ``edge`` whatever the run's long edge."""
    return rbv_now(path, fmt, edge)


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


if __name__ == "__main__":
    main()

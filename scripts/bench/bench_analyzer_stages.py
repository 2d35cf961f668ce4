"""The analyzer's stages on one device, with no database and no catalogue: what each
model costs alone at the batch rbv gives it, what ``analyze_many`` adds around them,
and what decoding costs, so a run that keeps a GPU idle says which stage holds it.

On ``--images`` (decoded once, as ``rbv embed`` decodes them, then repeated to
``--images-per-leg``) and ``--pack`` on ``--device`` it times, for each thread count of
``--threads`` (threads calling one shared analyzer, as embed's inference workers do):

- ``detector``: the detector session alone on full batches of prepared input pixels;
- ``recognizer``: the recognizer session alone on full batches of aligned crops;
- ``analyze_many``: the analyzer on prepared images (a detector batch per call, as
  embed's inference threads call it): detection, alignment, blur and recognition;
- ``decode``: decoding and preparing the photos on ``-j`` threads (embed's decoders);

then one ``analyze_many`` call per stage profiled on one thread (detector input, the
detector's run, its decoding and NMS, alignment, the recognizer's run, blur), and the
ratio of ``analyze_many`` to the two sessions alone (its ceiling on this device). Each
leg prints images/s and the process's CPU-seconds per image (the host's share).

    uv run python scripts/bench/bench_analyzer_stages.py --device cpu --threads 1,2
    python3 scripts/bench/bench_analyzer_stages.py --device cuda --threads 1,4,8 -j 16
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from pathlib import Path

import numpy as np

from rbv.faces import analyzer as analyzer_module
from rbv.faces.analyzer import LocalFaceAnalyzer, load_analyzer
from rbv.faces.detection import BatchedFaceDetector, place
from rbv.media.decode import decode_image
from rbv.media.limits import DEFAULT_MAX_IMAGE_PIXELS
from rbv.media.sniff import sniff_format
from rbv.media.types import DecodedImage

sys.path.insert(0, str(Path(__file__).parent))
from bench_embed import SHARED, cpu_seconds, find_images  # noqa: E402


def _format(path: Path) -> str | None:
    with path.open("rb") as f:
        return sniff_format(f.read(64))


def decode_one(path: Path, fmt: str | None, image_id: int, analyzer: LocalFaceAnalyzer
               ) -> DecodedImage:
    """One photo as embed's decoding threads make it: decoded, then prepared."""
    image = decode_image(image_id, [str(path)], fmt, analyzer.decode_long_edge,
                         DEFAULT_MAX_IMAGE_PIXELS, False)
    return analyzer.prepare(image)


def decode_all(paths: Sequence[Path], formats: Sequence[str | None],
               analyzer: LocalFaceAnalyzer, threads: int) -> list[DecodedImage]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(partial(decode_one, analyzer=analyzer), paths, formats,
                             range(len(paths))))


def timed(label: str, work: Sequence[Callable[[], int]], threads: int) -> float:
    """Run the calls of ``work`` on ``threads`` threads; print items/s and CPU-s per item
    (each call returns how many items it did). Returns items/s."""
    cpu, start = cpu_seconds(), time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        items = sum(pool.map(lambda call: call(), work))
    wall, used = time.perf_counter() - start, cpu_seconds() - cpu
    print(f"{label:>34} x{threads:<2}: {items / wall:8.1f} /s, {1000 * used / items:6.2f} "
          f"CPU-ms each, {used / wall:4.1f} cores busy", flush=True)
    return items / wall


class Stages:
    """Wall seconds per stage: each wrapped call's time added to its stage's."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, owner: object, attribute: str, name: str) -> None:
        original = getattr(owner, attribute)

        def wrapped(*args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[name] += time.perf_counter() - start

        setattr(owner, attribute, wrapped)


def profile_calls(analyzer: LocalFaceAnalyzer, images: Sequence[DecodedImage], step: int
                  ) -> None:
    """One thread, the analyzer's calls with each stage timed (by wrapping its parts)."""
    stages = Stages()
    detector, recognizer = analyzer.detector, analyzer.recognizer
    stages.wrap(detector.session, "run", "detector run")
    stages.wrap(recognizer.session, "run", "recognizer run")
    stages.wrap(analyzer_module, "align_face", "alignment")
    stages.wrap(analyzer_module, "laplacian_variance", "blur")
    start = time.perf_counter()
    for i in range(0, len(images), step):
        analyzer.analyze_many(images[i:i + step])
    wall = time.perf_counter() - start
    for name in ("detector run", "recognizer run", "alignment", "blur"):
        print(f"    {name:>30}: {1000 * stages.seconds[name] / len(images):6.3f} ms an image"
              f" ({stages.seconds[name] / wall:5.1%})")
    rest = wall - sum(stages.seconds.values())
    print(f"    {'the rest (input, decode, NMS)':>30}: {1000 * rest / len(images):6.3f} ms an "
          f"image ({rest / wall:5.1%}); {len(images) / wall:.1f} images/s on one thread")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=SHARED / "data" / "faces")
    parser.add_argument("--pack", type=Path, default=SHARED / "models" / "scrfd_sface")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", default="1,2", help="calling threads, comma-separated")
    parser.add_argument("-j", "--concurrency", type=int, default=os.cpu_count() or 1,
                        help="decoding threads")
    parser.add_argument("--limit", type=int, default=10_000, help="photos read at most")
    parser.add_argument("--images-per-leg", type=int, default=640)
    args = parser.parse_args(argv)
    counts = [int(t) for t in args.threads.split(",")]
    session_threads = None if args.device != "cpu" else 1
    analyzer = load_analyzer(str(args.pack), device=args.device, threads=session_threads)
    step = max(1, analyzer.batch_images)
    paths = find_images(args.images, args.limit)
    print(f"{analyzer.providers[0]}: {len(paths)} photos, {step} images a call, "
          f"detector {type(analyzer.detector).__name__}", flush=True)
    formats = [_format(p) for p in paths]

    def decode(i: int) -> int:
        decode_one(paths[i % len(paths)], formats[i % len(paths)], i, analyzer)
        return 1

    timed("decode + prepare (images)", [partial(decode, i) for i in range(
        max(args.images_per_leg, len(paths)))], args.concurrency)
    decoded = decode_all(paths, formats, analyzer, args.concurrency)
    images = [replace(decoded[i % len(decoded)], image_id=i)
              for i in range(max(args.images_per_leg, step))]
    calls = [images[i:i + step] for i in range(0, len(images) - step + 1, step)]
    # Warm (the sessions' first runs) and count: faces per image, for the ceiling.
    faces = sum(len(f.faces) for i in range(0, len(decoded), step)
                for f in analyzer.analyze_many(decoded[i:i + step]))
    print(f"{faces} faces in {len(decoded)} photos", flush=True)
    detector = analyzer.detector
    pixels = None
    if isinstance(detector, BatchedFaceDetector):
        width, height = detector.size
        pixels = np.zeros((step, height, width, 3), np.uint8)
        for slot, image in zip(pixels, images[:step], strict=True):
            place(image.detector_input[0], slot)  # type: ignore[index]
    crops = [c for im in decoded for c in analyzer.find_faces(im).crops][:64]
    batch = [crops[i % len(crops)] for i in range(analyzer.recognizer.max_batch)]

    def detect_batch() -> int:
        assert pixels is not None
        detector._run(pixels)  # type: ignore[attr-defined]
        return step

    def detect_one(image: DecodedImage) -> int:
        detector.detect(image.rgb, analyzer.det_threshold)
        return 1

    def embed_batch() -> int:
        return len(analyzer.recognizer.embed(batch))

    def analyze(chunk: list[DecodedImage]) -> int:
        return len(analyzer.analyze_many(chunk))

    for threads in counts:
        detector_rate = timed("detector alone (images)", [detect_batch for _ in calls] if (
            pixels is not None) else [partial(detect_one, im) for im in images], threads)
        recognizer_rate = timed("recognizer alone (faces)", [embed_batch for _ in calls],
                                threads)
        whole = timed("analyze_many (images)", [partial(analyze, c) for c in calls], threads)
        per_image = 1 / detector_rate + (faces / len(decoded)) / recognizer_rate
        print(f"{'ratio':>34} x{threads:<2}: analyze_many / sessions alone "
              f"{whole * per_image:.2f} (sessions alone: {1 / per_image:.1f} images/s)",
              flush=True)
    print("one thread, per stage:")
    profile_calls(analyzer, images, step)


if __name__ == "__main__":
    main()

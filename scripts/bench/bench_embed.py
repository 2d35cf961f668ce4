"""Benchmark face detection + embedding against InsightFace, in one process.

On the same images and model pack it times:

  (a)  insightface ``FaceAnalysis(...).get(img)`` in a plain loop, as users run it
       (cv2.imread + get; same det size), the baseline;
  (b') rbv's ``LocalFaceAnalyzer.analyze_many`` on images decoded by a simple loader
       (PIL with JPEG draft mode at ``decode_long_edge``), once on one thread with
       multi-threaded sessions, once on one worker thread per core with
       single-threaded sessions (decoding then overlaps inference);
  (b)  ``rbv embed`` end to end incl. the database queue, decode threads and COPY;
       (b-batched) the same with recognition batched across images in per-thread
       slices, as embed ran on a CPU before;
  (c)  the pack's pure inference: detector + recognizer sessions on pre-decoded,
       pre-aligned inputs, in the same two thread layouts (the better one is the
       ceiling for (b)), and with ONNX Runtime's default options for reference.

and prints images/s, faces/s, the process's CPU-seconds per leg and the ratios b/a
and b/c.

    uv run python scripts/bench/bench_embed.py                       # 200 images of data/faces
    uv run python scripts/bench/bench_embed.py --limit 50 --pack ../shared/models/scrfd_mbf128
"""

from __future__ import annotations

import argparse
import contextlib
import os
import resource
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps

from rbv.faces.analyzer import LocalFaceAnalyzer, load_analyzer
from rbv.faces.detection import prepare_input
from rbv.faces.packs import load_pack
from rbv.faces.recognition import to_blob
from rbv.faces.sessions import default_threads
from rbv.media.types import DecodedImage

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif", ".tif", ".tiff", ".bmp"}


@dataclass
class Result:
    label: str
    seconds: float
    images: int
    faces: int
    cpu: float = 0.0  # this process's CPU-seconds (all threads; not the database server)

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds

    @property
    def faces_per_s(self) -> float:
        return self.faces / self.seconds


def find_images(folder: Path, limit: int) -> list[Path]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    return files[:limit]


def decode(path: Path, long_edge: int | None = None) -> DecodedImage:
    """A simple loader: PIL, JPEG draft mode to ≥ long_edge, EXIF orientation, RGB."""
    with Image.open(path) as im:
        full = im.size
        if long_edge and im.format == "JPEG" and max(full) > long_edge:
            k = long_edge / max(full)
            # draft() picks the largest 1/2^n reduction still ≥ the requested box.
            im.draft("RGB", (int(full[0] * k) + 1, int(full[1] * k) + 1))
        turned = im.getexif().get(0x0112, 1) in (5, 6, 7, 8)
        upright = ImageOps.exif_transpose(im).convert("RGB")
    oriented = (full[1], full[0]) if turned else full
    return DecodedImage(0, path, np.asarray(upright), oriented[0] / upright.size[0], oriented)


def read_bgr(path: Path) -> np.ndarray:
    """What InsightFace users do (cv2.imread), with PIL for what OpenCV cannot read."""
    image = cv2.imread(str(path))
    if image is None:
        image = np.ascontiguousarray(decode(path).rgb[:, :, ::-1])
    return image


def cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def timed(label: str, run: Callable[[], int], images: int) -> Result:
    cpu, start = cpu_seconds(), time.perf_counter()
    faces = run()
    return Result(label, time.perf_counter() - start, images, faces, cpu_seconds() - cpu)


# ----- (a) insightface -------------------------------------------------------------

def bench_insightface(paths: Sequence[Path], pack: Path, det_size: int) -> Result:
    from insightface.app import FaceAnalysis

    app = FaceAnalysis(name=str(pack), providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=-1, det_size=(det_size, det_size))
    app.get(read_bgr(paths[0]))  # warm-up

    def run() -> int:
        return sum(len(app.get(read_bgr(p))) for p in paths)

    return timed("(a)  insightface FaceAnalysis.get loop", run, len(paths))


# ----- (b') rbv analyzer -----------------------------------------------------------

def _chunks(items: Sequence[Path], size: int) -> list[Sequence[Path]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def bench_analyzer(paths: Sequence[Path], analyzer: LocalFaceAnalyzer, batch: int,
                   workers: int) -> Result:
    """Decode + analyze_many per chunk of ``batch`` images, on ``workers`` threads.

    With one worker the analyzer's sessions use every core (intra-op threads); with
    one worker per core each session call runs single-threaded and the workers keep
    all cores busy, decoding included (ONNX Runtime, PIL and cv2 release the GIL)."""
    edge = analyzer.decode_long_edge
    analyzer.analyze(decode(paths[0], edge))  # warm-up

    def work(chunk: Sequence[Path]) -> int:
        images = [decode(p, edge) for p in chunk]
        return sum(len(r.faces) for r in analyzer.analyze_many(images))

    def run() -> int:
        if workers == 1:
            return sum(work(c) for c in _chunks(paths, batch))
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return sum(pool.map(work, _chunks(paths, batch)))

    return timed(f"(b') rbv decode+analyze_many, {workers} worker(s) x "
                 f"{analyzer.detector.session.get_session_options().intra_op_num_threads} "
                 "ORT thread(s)", run, len(paths))


def bench_analyzer_predecoded(images: Sequence[DecodedImage], analyzer: LocalFaceAnalyzer,
                              batch: int) -> Result:
    """analyze_many alone on images decoded beforehand: the engine's own overhead
    (resize, alignment, blur, Python) over pure inference, without decoding."""
    analyzer.analyze(images[0])  # warm-up

    def run() -> int:
        return sum(len(r.faces) for i in range(0, len(images), batch)
                   for r in analyzer.analyze_many(images[i:i + batch]))

    return timed("(b'0) rbv analyze_many on pre-decoded images, 1 worker", run, len(images))


# ----- (b) rbv embed end to end ----------------------------------------------------

def bench_rbv_embed(paths: Sequence[Path], pack: Path, det_size: int,
                    batched: bool = False, on_start: Callable[[], object] = lambda: None
                    ) -> Result:
    """(b): `rbv embed` end to end — claim from the database queue, decode on the
    pipeline's threads, detect + embed, binary COPY and commit — on a fresh embedded
    database where the same images were catalogued beforehand (not timed). The model
    sessions are opened and warmed before the clock starts, as in the other legs.
    ``batched``: the analyzer batches recognition across 8 images, as a CPU did before
    (a GPU batches detection too): embed then hands the inference threads 8 images a
    task.
    ``on_start`` is called just before the clock starts."""
    import atexit
    import shutil
    import tempfile

    from rbv.config import Settings
    from rbv.jobs.library.analyzer import load_face_analyzer, with_inference_workers
    from rbv.jobs.library.catalogue import run_catalogue
    from rbv.jobs.library.embed import run_embed
    from rbv.store import open_database
    from rbv.store.server.migrations import apply_pending

    data_dir = Path(tempfile.mkdtemp(prefix="rbv-bench-embed-"))
    # Registered before the server starts, so it runs after the server's own exit hook
    # has stopped it (atexit runs last-in first-out).
    atexit.register(shutil.rmtree, data_dir, ignore_errors=True)
    settings = with_inference_workers(Settings(
        data_dir=data_dir, model_pack=str(pack), device="cpu", det_size=det_size))
    db = open_database(settings, require_schema=False)
    apply_pending(db)
    run_catalogue(db, settings, list(paths))
    analyzer = load_face_analyzer(settings)
    analyzer.analyze(decode(paths[0], analyzer.decode_long_edge))
    if batched:
        analyzer.batch_images = 8
    on_start()
    cpu, start = cpu_seconds(), time.perf_counter()
    summary = run_embed(db, settings, analyzer, record=False)
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    label = (f"(b{'-batched' if batched else ''}) rbv embed end to end, "
             f"{settings.inference_workers} inference worker(s), concurrency "
             f"{settings.concurrency}{', batched (before)' if batched else ''}")
    return Result(label, seconds, summary.images, summary.faces, cpu)


@contextlib.contextmanager
def part_clock() -> Iterator[Counter[str]]:
    """CPU-seconds of each part of the embed path, summed over threads (thread CPU time
    around each call of the functions it wraps while the block runs)."""
    import rbv.faces.analyzer as analyzer_module
    import rbv.faces.detection as detection
    import rbv.faces.recognition as recognition
    import rbv.jobs.library.embed as embed
    import rbv.jobs.library.scanning as scanning
    import rbv.media.decode as media_decode

    seconds: Counter[str] = Counter()
    lock = threading.Lock()
    undo: list[tuple[object, str, object]] = []

    def wrap(owner: object, name: str, part: str) -> None:
        inner = getattr(owner, name)

        def clocked(*args: object, **kwargs: object) -> object:
            start = time.thread_time()
            try:
                return inner(*args, **kwargs)
            finally:
                with lock:
                    seconds[part] += time.thread_time() - start

        undo.append((owner, name, inner))
        setattr(owner, name, clocked)

    wrap(ort.InferenceSession, "run", "ONNX Runtime (detector + recognizer)")
    wrap(media_decode, "decode_for_detection", "decoding (read, EXIF, decode, orientation)")
    wrap(detection, "prepare_input", "detector input (resize, pad, blob)")
    wrap(detection, "decode", "detector output (anchors, NMS)")
    wrap(analyzer_module, "align_face", "alignment (similarity, warp)")
    wrap(analyzer_module, "laplacian_variance", "blur measure")
    wrap(recognition, "to_blob", "recognizer input")
    wrap(scanning, "_finish_batch", "main thread: writing a batch")
    wrap(scanning, "claim_pending_images", "main thread: claiming a batch")
    wrap(embed, "ensure_pack_index", "main thread: HNSW index at the end")
    try:
        yield seconds
    finally:
        for owner, name, inner in reversed(undo):
            setattr(owner, name, inner)


# ----- (c) pure inference ----------------------------------------------------------

@dataclass
class Prepared:
    """Model inputs computed before timing: per image, the detector blob and the
    recognizer batch of its faces (None when it has none)."""

    units: list[tuple[np.ndarray, np.ndarray | None]]
    faces: int


def prepare(paths: Sequence[Path], analyzer: LocalFaceAnalyzer) -> Prepared:
    detector, recognizer = analyzer.detector, analyzer.recognizer
    units, faces = [], 0
    for p in paths:
        image = decode(p, analyzer.decode_long_edge)
        blob = prepare_input(image.rgb, detector.det_size, detector.fixed_size)[0]
        crops = analyzer.find_faces(image).crops
        faces += len(crops)
        units.append((blob, to_blob(crops, recognizer.norm) if crops else None))
    return Prepared(units, faces)


def bench_pure_inference(prepared: Prepared, det_session: ort.InferenceSession,
                         rec_session: ort.InferenceSession, workers: int, one_by_one: bool,
                         label: str) -> Result:
    """Detector + recognizer session runs only, image by image, on ``workers`` threads.
    ``one_by_one``: one face per recognizer call (for graphs with a fixed batch of 1)."""
    det_in = det_session.get_inputs()[0].name
    rec_in, rec_out = rec_session.get_inputs()[0].name, rec_session.get_outputs()[0].name

    def infer(unit: tuple[np.ndarray, np.ndarray | None]) -> None:
        det_session.run(None, {det_in: unit[0]})
        if unit[1] is not None:
            batches = [unit[1][i:i + 1] for i in range(len(unit[1]))] if one_by_one else [unit[1]]
            for batch in batches:
                rec_session.run([rec_out], {rec_in: batch})

    infer(next(u for u in prepared.units if u[1] is not None))  # warm-up

    def run() -> int:
        if workers == 1:
            for unit in prepared.units:
                infer(unit)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(infer, prepared.units))
        return prepared.faces

    return timed(f"(c)  pure inference, {label}", run, len(prepared.units))


# ----- report ----------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=Path, default=SHARED / "data" / "faces")
    parser.add_argument("--pack", type=Path, default=SHARED / "models" / "scrfd_sface")
    parser.add_argument("--limit", type=int, default=200)
    parser.add_argument("--det-size", type=int, default=640)
    parser.add_argument("--batch", type=int, default=8, help="images per analyze_many call")
    parser.add_argument("--threads", type=int, default=None, help="ORT intra-op threads")
    parser.add_argument("--repeat", type=int, default=1,
                        help="interleaved rounds; the best of each is reported")
    parser.add_argument("--skip-insightface", action="store_true")
    parser.add_argument("--parts", action="store_true",
                        help="then one more (b) run with the CPU-seconds of each part")
    args = parser.parse_args(argv)

    from pillow_heif import register_heif_opener

    register_heif_opener()
    paths = find_images(args.images, args.limit)
    analyzer = load_analyzer(str(args.pack), device="cpu", det_size=args.det_size,
                             threads=args.threads)
    print(f"{len(paths)} images from {args.images}, pack {analyzer.pack.name} "
          f"(dim {analyzer.pack.embedding_dim}), det size {args.det_size}, "
          f"providers {analyzer.providers}, decode long edge {analyzer.decode_long_edge}, "
          f"recognizer batch {analyzer.recognizer.max_batch}")

    cores = default_threads()
    single = load_analyzer(str(args.pack), device="cpu", det_size=args.det_size, threads=1)
    prepared = prepare(paths, analyzer)
    files = load_pack(str(args.pack))
    default_det = ort.InferenceSession(files.detector.path, providers=["CPUExecutionProvider"])
    default_rec = ort.InferenceSession(files.recognizer.path, providers=["CPUExecutionProvider"])
    benches: dict[str, Callable[[], Result]] = {}
    if not args.skip_insightface:
        benches["a"] = lambda: bench_insightface(paths, args.pack, args.det_size)
    benches["b'seq"] = lambda: bench_analyzer(paths, analyzer, args.batch, workers=1)
    benches["b'par"] = lambda: bench_analyzer(paths, single, args.batch, workers=cores)
    decoded = [decode(p, analyzer.decode_long_edge) for p in paths]
    benches["b0"] = lambda: bench_analyzer_predecoded(decoded, analyzer, args.batch)
    benches["c_seq"] = lambda: bench_pure_inference(
        prepared, analyzer.detector.session, analyzer.recognizer.session, 1, False,
        f"rbv sessions, 1 worker x {cores} ORT threads")
    benches["c_par"] = lambda: bench_pure_inference(
        prepared, single.detector.session, single.recognizer.session, cores, False,
        f"rbv sessions, {cores} workers x 1 ORT thread")
    benches["c_default"] = lambda: bench_pure_inference(
        prepared, default_det, default_rec, 1, True, "ORT default options (as insightface)")
    # Interleaved rounds, best of each: load from other processes hits all alike.
    benches["b"] = lambda: bench_rbv_embed(paths, args.pack, args.det_size)
    benches["b_batched"] = lambda: bench_rbv_embed(paths, args.pack, args.det_size,
                                                   batched=True)
    rounds = [{k: run() for k, run in benches.items()} for _ in range(args.repeat)]
    results = {k: max((r[k] for r in rounds), key=lambda x: x.images_per_s) for k in benches}

    print(f"\n{'run':58} {'seconds':>8} {'images/s':>9} {'faces/s':>8} {'faces':>6} "
          f"{'CPU-s':>6}")
    for r in results.values():
        print(f"{r.label:58} {r.seconds:8.2f} {r.images_per_s:9.2f} {r.faces_per_s:8.2f} "
              f"{r.faces:6d} {r.cpu:6.2f}")
    print()
    ours, name = results["b"], "b"
    best_c = max(results["c_seq"], results["c_par"], key=lambda r: r.images_per_s)
    if "a" in results:
        print(f"{name}/a  speed-up over insightface:          "
              f"{ours.images_per_s / results['a'].images_per_s:6.2f}x")
    print(f"{name}/c  share of best pure inference:         "
          f"{ours.images_per_s / best_c.images_per_s:6.1%}")
    print(f"b-batched/c  the same with recognition batched across images (before): "
          f"{results['b_batched'].images_per_s / best_c.images_per_s:6.1%}; "
          f"b/b-batched {ours.images_per_s / results['b_batched'].images_per_s:5.2f}x")
    cpu_b, cpu_c = (min(r[k].cpu for r in rounds) for k in ("b", "c_par"))
    print(f"CPU-s (least of the rounds): b {cpu_b:.2f}, b-batched "
          f"{min(r['b_batched'].cpu for r in rounds):.2f}, c_par {cpu_c:.2f}; "
          f"c_par/b {cpu_c / cpu_b:6.1%} (the ceiling of b/c with no core ever idle)")
    print(f"b'0/c_seq  engine without decoding vs its pure inference: "
          f"{results['b0'].images_per_s / results['c_seq'].images_per_s:6.1%}")
    print(f"c_seq/c_default  session options alone:      "
          f"{results['c_seq'].images_per_s / results['c_default'].images_per_s:6.2f}x")
    print(f"(c = best of: {best_c.label.strip()})")
    print(f"peak RSS of this process (all legs; the embedded PostgreSQL server not "
          f"counted): {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB")
    if args.parts:
        with part_clock() as parts:
            run = bench_rbv_embed(paths, args.pack, args.det_size, on_start=parts.clear)
        print(f"\n(b) once more, CPU-seconds by part ({run.seconds:.2f} s, {run.cpu:.2f} "
              "CPU-s in this process; parts summed over threads):")
        for part, cpu in parts.most_common():
            print(f"  {part:48} {cpu:6.2f}")
        print(f"  {'the rest (Python, queues, threads)':48} "
              f"{run.cpu - sum(parts.values()):6.2f}")


if __name__ == "__main__":
    main()

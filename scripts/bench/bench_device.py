"""`rbv index` end to end on each device, on the same photos, each into a new library.

For every device named (``--devices cuda,cpu``) it runs ``rbv migrate`` and
``rbv index PHOTOS --device D --json`` in a fresh data directory (its own embedded
server), exactly as a user would, and prints the run's images/s, faces, wall time, and
the ratio of each device's images/s to the last device's (the baseline: ``cpu`` by
default). It then compares what each device found with the baseline's faces: faces of
the same photo (by its sha256) matched by box overlap (IoU ≥ 0.5), how many matched and
the cosine of their embeddings (1.0: the same vector).

``--variants N`` makes the library N times larger than ``--images`` so a GPU has enough
work: each photo is also written mirrored and/or scaled (new pixels, so each is a new
photo to rbv, with the same faces), N - 1 times, before any run.

Where ``nvidia-smi`` runs, each run also prints the GPU's **busy share**: the mean of
``utilization.gpu`` (the share of time a kernel was running), sampled every 100 ms,
over the run's embed stage (its last ``seconds`` before the process ended, as ``rbv
index --json`` reports them; catalogue and start-up are left out), and every run the
cores the machine kept busy over that stage (``/proc/stat``: rbv, its helpers and the
database server together), which says whether the host is the bound. ``--workers 2,8``
adds runs of the first device with that many inference workers, ``--processes`` with
that many embed processes, ``--decoders`` with that many decoding threads (``-j``), and
each ``--env "NAME=VALUE ..."`` one run with those variables set (to try a setting of a
library underneath, e.g. ``OPENCV_FOR_THREADS_NUM=1`` or ``GLIBC_TUNABLES=...``).

    uv run python scripts/bench/bench_device.py                        # cuda then cpu, data/faces
    uv run python scripts/bench/bench_device.py --variants 8 -j 12     # 1,600 photos, 12 decoders
    uv run python scripts/bench/bench_device.py --devices cuda:0,1,cpu --workers 4,8
    uv run python scripts/bench/bench_device.py --devices cuda --decoders 8 \
        --env OPENCV_FOR_THREADS_NUM=1
    uv run python scripts/bench/bench_device.py --devices cpu --images ~/Pictures/sample
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from rbv.config import Settings
from rbv.formats.regions import Box, iou
from rbv.store import open_database

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
_SCALES = 6
"""Variants cycle through this many scales (0.92 ** 0 … 0.92 ** 5)."""


@dataclass
class Run:
    device: str
    images: int
    faces: int
    seconds: float  # the embed stage, as rbv reports it
    wall: float  # the whole `rbv index` process: start, catalogue, models, embed, exit
    providers: str
    faces_by_photo: dict[str, list[tuple[Box, np.ndarray]]]
    busy: float | None = None  # the GPU's mean utilization over the embed stage, 0-1
    variant: str = ""  # what the run set beside the device (workers, processes, -j, env)
    helper_images: tuple[int, ...] = ()  # images each helper process stored
    cores: float | None = None  # the machine's cores busy over the embed stage, on average

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds else 0.0


def _variant(job: tuple[Path, Path, int]) -> None:
    source, target, k = job
    with Image.open(source) as opened:
        img: Image.Image = ImageOps.exif_transpose(opened).convert("RGB")
        if k % 2:
            img = ImageOps.mirror(img)
        # Scales 1, 1, .92, .92, ... .66, .66, then again with 1 more pixel cut off the
        # top and left: every variant new pixels, none smaller than 2/3 of the photo (a
        # plain 0.92 ** (k // 2) shrank variant 160 to a pixel: a quarter of the photos
        # were then 1-pixel duplicates the catalogue dropped, many more had no face).
        cut = k // (2 * _SCALES)
        if cut:
            img = img.crop((cut, cut, max(cut + 1, img.width), max(cut + 1, img.height)))
        scale = 0.92 ** ((k // 2) % _SCALES)
        if scale < 1:
            img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                             Image.Resampling.LANCZOS)
        target.parent.mkdir(parents=True, exist_ok=True)
        img.save(target, quality=92)


def make_library(images: Path, folder: Path, variants: int) -> int:
    photos = sorted(p for p in images.rglob("*") if p.suffix.lower() in SUFFIXES)
    jobs = []
    for photo in photos:
        rel = photo.relative_to(images)
        (folder / "v0" / rel.parent).mkdir(parents=True, exist_ok=True)
        shutil.copy2(photo, folder / "v0" / rel)
        jobs += [(photo, folder / f"v{k}" / rel, k) for k in range(1, variants)]
    with ProcessPoolExecutor() as pool:
        list(pool.map(_variant, jobs, chunksize=8))
    return len(photos) * variants


def rbv(args: Sequence[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "rbv", *args], env=env, text=True,
                          capture_output=True, check=False)
    if done.returncode not in (0, 3):  # 3: some files failed, said in the JSON
        sys.exit(f"rbv {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def faces_of(data_dir: Path) -> dict[str, list[tuple[Box, np.ndarray]]]:
    """Each photo's faces (box, embedding), by the photo's sha256."""
    db = open_database(Settings(data_dir=data_dir))
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT i.sha256, d.x1, d.y1, d.x2, d.y2, e.embedding::text"
            " FROM face_detections d JOIN images i ON i.id = d.image_id"
            " JOIN face_embeddings e ON e.face_id = d.id").fetchall()
    found: dict[str, list[tuple[Box, np.ndarray]]] = {}
    for sha, x1, y1, x2, y2, vector in rows:
        found.setdefault(sha, []).append(
            ((x1, y1, x2, y2), np.array(json.loads(vector), np.float64)))
    return found


@dataclass(frozen=True)
class Plan:
    """One run: a device, and what it sets beside (variables, decoding threads)."""

    device: str
    variables: tuple[tuple[str, str], ...] = ()
    concurrency: int | None = None  # -j, where not the command line's
    label: str = ""


def _env(data_dir: Path, variables: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    return {**os.environ, "RBV_DATA_DIR": str(data_dir), "RBV_SERVER_LINGER": "30",
            **dict(variables)}


def _variables(text: str) -> tuple[tuple[str, str], ...]:
    """``"A=1 B=x=y"`` → (("A", "1"), ("B", "x=y")); a word without ``=`` is an error."""
    pairs = []
    for word in text.split():
        name, sep, value = word.partition("=")
        if not sep or not name:
            raise SystemExit(f"--env wants NAME=VALUE words, not {word!r}")
        pairs.append((name, value))
    return tuple(pairs)


class GpuSampler:
    """``nvidia-smi``'s utilization.gpu every 100 ms while a run goes on (no samples
    where there is no nvidia-smi)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (perf_counter, mean over GPUs 0-1)
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    def __enter__(self) -> GpuSampler:
        if shutil.which("nvidia-smi") is None:
            return self
        self._proc = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits",
             "-lms", "100"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:  # one line per GPU per sample
            with contextlib.suppress(ValueError):
                self.samples.append((time.perf_counter(), float(line.strip()) / 100))

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait()

    def busy(self, start: float, end: float) -> float | None:
        inside = [u for t, u in self.samples if start <= t <= end]
        return sum(inside) / len(inside) if inside else None


class CpuSampler:
    """The machine's busy CPU time (``/proc/stat``: every state but idle and iowait) every
    100 ms while a run goes on, for the cores the embed stage kept busy (no samples where
    there is no ``/proc/stat``)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []  # (perf_counter, busy seconds so far)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)

    def __enter__(self) -> CpuSampler:
        if Path("/proc/stat").exists():
            self._thread.start()
        return self

    def _read(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self._stop.is_set():
            with open("/proc/stat") as f:
                jiffies = [int(v) for v in f.readline().split()[1:]]
            idle = jiffies[3] + (jiffies[4] if len(jiffies) > 4 else 0)
            self.samples.append((time.perf_counter(), (sum(jiffies[:8]) - idle) / tick))
            self._stop.wait(0.1)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def cores(self, start: float, end: float) -> float | None:
        """Cores busy on average from ``start`` to ``end`` (every process's, the
        database server's included)."""
        inside = [(t, b) for t, b in self.samples if start <= t <= end]
        if len(inside) < 2 or inside[-1][0] <= inside[0][0]:
            return None
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])


def index_on(plan: Plan, library: Path, pack: Path, data_dir: Path, concurrency: int) -> Run:
    device = plan.device
    concurrency = plan.concurrency or concurrency
    shutil.rmtree(data_dir, ignore_errors=True)
    env = _env(data_dir, plan.variables)
    rbv(["migrate"], env)
    with GpuSampler() as gpu, CpuSampler() as cpu:
        started = time.perf_counter()
        done = rbv(["index", str(library), "--model-pack", str(pack), "--device", device,
                    "--json", "-j", str(concurrency)], env)
        ended = time.perf_counter()
    report = json.loads(done.stdout)["embed"]
    providers = next((line for line in done.stderr.splitlines() if " on " in line), "?")
    busy = gpu.busy(ended - report["seconds"], ended) if device != "cpu" else None
    cores = cpu.cores(ended - report["seconds"], ended)
    return Run(device, report["images"], report["faces"], report["seconds"], ended - started,
               providers.strip(), faces_of(data_dir), busy, plan.label,
               tuple(report.get("helper_images", ())), cores)


def compare(run: Run, base: Run) -> str:
    matched, cosines = 0, []
    for sha, faces in run.faces_by_photo.items():
        others = list(base.faces_by_photo.get(sha, []))
        for box, vector in faces:
            best = max(others, key=lambda o: iou(box, o[0]), default=None)
            if best is not None and iou(box, best[0]) >= 0.5:
                matched += 1
                cosines.append(float(vector @ best[1]))
                others.remove(best)
    if not cosines:
        return f"{run.device} vs {base.device}: no face matched"
    c = np.array(cosines)
    return (f"{run.device} vs {base.device}: {matched:,} of {run.faces:,} faces matched "
            f"({base.faces:,} in the baseline); embedding cosine min {c.min():.5f}, "
            f"p01 {np.percentile(c, 1):.5f}, median {np.median(c):.6f}")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", default="cuda,cpu",
                        help="comma-separated, the last is the baseline (default: cuda,cpu)")
    parser.add_argument("--images", type=Path, default=SHARED / "data" / "faces")
    parser.add_argument("--pack", type=Path, default=SHARED / "models" / "scrfd_sface")
    parser.add_argument("--variants", type=int, default=1,
                        help="each photo N times (mirrored, scaled): N× the work")
    parser.add_argument("-j", "--concurrency", type=int, default=4,
                        help="rbv index -j: decoding threads (default 4, rbv's default)")
    parser.add_argument("--workers", default="",
                        help="comma-separated: extra runs of the first device with that many "
                             "inference workers (RBV_INFERENCE_WORKERS)")
    parser.add_argument("--processes", default="",
                        help="comma-separated: extra runs of the first device with that many "
                             "embed processes (RBV_EMBED_PROCESSES; 1: the run's own alone)")
    parser.add_argument("--decoders", default="",
                        help="comma-separated: extra runs of the first device with that many "
                             "decoding threads (-j)")
    parser.add_argument("--env", action="append", default=[], metavar="'NAME=VALUE ...'",
                        help="an extra run of the first device with these variables set "
                             "(repeatable: one run each)")
    parser.add_argument("--reuse", action="store_true",
                        help="use the library an earlier run left in --work as it is")
    parser.add_argument("--work", type=Path, default=None,
                        help="folder for the library and data dirs (default: a temp folder)")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="rbv-bench-device-"))
    library = work / "library"
    t = time.perf_counter()
    if args.reuse and library.is_dir():
        count = sum(1 for p in library.rglob("*") if p.suffix.lower() in SUFFIXES)
    else:
        shutil.rmtree(library, ignore_errors=True)
        count = make_library(args.images, library, max(1, args.variants))
    print(f"{count:,} photos in {library} ({time.perf_counter() - t:.1f} s to make)")
    devices = _devices(args.devices)
    first = devices[0]
    extra = [Plan(first, (("RBV_EMBED_PROCESSES", p),), label=f"{p} processes")
             for p in _listed(args.processes)]
    extra += [Plan(first, (("RBV_INFERENCE_WORKERS", w),), label=f"{w} workers")
              for w in _listed(args.workers)]
    extra += [Plan(first, concurrency=int(j), label=f"-j {j}") for j in _listed(args.decoders)]
    extra += [Plan(first, _variables(e), label=e) for e in args.env]
    plan = [Plan(first), *extra, *(Plan(d) for d in devices[1:])]
    runs = []
    for i, one in enumerate(plan):
        # a fresh data dir each run, never one an earlier call's server may still hold
        # (a second call with --reuse in the same --work could not connect to data0)
        data_dir = Path(tempfile.mkdtemp(prefix=f"data{i}-", dir=work))
        run = index_on(one, library, args.pack, data_dir, args.concurrency)
        runs.append(run)
        busy = "" if run.busy is None else f", GPU busy {run.busy:.0%}"
        if run.cores is not None:
            busy += f", {run.cores:.1f} of {os.cpu_count()} cores busy"
        helpers = (f", helper processes stored {', '.join(map(str, run.helper_images))}"
                   if run.helper_images else "")
        print(f"{_label(run):>5}: {run.images:,} images, {run.faces:,} faces, embed "
              f"{run.seconds:.1f} s = {run.images_per_s:.1f} images/s{busy}{helpers}; whole "
              f"`rbv index` {run.wall:.1f} s  [{run.providers}]", flush=True)
    base = runs[-1] if len(devices) > 1 else runs[0]  # the last device's own run
    for run in (r for r in runs if r is not base):
        label = _label(run)
        print(f"ratio {label}/{base.device}: {run.images_per_s / base.images_per_s:.2f}x "
              f"images/s (embed), {base.wall / run.wall:.2f}x whole run")
        print(compare(run, base))


def _label(run: Run) -> str:
    return run.device + (f" ({run.variant})" if run.variant else "")


def _listed(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _devices(text: str) -> list[str]:
    """``cuda:0,1,cpu`` → ["cuda:0,1", "cpu"]: a bare number belongs to the GPU before."""
    devices: list[str] = []
    for part in (p.strip() for p in text.split(",")):
        if part.isdigit() and devices:
            devices[-1] += f",{part}"
        elif part:
            devices.append(part)
    return devices


if __name__ == "__main__":
    main()

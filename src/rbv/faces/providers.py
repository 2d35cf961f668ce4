"""Which ONNX Runtime execution providers to run on.

One pure function over an ordered preference list, filtered by what the installed
ONNX Runtime build reports (as Immich ML does); the CLI prints the choice once.
"""

from __future__ import annotations

from collections.abc import Sequence

import onnxruntime as ort

from rbv.errors import ConfigError, DeviceUnavailable

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
DIRECTML = "DmlExecutionProvider"

PREFERENCE: tuple[str, ...] = (CUDA, DIRECTML, CPU)
"""``--device auto`` takes the first of these the runtime offers."""

DEVICES: dict[str, str] = {"cuda": CUDA, "directml": DIRECTML, "cpu": CPU}
DEVICE_CHOICES: tuple[str, ...] = ("auto", *DEVICES)

# The pip extra that installs the ONNX Runtime build carrying each provider.
_EXTRA = {CUDA: "gpu", DIRECTML: "directml"}


def available_providers() -> list[str]:
    """What the installed ONNX Runtime build offers, in its own order."""
    return list(ort.get_available_providers())


def choose_providers(device: str, available: Sequence[str]) -> list[str]:
    """Providers for ``device`` (auto|cuda|directml|cpu), best first, CPU last.

    CPU always closes the list so that operators a GPU provider lacks still run.
    Raises :class:`DeviceUnavailable` when the runtime lacks the requested device
    and :class:`ConfigError` for an unknown device name.
    """
    device = device.strip().lower()
    if device == "auto":
        chosen = [p for p in PREFERENCE if p in available]
        return chosen if chosen and chosen[-1] == CPU else [*chosen, CPU]
    if device not in DEVICES:
        raise ConfigError(
            f"unknown device {device!r}; use one of: {', '.join(DEVICE_CHOICES)}"
        )
    wanted = DEVICES[device]
    if wanted == CPU:
        return [CPU]
    if wanted not in available:
        offered = ", ".join(available) or "nothing"
        raise DeviceUnavailable(
            f"--device {device} needs {wanted}, but the installed ONNX Runtime offers "
            f"only {offered}. Install the matching build with `uv sync --extra "
            f"{_EXTRA[wanted]}` (or `pip install 'rbv[{_EXTRA[wanted]}]'`), or use "
            "--device auto"
        )
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

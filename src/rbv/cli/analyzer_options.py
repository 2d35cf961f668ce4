"""Options shared by the commands that run the face analyzer (``index``, ``embed``)."""

from __future__ import annotations

from typing import Annotated

import typer

ModelPackOption = Annotated[
    str | None,
    typer.Option("--model-pack", help="Model pack name (in ~/.insightface/models) or folder. "
                 "Default: $RBV_MODEL_PACK, else buffalo_l.", show_default=False),
]
DeviceOption = Annotated[
    str | None,
    typer.Option("--device", help="auto | cuda | directml | cpu. Default: $RBV_DEVICE, else "
                 "auto (CUDA, then DirectML, then CPU).", show_default=False),
]
ConcurrencyOption = Annotated[
    int | None,
    typer.Option("--concurrency", "-j", min=1, help="Threads reading and decoding images "
                 "while faces are analyzed. Default: $RBV_CONCURRENCY, else 4.",
                 show_default=False),
]
DetThresholdOption = Annotated[
    float | None,
    typer.Option("--det-threshold", min=0.0, max=1.0, help="Minimum face detection score. "
                 "Default: $RBV_DET_THRESHOLD, else 0.5.", show_default=False),
]
MinFaceOption = Annotated[
    int | None,
    typer.Option("--min-face", min=0, help="Ignore faces whose short edge is smaller (original "
                 "pixels). Default: $RBV_MIN_FACE, else 16.", show_default=False),
]
MlUriOption = Annotated[
    str | None,
    typer.Option("--ml-uri", help="Send images to this Immich machine-learning server "
                 "(POST URL/predict) instead of running models here; the model is "
                 "--model-pack's name. Default: $RBV_ML_URI.", show_default=False),
]

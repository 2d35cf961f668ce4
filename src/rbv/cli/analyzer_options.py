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

"""ONNX Runtime sessions, configured on purpose rather than by default.

rbv owns every session (InsightFace's model classes would build their own): the
providers come from :mod:`rbv.faces.providers`, and the options below are what made
the difference when measured on a 2-core CPU (``docs/FACTS.md``):

- ``session.intra_op.allow_spinning = 0``: a detector and a recognizer session each
  own a thread pool; spinning pools fight over the cores while the other model runs
  (10.4 → 16.2 images/s for a plain InsightFace loop).
- ``session.disable_quant_qdq = 1``: weight-only int8 models (SFace int8bq) run their
  DequantizeLinear once at load and then plain float kernels: 2× faster on CPU, the
  same embeddings (max abs difference ~1e-6). Float models (buffalo_l) are unaffected.
- intra-op threads = the CPU count by default (one model runs at a time per analyzer),
  one inter-op thread, full graph optimisation, warnings muted (SFace's graph triggers
  hundreds of harmless "initializer in graph inputs" lines).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx.helper
import onnx.numpy_helper
import onnxruntime as ort

from rbv.errors import ModelPackError
from rbv.faces.providers import CUDA, DIRECTML, load_cuda_libraries


def default_threads() -> int:
    """Intra-op threads when the caller does not choose: every CPU rbv may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def session_options(threads: int | None, providers: Sequence[str]) -> ort.SessionOptions:
    """The SessionOptions rbv uses for every model (see the module docstring)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    if DIRECTML in providers:
        # DirectML cannot run with memory patterns or parallel execution.
        options.enable_mem_pattern = False
    return options


PIXELS_INPUT = "rbv_pixels"


def graph_input(model: onnx.ModelProto) -> onnx.ValueInfoProto:
    """The model's image input: its first input that is not a weight (older exports
    list their weights among the inputs)."""
    initializers = {i.name for i in model.graph.initializer}
    return next(i for i in model.graph.input if i.name not in initializers)


def with_pixels_input(model: onnx.ModelProto, size: tuple[int, int], mean: float, *,
                      multiply: float | None = None, divide: float | None = None
                      ) -> onnx.ModelProto:
    """``model`` (a copy) taking B×H×W×3 uint8 RGB pixels of ``size`` (width, height)
    with any batch, for a GPU: ``(pixel - mean) × multiply`` (or ``/ divide``), the
    host's float pass over every pixel, moves into the graph, and the host sends a
    quarter of the bytes. Shapes the export fixed for one image (the batch axis, the
    outputs' rows) become free."""
    model = copy.deepcopy(model)
    graph = model.graph
    first = graph_input(model)
    graph.input.remove(first)
    width, height = size
    graph.input.insert(0, onnx.helper.make_tensor_value_info(
        PIXELS_INPUT, onnx.TensorProto.UINT8, ["batch", height, width, 3]))
    steps = [
        onnx.helper.make_node("Cast", [PIXELS_INPUT], ["rbv_float"], to=onnx.TensorProto.FLOAT),
        onnx.helper.make_node("Transpose", ["rbv_float"], ["rbv_step0"], perm=[0, 3, 1, 2]),
    ]
    for op, value in (("Sub", mean or None), ("Mul", multiply), ("Div", divide)):
        if value is not None and (op == "Sub" or value != 1.0):
            name = f"rbv_{op.lower()}"
            graph.initializer.append(
                onnx.numpy_helper.from_array(np.array(value, np.float32), name))
            steps.append(onnx.helper.make_node(op, [steps[-1].output[0], name],
                                               [f"rbv_step{len(steps) - 1}"]))
    steps[-1].output[0] = first.name
    for i, node in enumerate(steps):
        graph.node.insert(i, node)
    del graph.value_info[:]  # shapes inferred for one image; the runtime infers again
    for output in graph.output:
        for axis, dim in enumerate(output.type.tensor_type.shape.dim[:-1]):
            dim.dim_param = f"rows{axis}"
    return model


def open_session(
    model: Path | bytes,
    providers: Sequence[str],
    *,
    threads: int | None = None,
    name: str = "",
    device_id: int | None = None,
) -> ort.InferenceSession:
    """An InferenceSession for ``model`` (a file, or serialized ONNX bytes), on GPU
    ``device_id`` of the first provider when given (else the provider's default, 0).

    Raises :class:`ModelPackError` when ONNX Runtime refuses the model.
    """
    source = str(model) if isinstance(model, Path) else model
    if CUDA in providers:
        load_cuda_libraries()
    chosen: list[str | tuple[str, dict[str, str]]] = list(providers)
    if device_id is not None and providers and providers[0] in (CUDA, DIRECTML):
        chosen[0] = (providers[0], {"device_id": str(device_id)})
    try:
        return ort.InferenceSession(
            source, sess_options=session_options(threads, providers), providers=chosen
        )
    except Exception as exc:  # ORT raises its own exception types (Fail, InvalidGraph, ...)
        label = name or (str(model) if isinstance(model, Path) else "model")
        raise ModelPackError(
            f"ONNX Runtime cannot load {label}: {str(exc).splitlines()[0][:300]}"
        ) from None

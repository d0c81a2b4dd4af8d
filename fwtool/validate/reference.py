"""Validate's host reference: the outputs the model should give for the same input vectors.

``tflm`` (default): the TFLM Python interpreter (fwtool/model/host.py; reference kernels), run in a child process
so that a native crash on a malformed model is one error (exit 3) instead of the end of fwtool. ``tflite``:
TensorFlow Lite with its reference kernels (BUILTIN_REF: no XNNPACK, whose int8 results may differ).
"""
from __future__ import annotations

import os

import numpy as np

from fwtool.core.errors import BadInput, FwtoolError, MissingTool
from fwtool.model import host
from fwtool.model.tflite import Model

BACKENDS = ("tflm", "tflite")


def _per_input(model: Model, vectors) -> list[np.ndarray]:
    """``vectors`` as one (N, *shape) array per model input: an array alone is input 0's (single-input models)."""
    arrays = [vectors] if isinstance(vectors, np.ndarray) else list(vectors)
    return [np.ascontiguousarray(a).reshape(len(a), *t.shape) for a, t in zip(arrays, model.inputs)]


def reference_outputs(model: Model, vectors, backend: str = "tflm") -> list[list[np.ndarray]]:
    """Per vector, per output tensor: the flattened integer outputs of the host interpreter. ``vectors``: one
    array per model input (N vectors each), or one array for a single-input model."""
    if backend == "tflm":
        return tflm_outputs(model, vectors)
    if backend == "tflite":
        return tflite_outputs(model, vectors)
    raise BadInput(f"unknown reference '{backend}'", "use --reference tflm or --reference tflite")


def tflm_outputs(model: Model, vectors) -> list[list[np.ndarray]]:
    shaped = _per_input(model, vectors)
    try:
        raw = host.contained_outputs(model.data, shaped, len(model.outputs))
    except host.InterpreterFailed as e:
        raise FwtoolError(f"the TFLM reference interpreter could not run {model.path.name}: {e.detail}",
                          "check the model with 'fwtool inspect'") from e
    return [[np.asarray(o).reshape(-1).astype(np.int64) for o in per] for per in raw]


def tflite_outputs(model: Model, vectors) -> list[list[np.ndarray]]:
    """TensorFlow Lite with its reference kernels (BUILTIN_REF: no XNNPACK, whose int8 results may differ)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with host.quiet_native_output():
            import tensorflow as tf  # optional, heavy
            interp = tf.lite.Interpreter(
                model_content=model.data,
                experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    except ImportError as e:
        raise MissingTool("--reference tflite needs TensorFlow, which is not installed",
                          "pip install 'fwtool[tf]' (tensorflow-cpu), or use the default --reference tflm") from e
    interp.allocate_tensors()
    inp = interp.get_input_details()
    by_index = {d["index"]: d for d in interp.get_output_details()}
    in_index = [next((d["index"] for d in inp if d["index"] == t.index), inp[i]["index"])
                for i, t in enumerate(model.inputs)]
    per_input = _per_input(model, vectors)
    out = []
    for v in range(len(per_input[0])):
        for i, arr in enumerate(per_input):
            interp.set_tensor(in_index[i], arr[v].reshape(model.inputs[i].shape))
        interp.invoke()
        out.append([np.asarray(interp.get_tensor(by_index[t.index]["index"] if t.index in by_index else t.index))
                    .reshape(-1).astype(np.int64) for t in model.outputs])
    return out

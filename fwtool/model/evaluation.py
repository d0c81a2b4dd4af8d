"""Float vs int8: the int8 model's outputs from the host TFLM interpreter (the arithmetic the firmware runs), and
accuracy/agreement/|Δ| against the float model's outputs and optional labels (``fwtool quantize --eval``)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fwtool.core.errors import BadInput, FwtoolError
from fwtool.model import host
from fwtool.model.tflite import Model


def run_int8(model: Model, x: np.ndarray) -> np.ndarray:
    """Output 0 of the int8 model on float inputs ``x`` (quantized with the input's own scale/zero point),
    dequantized, from TFLM's interpreter (fwtool/model/host.py, in a child process: a native crash is one error):
    the same kernels' arithmetic the firmware runs."""
    ti, to = model.inputs[0], model.outputs[0]
    s_in, z_in = (ti.scale[0], ti.zero_point[0]) if ti.scale else (1.0, 0)
    s_out, z_out = (to.scale[0], to.zero_point[0]) if to.scale else (1.0, 0)
    info = np.iinfo(ti.numpy_dtype)
    q = np.clip(np.round(x / s_in) + z_in, info.min, info.max).astype(ti.numpy_dtype)
    try:
        raw = host.contained_outputs(model.data, q.reshape((len(x),) + tuple(ti.shape)), 1)
    except host.InterpreterFailed as e:
        raise FwtoolError(f"the TFLM interpreter could not run the int8 model: {e.detail}",
                          "check the converted model with 'fwtool inspect'; report this with your TensorFlow version") from e
    outs = [(per[0].astype(np.float32) - z_out) * s_out for per in raw]
    return np.stack(outs).reshape((len(x),) + tuple(to.shape[1:]))


def _predictions(out: np.ndarray, threshold: float | None) -> np.ndarray:
    flat = out.reshape(len(out), -1)
    if flat.shape[1] == 1:
        return (flat[:, 0] > threshold).astype(np.int64)
    return flat.argmax(axis=1)


def _labels(y: np.ndarray, n: int, classes: int, path: Path) -> np.ndarray:
    y = np.asarray(y)
    if len(y) != n:
        raise BadInput(f"{path.name} has {len(y)} labels but the evaluation inputs have {n} samples",
                       "give one label per input sample, in the same order")
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    y = y.reshape(n)
    if y.dtype.kind == "f" and not np.all(np.equal(np.mod(y, 1), 0)):
        if classes == 1:  # soft binary targets
            return (y > 0.5).astype(np.int64)
        raise BadInput(f"{path.name} has non-integer labels", "give class indices (0..K-1) or one-hot rows")
    return y.astype(np.int64)


def evaluate(float_out: np.ndarray, int8_out: np.ndarray, y: np.ndarray | None, y_path: Path | None) -> dict:
    delta = np.abs(float_out.astype(np.float64) - int8_out.astype(np.float64))
    res = {"samples": int(len(float_out)), "mean_abs_delta": float(delta.mean()), "max_abs_delta": float(delta.max())}
    if y is not None:
        classes = int(np.prod(float_out.shape[1:]))
        # one output: a probability (threshold 0.5) or, if the float outputs leave [0, 1], a logit (threshold 0)
        threshold = None
        if classes == 1:
            threshold = 0.5 if float_out.min() >= 0 and float_out.max() <= 1 else 0.0
        labels = _labels(y, len(float_out), classes, y_path or Path("labels"))
        fa = float((_predictions(float_out, threshold) == labels).mean() * 100)
        ia = float((_predictions(int8_out, threshold) == labels).mean() * 100)
        res.update({"float_accuracy": round(fa, 4), "int8_accuracy": round(ia, 4), "accuracy_drop": round(fa - ia, 4),
                    "agreement": round(float((_predictions(float_out, threshold)
                                              == _predictions(int8_out, threshold)).mean() * 100), 4)})
        if threshold is not None:
            res["threshold"] = threshold
    return res

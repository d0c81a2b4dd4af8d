"""Keras training (deterministic with the seed, early stopping, class weights, per-epoch progress) and int8
conversion through ``fwtool quantize``'s fixed recipe, calibrated on training features.

The kws classifier's int8 input must be the preprocessor's output as it is (scale 26/256, zero point -128; the
firmware copies feature bytes straight into the input tensor). The converter picks the input quantization from the
calibration data's range, so the calibration set carries the two ends of the preprocessor's range (int8 -128 and
127 as floats 0 and 25.9); the result is checked before it is written.
"""
from __future__ import annotations

import io
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from fwtool.audio.params import KWS_INPUT_SCALE, KWS_INPUT_ZERO_POINT, FrontEnd
from fwtool.core.errors import FwtoolError
from fwtool.model import host
from fwtool.model.quantize import QuantizeOptions, import_tf, quantize
from fwtool.model.tflite import parse_model

CALIBRATION_SAMPLES = 300


def class_weights(y: np.ndarray, n: int) -> dict[int, float]:
    """Inverse-frequency weights (mean 1 over the samples), so a small class counts as much as a big one."""
    counts = np.bincount(y, minlength=n).astype(np.float64)
    w = np.where(counts > 0, len(y) / (n * np.maximum(counts, 1)), 0.0)
    return {i: float(w[i]) for i in range(n)}


def setup(seed: int):
    tf = import_tf()
    tf.keras.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # older TF: determinism comes from TF_DETERMINISTIC_OPS alone
        pass
    return tf


def train(tf, model, x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, n_classes: int, epochs: int,
          batch: int, patience: int, lr: float,
          on_batch: Callable[[int, int, int, dict], None] = lambda e, b, n, logs: None,
          on_epoch: Callable[[int, dict], None] = lambda e, logs: None) -> dict:
    """Fit with Adam, sparse categorical cross-entropy, class weights, early stopping on validation loss (best
    weights restored). Returns the history (per-epoch loss/accuracy, train and validation)."""
    keras = tf.keras
    steps = int(np.ceil(len(x) / batch))

    class Progress(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, b, logs=None):
            on_batch(self.epoch, b + 1, steps, dict(logs or {}))

        def on_epoch_end(self, epoch, logs=None):
            on_epoch(epoch, {k: float(v) for k, v in (logs or {}).items()})

    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience, restore_best_weights=True)
    with tempfile.TemporaryDirectory(prefix="fwtool-train-log-") as logdir, \
            host.quiet_native_output(Path(logdir) / "tensorflow.log"):
        hist = model.fit(x, y, batch_size=batch, epochs=epochs, validation_data=(xv, yv), shuffle=True,
                         class_weight=class_weights(y, n_classes), callbacks=[stop, Progress()], verbose=0)
    h = {k: [round(float(v), 5) for v in vals] for k, vals in hist.history.items()}
    h["epochs_run"] = len(h.get("loss", []))
    h["best_epoch"] = int(np.argmin(h["val_loss"])) + 1 if h.get("val_loss") else h["epochs_run"]
    return h


def predict(model, x: np.ndarray) -> np.ndarray:
    return np.concatenate([np.asarray(model(x[i:i + 256], training=False)) for i in range(0, len(x), 256)]) \
        if len(x) else np.zeros((0, int(model.outputs[0].shape[-1])), np.float32)


def calibration(x: np.ndarray, fe: FrontEnd, n: int = CALIBRATION_SAMPLES) -> np.ndarray:
    """``n`` training inputs spread over the set; for kws with the preprocessor's range ends pinned."""
    idx = np.unique(np.linspace(0, len(x) - 1, min(n, len(x))).round().astype(np.int64))
    rep = np.array(x[idx], np.float32, copy=True)
    if fe.app == "kws":
        rep.reshape(len(rep), -1)[0, 0] = (-128 - KWS_INPUT_ZERO_POINT) * KWS_INPUT_SCALE  # 0.0
        rep.reshape(len(rep), -1)[-1, -1] = (127 - KWS_INPUT_ZERO_POINT) * KWS_INPUT_SCALE  # 25.898
    return rep


def to_int8(tf, model, x_train: np.ndarray, fe: FrontEnd, workdir: Path,
            on_step: Callable[[str], None] = lambda s: None) -> tuple[bytes, dict]:
    """The int8 .tflite (bytes) and fwtool quantize's report; kws input quantization checked."""
    keras_path, rep_path = workdir / "model.keras", workdir / "calibration.npy"
    model.save(keras_path)
    rep = calibration(x_train, fe)
    buf = io.BytesIO()
    np.save(buf, rep, allow_pickle=False)
    rep_path.write_bytes(buf.getvalue())
    data, report = quantize(QuantizeOptions(model=keras_path, representative=rep_path, samples=len(rep),
                                            output=workdir / "model_int8.tflite"), on_step)
    if not report["tflm"]["ok"]:
        raise FwtoolError(f"the int8 model would not build: {report['tflm']['error']}", report["tflm"]["fix"])
    if fe.app == "kws":
        m = parse_model(data, workdir / "model_int8.tflite")
        t = m.inputs[0]
        scale, zp = (t.scale[0], t.zero_point[0]) if t.scale else (0.0, 0)
        if zp != KWS_INPUT_ZERO_POINT or abs(scale - KWS_INPUT_SCALE) > 1e-6:
            raise FwtoolError(f"the converted kws model's input is quantized with scale {scale:.6g} and zero point "
                              f"{zp}, not the preprocessor's {KWS_INPUT_SCALE:.6g} / {KWS_INPUT_ZERO_POINT}; "
                              "fwtool build --app kws would refuse it, so nothing was written",
                              "report this with your TensorFlow version (the calibration pins the range)")
    return data, report

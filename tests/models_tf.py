"""Tiny Keras models trained on synthetic data for the quantize/inspect tests (a few seconds on CPU).

Everything is made once per test process (``functools.lru_cache`` into one temp folder) and shared by
tests/test_quantize*.py and tests/test_inspect*.py. ``tf()`` skips the calling test when TensorFlow is absent.
Also: schema-level .tflite variants that need no TensorFlow (a model with another input shape) and an
in-process CLI runner that returns (exit code, stdout, stderr) exactly as a shell would see them.
"""
from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

import modelgen

FIRE_SHAPE = (124, 129, 1)  # the fire alarm tutorial's spectrogram (int8 [1,124,129,1] on the device)
DENSE_FEATURES, DENSE_CLASSES = 16, 3


@lru_cache(maxsize=None)
def workdir() -> Path:
    d = Path(tempfile.mkdtemp(prefix="fwtool-tf-tests-"))
    atexit.register(shutil.rmtree, d, True)
    return d


def tf():
    """TensorFlow (imported the way fwtool imports it), or skip the test saying why."""
    from fwtool.core.errors import MissingTool
    from fwtool.model.quantize import import_tf

    try:
        return import_tf()
    except MissingTool:
        pytest.skip("tensorflow is not installed (pip install 'fwtool[tf]'; .ci/run installs it)")


# ---------------------------------------------------------------------------------------------- synthetic data

def spectrograms(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Fire-alarm-like task: class 1 has a loud tone (3 frequency bins, a time segment) over noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0.0, 1.0, (n,) + FIRE_SHAPE).astype(np.float32)
    y = (np.arange(n) % 2).astype(np.int64)
    for i in np.flatnonzero(y):
        t0 = rng.integers(0, 60)
        x[i, t0:t0 + 60, 40:43, 0] += 4.0
    return x, y


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three Gaussian blobs in 16-D (the dense net's task)."""
    rng = np.random.default_rng(seed)
    centers = np.random.default_rng(1234).normal(0, 2.5, (DENSE_CLASSES, DENSE_FEATURES))
    y = np.arange(n) % DENSE_CLASSES
    x = (centers[y] + rng.normal(0, 1.0, (n, DENSE_FEATURES))).astype(np.float32)
    return x, y.astype(np.int64)


def save(name: str, arr: np.ndarray) -> Path:
    p = workdir() / name
    np.save(p, arr)
    return p


# -------------------------------------------------------------------------------------------------- models

def _seed(t) -> None:
    t.keras.utils.set_random_seed(0)


@lru_cache(maxsize=None)
def conv_model() -> dict:
    """Conv2D(4, 3x3, stride 2) → MaxPool 2x2 → Flatten → Dense(1, sigmoid) on 124x129x1; trained 4 epochs."""
    t = tf()
    _seed(t)
    keras = t.keras
    x, y = spectrograms(240, seed=1)
    m = keras.Sequential([keras.Input(FIRE_SHAPE), keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
                          keras.layers.MaxPooling2D(2), keras.layers.Flatten(),
                          keras.layers.Dense(1, activation="sigmoid")])
    m.compile(keras.optimizers.Adam(0.01), "binary_crossentropy", metrics=["accuracy"])
    m.fit(x, y, epochs=4, batch_size=32, verbose=0, shuffle=False)
    path = workdir() / "conv.keras"
    m.save(path)
    ex, ey = spectrograms(120, seed=2)
    return {"keras": path, "model": m, "rep": save("conv_rep.npy", x), "eval_x": save("conv_eval_x.npy", ex),
            "eval_y": save("conv_eval_y.npy", ey), "x": x, "y": y}


@lru_cache(maxsize=None)
def dense_model() -> dict:
    """Dense(16, relu) → Dense(3, softmax) on 16 features; trained 30 epochs."""
    t = tf()
    _seed(t)
    keras = t.keras
    x, y = blobs(300, seed=3)
    m = keras.Sequential([keras.Input((DENSE_FEATURES,)), keras.layers.Dense(16, activation="relu"),
                          keras.layers.Dense(DENSE_CLASSES, activation="softmax")])
    m.compile(keras.optimizers.Adam(0.02), "sparse_categorical_crossentropy", metrics=["accuracy"])
    m.fit(x, y, epochs=30, batch_size=32, verbose=0, shuffle=False)
    path = workdir() / "dense.keras"
    m.save(path)
    ex, ey = blobs(150, seed=4)
    return {"keras": path, "model": m, "rep": save("dense_rep.npy", x), "eval_x": save("dense_eval_x.npy", ex),
            "eval_y": save("dense_eval_y.npy", ey)}


@lru_cache(maxsize=None)
def big_flash_model() -> Path:
    """Untrained Dense(1024 → 2048) → Dense(1): 2,101,249 int8 weights, too big for the Pico's 2 MiB flash."""
    t = tf()
    _seed(t)
    keras = t.keras
    m = keras.Sequential([keras.Input((1024,)), keras.layers.Dense(2048, activation="relu"), keras.layers.Dense(1)])
    path = workdir() / "big_flash.keras"
    m.save(path)
    save("big_flash_rep.npy", np.random.default_rng(5).normal(0, 1, (100, 1024)).astype(np.float32))
    return path


@lru_cache(maxsize=None)
def big_ram_model() -> Path:
    """Untrained Conv2D(32, 3x3, same) on 96x96x8: a 294,912-byte activation, too big for the Pico's RAM."""
    t = tf()
    _seed(t)
    keras = t.keras
    m = keras.Sequential([keras.Input((96, 96, 8)), keras.layers.Conv2D(32, 3, padding="same"),
                          keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    path = workdir() / "big_ram.keras"
    m.save(path)
    save("big_ram_rep.npy", np.random.default_rng(6).normal(0, 1, (100, 96, 96, 8)).astype(np.float32))
    return path


@lru_cache(maxsize=None)
def quantized(name: str) -> Path:
    """The int8 .tflite of one of the models above (fwtool.quantize, default recipe)."""
    from fwtool.model.quantize import QuantizeOptions, quantize_to_file

    src = {"conv": lambda: conv_model()["keras"], "dense": lambda: dense_model()["keras"],
           "big_flash": big_flash_model, "big_ram": big_ram_model}[name]()
    out = workdir() / f"{name}_int8.tflite"
    quantize_to_file(QuantizeOptions(model=src, representative=workdir() / f"{name}_rep.npy", output=out))
    return out


# ------------------------------------------------------------------------------------- no-TensorFlow helpers

def reshaped_input_model(shape: list[int]) -> bytes:
    """fire_alarm with input 0 declared as ``shape`` (only for checks that run before the interpreter)."""
    m = modelgen.load()
    sg = m.subgraphs[0]
    sg.tensors[sg.inputs[0]].shape = np.array(shape, dtype=np.int32)
    return modelgen.pack(m)


def app_resource_dir(tmp_path: Path, shape: list[int] | None, dtype: str = "int8", name: str = "audio"):
    """A stand-in for fwtool.firmware.apps.resource_dir: the apps are 'inference' plus ``name``, which declares the
    input ``shape``/``dtype`` (a tmp folder; the product templates stay untouched, the common layer is shared)."""
    from fwtool.core.paths import resource_dir

    root = tmp_path / "templates"
    real = resource_dir("templates")
    for app, toml in (("inference", (real / "apps/inference/app.toml").read_text()),
                      (name, 'description = "test app consuming a fixed feature layout"\nsources = ["main.cpp"]\n' + (
                          f'[input]\nshape = {list(shape)}\ndtype = "{dtype}"\n' if shape is not None else ""))):
        (root / "apps" / app).mkdir(parents=True, exist_ok=True)
        (root / "apps" / app / "app.toml").write_text(toml)
    (root / "apps" / "inference" / "main.cpp.j2").write_text((real / "apps/inference/main.cpp.j2").read_text())
    (root / "apps" / name / "main.cpp.j2").write_text((real / "apps/inference/main.cpp.j2").read_text())
    if not (root / "common").exists():
        (root / "common").symlink_to(real / "common", target_is_directory=True)
    return lambda what: root if what == "templates" else resource_dir(what)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``fwtool ARGS`` in-process: (exit code, stdout, stderr)."""
    from fwtool.cli import main

    capsys.readouterr()
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


# ------------------------------------------------------------------------- coverage corpus (issue 13, part 2)
# Small Keras models, one per group of op families users meet; each is converted to int8 and (where the TFLite
# converter supports it) 16x8, built for pico and validated on the virtual board by tests/test_coverage_corpus.py,
# which also writes docs/model-coverage.md's coverage table. Generated .tflite files are cached under the per-user cache,
# keyed by the TensorFlow version and the source of the generator functions below.

SCHEMES = ("int8", "16x8")


def _corpus_conv(keras):
    """Conv2D, BatchNorm (folded), ReLU6, DepthwiseConv2D, SeparableConv2D, MaxPool, AvgPool, Mean, Dense, Softmax."""
    L = keras.layers
    x = inp = keras.Input((12, 12, 3), batch_size=1)
    x = L.ReLU(6.0)(L.BatchNormalization()(L.Conv2D(6, 3, padding="same")(x)))
    x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = L.SeparableConv2D(8, 3, padding="same")(x)
    x = L.AveragePooling2D(2)(L.MaxPooling2D(2, strides=1)(x))
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inp, L.Softmax()(L.Dense(4)(x)))


def _corpus_conv1d_act(keras):
    """Conv1D, LeakyReLU, hard-swish, tanh, sigmoid, Dense."""
    L = keras.layers
    x = inp = keras.Input((24, 4), batch_size=1)
    x = L.LeakyReLU(0.1)(L.Conv1D(8, 3)(x))
    x = L.Activation("hard_swish")(L.Conv1D(8, 3)(x))
    x = L.Activation("tanh")(L.Conv1D(4, 3, strides=2)(x))
    return keras.Model(inp, L.Dense(2, activation="sigmoid")(L.Flatten()(x)))


def _corpus_shape(keras):
    """Pad, Transpose, Reshape, StridedSlice, Resize (bilinear, nearest), Mean, Dense."""
    L = keras.layers
    x = inp = keras.Input((6, 6, 4), batch_size=1)
    x = L.Permute((2, 1, 3))(L.ZeroPadding2D(1)(x))  # PAD, TRANSPOSE
    x = L.Reshape((8, 32))(x)[:, 2:6, :]  # RESHAPE, STRIDED_SLICE
    x = L.Reshape((4, 8, 4))(x)
    x = L.Resizing(12, 20, interpolation="nearest")(L.UpSampling2D(2, interpolation="bilinear")(x))
    return keras.Model(inp, L.Dense(3)(L.GlobalAveragePooling2D()(x)))


def _corpus_multi_io(keras):
    """Two inputs, two outputs; Add, Multiply, Concatenate (multi-branch)."""
    L = keras.layers
    a, b = keras.Input((10,), batch_size=1, name="a"), keras.Input((6,), batch_size=1, name="b")
    ha, hb = L.Dense(8, activation="relu")(a), L.Dense(8, activation="relu")(b)
    joined = L.Concatenate()([L.Add()([ha, hb]), L.Multiply()([ha, hb])])
    return keras.Model([a, b], [L.Dense(3, activation="softmax")(joined), L.Dense(1)(ha)])


def _corpus_rnn_unrolled(keras):
    """GRU and LSTM unrolled over 5 steps (FULLY_CONNECTED, SPLIT, LOGISTIC, TANH, MUL, ADD, SUB, PACK/UNPACK)."""
    L = keras.layers
    x = inp = keras.Input((5, 4), batch_size=1)
    x = L.GRU(6, unroll=True, return_sequences=True)(x)
    return keras.Model(inp, L.Dense(2)(L.LSTM(6, unroll=True)(x)))


def _corpus_lstm_fused(keras):
    """A Keras 2 (tf_keras) LSTM: the converter fuses it into UNIDIRECTIONAL_SEQUENCE_LSTM (int8 only)."""
    L = keras.layers
    x = inp = keras.Input((8, 4), batch_size=1)
    return keras.Model(inp, L.Dense(3)(L.LSTM(6)(x)))


# name -> (op families shown in the table, builder, uses tf_keras)
CORPUS = {
    "conv": ("Conv2D / DepthwiseConv2D / SeparableConv, BatchNorm folded, ReLU6, pooling, Mean, Dense, softmax",
             _corpus_conv, False),
    "conv1d_act": ("Conv1D, LeakyReLU / hard-swish / tanh / sigmoid", _corpus_conv1d_act, False),
    "shape": ("Pad / Transpose / Reshape / StridedSlice, Resize (bilinear, nearest)", _corpus_shape, False),
    "multi_io": ("Add / Mul / Concatenate, multi-branch, 2 inputs + 2 outputs", _corpus_multi_io, False),
    "rnn_unrolled": ("GRU + LSTM, unrolled", _corpus_rnn_unrolled, False),
    "lstm_fused": ("LSTM fused (UNIDIRECTIONAL_SEQUENCE_LSTM)", _corpus_lstm_fused, True),
}


def corpus_key() -> str:
    """TensorFlow version + hash of the generator's source: the cache folder of the converted corpus."""
    import hashlib
    import inspect

    t = tf()
    src = "".join(inspect.getsource(f) for f in (*(c[1] for c in CORPUS.values()), _convert_corpus, corpus_tflite))
    return f"tf{t.__version__}-{hashlib.sha256(src.encode()).hexdigest()[:12]}"


def _convert_corpus(t, model, keras2: bool, scheme: str) -> bytes:
    specs = [t.TensorSpec(tuple(i.shape), t.float32, name=f"input_{n}") for n, i in enumerate(model.inputs)]
    rng = np.random.default_rng(0)

    def rep():
        for _ in range(64):
            arrays = [rng.normal(0, 1, tuple(s.shape)).astype(np.float32) for s in specs]
            yield arrays if keras2 or len(specs) == 1 else {s.name: a for s, a in zip(specs, arrays)}

    with tempfile.TemporaryDirectory(prefix="fwtool-corpus-") as tmp:
        if keras2:
            conv = t.lite.TFLiteConverter.from_keras_model(model)
        else:
            model.export(tmp, format="tf_saved_model", input_signature=specs if len(specs) == 1 else [specs],
                         verbose=False)
            conv = t.lite.TFLiteConverter.from_saved_model(tmp)
        conv.optimizations = [t.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        if scheme == "int8":
            conv.target_spec.supported_ops = [t.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = conv.inference_output_type = t.int8
        else:
            conv.target_spec.supported_ops = [
                t.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
            conv.inference_input_type = conv.inference_output_type = t.int16
            # pico-tflmicro's CMSIS-NN FULLY_CONNECTED takes per-channel weights with int8 input only (fwtool
            # refuses such 16x8 models naming this fix): per-tensor dense weights
            conv._experimental_disable_per_channel_quantization_for_dense_layers = True
        return bytes(conv.convert())


def corpus_tflite(name: str, scheme: str) -> tuple[Path | None, str]:
    """(the .tflite of corpus model ``name`` quantized ``scheme``, "") or (None, why the converter refused),
    cached under <fwtool cache>/test-corpus/<corpus_key()>/."""
    from fwtool.core.paths import cache_dir

    folder = cache_dir() / "test-corpus" / corpus_key()
    out, why = folder / f"{name}_{scheme}.tflite", folder / f"{name}_{scheme}.refused.txt"
    if out.is_file():
        return out, ""
    if why.is_file():
        return None, why.read_text()
    t = tf()
    _, build, keras2 = CORPUS[name]
    if keras2:
        try:
            import tf_keras as keras
        except ImportError:
            pytest.skip("tf_keras is not installed (pip install tf-keras): Keras 3 exports LSTM as WHILE, which the "
                        "TFLite calibrator cannot quantize")
    else:
        keras = t.keras
    keras.utils.set_random_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        data = _convert_corpus(t, build(keras), keras2, scheme)
    except Exception as e:  # the converter's refusal (e.g. no 16x8 kernel for an op) is a table entry
        text = str(e).strip().splitlines()
        msg = next((ln.strip() for ln in text if "not yet supported" in ln or "not supported" in ln),
                   text[-1].strip() if text else type(e).__name__)
        why.write_text(f"TFLite converter: {msg[:200]}")
        return None, why.read_text()
    tmp = out.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out, ""

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
    """A stand-in for fwtool.build.apps.resource_dir: the apps are 'inference' plus ``name``, which declares the
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

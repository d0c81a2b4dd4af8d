"""``fwtool quantize``: a Keras (.keras/.h5) or SavedModel model in, a full-integer int8 .tflite out.

TensorFlow is an optional extra (``pip install 'fwtool[tf]'``) and is imported only when a conversion really
runs: loading data, the content-hash cache and the int8 evaluation (TFLM's own interpreter) need only numpy.

The recipe is fixed, so the same model and data give byte-identical output:

* the model is re-traced with batch 1 (what the firmware runs; no dynamic-shape SHAPE/PACK ops);
* ``Optimize.DEFAULT`` + a representative dataset of ``samples`` inputs chosen evenly over the data
  (datasets are often sorted by class; the first N would calibrate one class only);
* ``TFLITE_BUILTINS_INT8`` only, ``inference_input_type = inference_output_type = tf.int8``.

Reading the data: fwtool/model/samples.py; float vs int8 evaluation: fwtool/model/evaluation.py.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from fwtool import __version__
from fwtool.core.errors import BadInput, Exit, FwtoolError, MissingTool
from fwtool.core import locks
from fwtool.core.files import atomic_write, file_sha256, read_json
from fwtool.core.paths import cache_dir
from fwtool.model import host
from fwtool.model.evaluation import evaluate, run_int8
from fwtool.model.samples import as_samples, load_arrays, pick
from fwtool.model.tflite import check_for_tflm, parse_model

DEFAULT_SAMPLES = 100
DEFAULT_MAX_DROP = 2.0  # percentage points
RECIPE = "int8-v1"  # bump when the conversion recipe changes (invalidates the build cache)
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
TF_FIX = "pip install 'fwtool[tf]'  (installs TensorFlow; tensorflow-cpu on Linux x86-64 and Windows), then re-run"


# ----------------------------------------------------------------------------------------------------- sources

def source_kind(path: Path) -> str | None:
    """'keras', 'savedmodel', 'tflite' or None (unknown) for a model path."""
    path = Path(path)
    if path.is_dir():
        return "savedmodel" if (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file() \
            else None
    suffix = path.suffix.lower()
    if suffix in KERAS_SUFFIXES:
        return "keras"
    if suffix == ".tflite":
        return "tflite"
    return None


def is_source_model(path: Path) -> bool:
    return source_kind(path) in ("keras", "savedmodel")


def model_stem(path: Path) -> str:
    path = Path(path)
    return path.name.rsplit(".", 1)[0] if path.suffix.lower() in (*KERAS_SUFFIXES, ".tflite") else path.name


def default_output(model_path: Path) -> Path:
    return Path(model_stem(model_path) + "_int8.tflite")


def quantize_command(source: str, out: str) -> str:
    return f"fwtool quantize {source} --representative DATA.npy -o {out}"


def import_tf():
    """Import TensorFlow quietly and deterministically, or say exactly how to get it."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # oneDNN reorders float sums: results vary by machine
    os.environ.setdefault("TF_DETERMINISTIC_OPS", "1")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tensorflow as tf
    except ImportError as e:
        raise MissingTool("TensorFlow is not installed, so fwtool cannot convert a Keras/SavedModel model",
                          TF_FIX) from e
    tf.get_logger().setLevel("ERROR")
    return tf


def tf_version() -> str | None:
    for dist in ("tensorflow-cpu", "tensorflow", "tf-nightly", "tensorflow-macos"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return f"{dist}=={importlib.metadata.version(dist)}"
    return None


# -------------------------------------------------------------------------------------------------- conversion

@dataclass
class Source:
    kind: str
    path: Path
    sample_shape: tuple[int, ...]
    dtype: str
    predict: Callable[[np.ndarray], np.ndarray]  # float model on a batch -> output 0 as numpy
    make_converter: Callable[[str], object]  # tmp dir -> tf.lite.TFLiteConverter for batch 1


def _first_error_line(e: Exception) -> str:
    """The one informative line of a TensorFlow/Keras/converter error (they run to pages of MLIR)."""
    text = str(e)
    m = re.search(r"TF Select ops: ([^\n]+)", text)
    if m:
        return f"TensorFlow op(s) {m.group(1).strip()} have no TFLite builtin kernel (TFLM has no TF Select)"
    m = re.search(r"'(tf\.\w+)' op is neither a custom op nor a flex op", text)
    if m:
        return f"{m.group(1)} has no TFLite builtin kernel"
    m = re.search(r"((?:Quantization not yet supported|Failed to quantize)[^\n]*)", text)
    if m:
        return m.group(1).strip()[:200]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = next((ln for ln in lines if "error:" in ln.lower()), lines[0] if lines else type(e).__name__)
    line = line.split("error:", 1)[-1].strip() if "error:" in line else line
    line = line.rsplit(")): ", 1)[-1]  # drop MLIR loc(...) prefixes
    if len(line) > 200 and ". " in line[:200]:
        line = line[:line.index(". ") + 1]
    return line[:200]


def _fill_shape(shape, data_shape: tuple[int, ...] | None, path: Path) -> tuple[int, ...]:
    dims = list(shape)[1:]
    if any(d is None for d in dims):
        if data_shape is not None and len(data_shape) == len(dims):
            dims = [int(d) if d is not None else int(s) for d, s in zip(dims, data_shape)]
        else:
            raise BadInput(f"{path.name} has input shape {tuple(shape)} with unknown dimensions; the firmware needs "
                           "a fixed shape", "build the model with keras.Input(shape=(…)) giving every dimension")
    return tuple(int(d) for d in dims)


def _first_output(out):
    if isinstance(out, dict):
        out = out[sorted(out)[0]]
    elif isinstance(out, (list, tuple)):
        out = out[0]
    return np.asarray(out)


def load_source(tf, path: Path, data_sample_shape: tuple[int, ...] | None = None) -> Source:
    path = Path(path)
    kind = source_kind(path)
    if kind == "keras":
        keras = tf.keras
        try:
            model = keras.models.load_model(path, compile=False)
        except Exception as e:
            fix = ("save it with model.save('model.keras') in the training notebook; custom layers must be "
                   "registered (keras.saving.register_keras_serializable) and importable")
            if "safe_mode" in str(e) or "Lambda" in str(e):
                fix = ("Keras will not load a Python lambda safely: export a SavedModel in the notebook "
                       "(model.export('saved_model')) and quantize that folder")
            raise BadInput(f"cannot load {path.name} as a Keras model: {_first_error_line(e)}", fix) from e
        inputs = getattr(model, "inputs", None) or []
        if len(inputs) != 1:
            raise BadInput(f"{path.name} has {len(inputs) or 'no fixed'} inputs; fwtool converts single-input models",
                           "export a model with exactly one input (the feature tensor the firmware feeds)")
        shape = _fill_shape(tuple(inputs[0].shape), data_sample_shape, path)
        dtype = str(getattr(inputs[0], "dtype", "float32")).replace("tf.", "")

        def predict(x: np.ndarray) -> np.ndarray:
            return np.concatenate([_first_output(model(x[i:i + 64], training=False))
                                   for i in range(0, len(x), 64)])

        def make_converter(tmp: str):
            spec = tf.TensorSpec((1,) + shape, dtype, name="input")
            model.export(tmp, format="tf_saved_model", input_signature=[spec], verbose=False)
            return tf.lite.TFLiteConverter.from_saved_model(tmp)

        return Source(kind, path, shape, dtype, predict, make_converter)
    if kind == "savedmodel":
        try:
            loaded = tf.saved_model.load(str(path))
        except Exception as e:
            raise BadInput(f"cannot load {path} as a SavedModel: {_first_error_line(e)}",
                           "export it with model.export(dir) or tf.saved_model.save(model, dir)") from e
        sigs = dict(getattr(loaded, "signatures", {}) or {})
        if not sigs:
            raise BadInput(f"SavedModel {path.name} has no serving signature",
                           "export with model.export(dir) (Keras) or tf.saved_model.save(m, dir, signatures=f)")
        sig = sigs.get("serving_default") or sigs[sorted(sigs)[0]]
        specs = sig.structured_input_signature[1]
        if len(specs) != 1:
            raise BadInput(f"SavedModel {path.name} has {len(specs)} inputs; fwtool converts single-input models",
                           "export a signature with exactly one input")
        (name, spec_in), = specs.items()
        shape = _fill_shape(tuple(spec_in.shape), data_sample_shape, path)
        dtype = spec_in.dtype.name

        def call(a):
            return _first_output_tf(sig(**{name: a}))

        def predict(x: np.ndarray) -> np.ndarray:
            return np.concatenate([np.asarray(call(tf.constant(x[i:i + 64], dtype=dtype)))
                                   for i in range(0, len(x), 64)])

        def make_converter(tmp: str):
            fn = tf.function(call).get_concrete_function(tf.TensorSpec((1,) + shape, dtype, name="input"))
            return tf.lite.TFLiteConverter.from_concrete_functions([fn], loaded)

        return Source(kind, path, shape, dtype, predict, make_converter)
    raise BadInput(f"{path} is not a Keras (.keras/.h5) file or a SavedModel folder",
                   "pass the model saved by model.save('model.keras') or model.export('saved_model_dir')")


def _first_output_tf(out):
    if isinstance(out, dict):
        return out[sorted(out)[0]]
    if isinstance(out, (list, tuple)):
        return out[0]
    return out


def convert(tf, source: Source, rep: np.ndarray, log_path: Path) -> bytes:
    with tempfile.TemporaryDirectory(prefix="fwtool-quantize-") as tmp, host.quiet_native_output(log_path):
        try:
            conv = source.make_converter(tmp)
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            conv.representative_dataset = lambda: ([s[None]] for s in rep)
            conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            conv.inference_input_type = tf.int8
            conv.inference_output_type = tf.int8
            return bytes(conv.convert())
        except FwtoolError:
            raise
        except Exception as e:
            raise BadInput(f"the TFLite converter could not make a full-integer int8 model of {source.path.name}: "
                           f"{_first_error_line(e)}",
                           "replace the layers it names with ones that have int8 kernels (Conv2D, Dense, pooling, "
                           "ReLU, Softmax…); 'fwtool inspect' lists what TFLM supports") from e


# ------------------------------------------------------------------------------------------------------ driver

@dataclass
class QuantizeOptions:
    model: Path
    representative: Path
    output: Path | None = None
    samples: int = DEFAULT_SAMPLES
    eval_x: Path | None = None
    eval_y: Path | None = None
    max_accuracy_drop: float = DEFAULT_MAX_DROP


def _check_source_exists(path: Path) -> None:
    if not path.exists():
        raise BadInput(f"model {path} does not exist", "pass the .keras/.h5 file or SavedModel folder from training")
    kind = source_kind(path)
    if kind == "tflite":
        raise BadInput(f"{path.name} is already a .tflite; the converter needs the model it was exported from",
                       f"run: {quantize_command(path.with_suffix('.keras').as_posix(), path.stem + '_int8.tflite')} "
                       "(the .keras/.h5 file or SavedModel folder from training)")
    if kind is None:
        raise BadInput(f"{path} is not a Keras (.keras/.h5) file or a SavedModel folder (no saved_model.pb)",
                       "pass the model saved by model.save('model.keras') or model.export('saved_model_dir')")


def quantize(opts: QuantizeOptions, on_step: Callable[[str], None] = lambda s: None) -> tuple[bytes, dict]:
    """Convert and (optionally) evaluate; returns (tflite bytes, report). Writes nothing."""
    t0 = time.monotonic()
    model_path = Path(opts.model)
    _check_source_exists(model_path)
    on_step("reading the representative data")
    rep_arrays = load_arrays(opts.representative, "representative data")
    eval_arrays = load_arrays(opts.eval_x, "evaluation inputs") if opts.eval_x else None
    y = None
    if opts.eval_y is not None:
        y_list = load_arrays(opts.eval_y, "evaluation labels")
        y = np.concatenate([a for _, a in y_list]) if len(y_list) > 1 else y_list[0][1]
    on_step("loading TensorFlow")
    tf = import_tf()
    with contextlib.suppress(Exception):
        tf.random.set_seed(0)
    on_step(f"loading {model_path.name}")
    data_shape = tuple(rep_arrays[0][1].shape[1:]) if rep_arrays[0][1].ndim > 1 else None
    with tempfile.TemporaryDirectory(prefix="fwtool-quantize-log-") as logdir:
        log_path = Path(logdir) / "tensorflow.log"
        with host.quiet_native_output(log_path):
            source = load_source(tf, model_path, data_shape)
        rep_all = as_samples(rep_arrays, source.sample_shape, "representative data")
        rep = pick(rep_all, opts.samples, str(opts.representative))
        on_step(f"converting to int8 ({len(rep)} calibration samples)")
        data = convert(tf, source, rep, log_path)
    model = parse_model(data, Path(opts.output or default_output(model_path)))
    for t in (model.inputs[0], model.outputs[0]):
        if t.dtype != "INT8":  # the converter honours inference_*_type; this guards against a TF regression
            raise FwtoolError(f"the converter produced a {t.dtype.lower()} tensor '{t.name}' instead of int8",
                              "report this with your TensorFlow version (" + (tf_version() or "?") + ")")
    report: dict = {
        "source": {"path": str(model_path), "kind": source.kind, "input_shape": list(source.sample_shape),
                   "input_dtype": source.dtype},
        "representative": {"path": str(opts.representative), "available": int(len(rep_all)),
                           "used": int(len(rep))},
        "model": model.to_dict(), "ops": model.op_names, "tensorflow": tf_version(), "recipe": RECIPE,
    }
    try:
        check_for_tflm(model)
        report["tflm"] = {"ok": True}
    except FwtoolError as e:
        report["tflm"] = {"ok": False, "error": e.cause, "fix": e.fix}
    if eval_arrays is not None:
        if len(model.outputs) != 1:
            raise BadInput(f"--eval compares one output, but {model_path.name} has {len(model.outputs)}",
                           "quantize without --eval, then check each output with 'fwtool validate'")
        on_step("evaluating float vs int8")
        x = as_samples(eval_arrays, source.sample_shape, "evaluation inputs")
        float_out = source.predict(x).reshape((len(x),) + tuple(model.outputs[0].shape[1:]))
        int8_out = run_int8(model, x)
        ev = evaluate(float_out, int8_out, y, opts.eval_y)
        ev["max_accuracy_drop"] = opts.max_accuracy_drop
        report["eval"] = ev
        if "accuracy_drop" in ev and ev["accuracy_drop"] > opts.max_accuracy_drop:
            raise FwtoolError(
                f"int8 accuracy {ev['int8_accuracy']:.1f}% is {ev['accuracy_drop']:.1f} points below float "
                f"{ev['float_accuracy']:.1f}% (limit {opts.max_accuracy_drop:g}); {model.path.name} not written",
                "calibrate with more varied --representative data (all classes, --samples), train with "
                f"quantization-aware training, or accept it with --max-accuracy-drop {ev['accuracy_drop'] + 0.5:.1f}",
                code=Exit.MISMATCH)
    report["seconds"] = round(time.monotonic() - t0, 2)
    return data, report


def quantize_to_file(opts: QuantizeOptions, on_step: Callable[[str], None] = lambda s: None) -> dict:
    out = Path(opts.output or default_output(opts.model))
    data, report = quantize(QuantizeOptions(**{**opts.__dict__, "output": out}), on_step)
    atomic_write(out, data)
    report["output"] = str(out)
    return report


# ------------------------------------------------------------------------------------------------------- cache

def _hash_path(h, path: Path) -> None:
    path = Path(path)
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f.relative_to(path).as_posix().encode() + b"\0")
            h.update(hashlib.sha256(f.read_bytes()).digest())
    else:
        h.update(hashlib.sha256(path.read_bytes()).digest())


def cache_key(model: Path, representative: Path, samples: int) -> str:
    h = hashlib.sha256()
    h.update(json.dumps({"recipe": RECIPE, "fwtool": __version__, "tf": tf_version(), "samples": samples}).encode())
    _hash_path(h, model)
    h.update(b"\0data\0")
    _hash_path(h, representative)
    return h.hexdigest()


def cached_quantize(model: Path, representative: Path, samples: int = DEFAULT_SAMPLES,
                    on_step: Callable[[str], None] = lambda s: None) -> tuple[Path, bool]:
    """The int8 .tflite for (model, data), converted once per content hash into cache_dir()/models/.

    Returns (path, cache_hit). The file is named after the source model, so build reports keep its name.
    """
    model, representative = Path(model), Path(representative)
    _check_source_exists(model)
    if not representative.exists():
        raise BadInput(f"representative data {representative} does not exist",
                       "pass a .npy/.npz file or a folder of them")
    key = cache_key(model, representative, samples)
    stem = model_stem(model)
    folder = cache_dir() / "models" / key[:24]
    out = folder / f"{stem}.tflite"
    record = folder / "quantize.json"

    def cached() -> bool:  # the entry counts only when its record names the model's exact bytes (never a damaged one)
        rec = read_json(record)
        try:
            return isinstance(rec, dict) and out.is_file() and rec.get("output_sha256") == file_sha256(out)
        except OSError:
            return False

    if cached():
        return out, True
    # one conversion per entry (core/locks.py): a second process waits, then finds it converted
    with locks.hold(locks.sibling_lock(folder), f"the int8 conversion of {model.name} in the cache"):
        if cached():
            return out, True
        data, report = quantize(QuantizeOptions(model=model, representative=representative, output=out,
                                                samples=samples), on_step)
        atomic_write(out, data)
        report["output_sha256"] = hashlib.sha256(data).hexdigest()
        atomic_write(record, json.dumps(report, indent=2, default=str).encode())  # last: the entry is complete
    return out, False


def tflite_for_build(model: Path, representative: Path | None, notes: list[str],
                     on_step: Callable[[str], None] = lambda s: None) -> Path:
    """What ``fwtool build --model`` loads: the .tflite itself, or the cached int8 conversion of a Keras model."""
    model = Path(model)
    kind = source_kind(model) if model.exists() else None
    if kind in ("keras", "savedmodel"):
        if representative is None:
            stem = model_stem(model)
            raise BadInput(f"{model.name} is a {'Keras' if kind == 'keras' else 'SavedModel'} model, not an int8 "
                           ".tflite; quantizing it needs representative inputs",
                           f"add --representative DATA.npy to this build, or run: "
                           f"{quantize_command(str(model), stem + '_int8.tflite')}")
        path, hit = cached_quantize(model, representative, on_step=on_step)
        notes.append(f"model {model.name} quantized to int8 with {representative.name} "
                     f"({'cached' if hit else 'converted now'}: {path})")
        return path
    if representative is not None:
        raise BadInput(f"--representative quantizes a Keras/SavedModel model, but {model.name} is not one",
                       "pass the .keras/.h5 file or SavedModel folder as --model, or drop --representative")
    return model

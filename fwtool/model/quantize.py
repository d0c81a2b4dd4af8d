"""``fwtool quantize``: a Keras (.keras/.h5) or SavedModel model in, a full-integer int8 .tflite out.

TensorFlow is an optional extra (``pip install 'fwtool[tf]'``) and is imported only when a conversion really
runs: loading data, the content-hash cache and the int8 evaluation (TFLM's own interpreter) need only numpy.

The recipe is fixed, so the same model and data give byte-identical output:

* the model is re-traced with batch 1 (what the firmware runs; no dynamic-shape SHAPE/PACK ops);
* ``Optimize.DEFAULT`` + a representative dataset of ``samples`` inputs chosen evenly over the data
  (datasets are often sorted by class; the first N would calibrate one class only);
* ``TFLITE_BUILTINS_INT8`` only, ``inference_input_type = inference_output_type = tf.int8``.
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
from fwtool.model.tflite import Model, check_for_tflm, parse_model
from fwtool.core.paths import cache_dir

DEFAULT_SAMPLES = 100
DEFAULT_MAX_DROP = 2.0  # percentage points
RECIPE = "int8-v1"  # bump when the conversion recipe changes (invalidates the build cache)
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
DATA_SUFFIXES = (".npy", ".npz")
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


# -------------------------------------------------------------------------------------------------------- data

def _fmt(shape) -> str:
    return "x".join(str(d) for d in shape) or "scalar"


def _load_one(path: Path) -> np.ndarray:
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                if "x" in keys:
                    return z["x"]
                if len(keys) == 1:
                    return z[keys[0]]
                raise BadInput(f"{path.name} holds arrays {', '.join(keys)}; fwtool does not know which are the inputs",
                               "name the input array 'x' (numpy.savez(path, x=inputs)) or save it alone as .npy")
        return np.load(path, allow_pickle=False)
    except BadInput:
        raise
    except Exception as e:
        raise BadInput(f"cannot read {path} as a numpy array ({type(e).__name__})",
                       "save inputs with numpy.save()/numpy.savez(); pickled objects are not accepted") from e


def load_arrays(path: Path, what: str) -> list[tuple[Path, np.ndarray]]:
    """Arrays from a .npy/.npz file or every .npy/.npz under a folder (sorted by path)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
        if not files:
            raise BadInput(f"{what} folder {path} has no .npy/.npz files", "put the input arrays there as .npy files")
    elif path.is_file():
        if path.suffix.lower() not in DATA_SUFFIXES:
            raise BadInput(f"{what} {path.name} is not a .npy/.npz file",
                           "save the inputs with numpy.save('data.npy', x) (shape N x the model's input)")
        files = [path]
    else:
        raise BadInput(f"{what} {path} does not exist", "pass a .npy/.npz file or a folder of them")
    return [(f, _load_one(f)) for f in files]


def _squeezed(shape) -> list[int]:
    return [int(d) for d in shape if d != 1]


def as_samples(arrays: list[tuple[Path, np.ndarray]], sample_shape: tuple[int, ...], what: str) -> np.ndarray:
    """Stack arrays into (N, *sample_shape) float32; a file may hold one sample or a batch of them.

    Size-1 axes may differ (124x129 data for a 124x129x1 input); anything else is refused naming both shapes.
    """
    want = tuple(int(d) for d in sample_shape)
    out = []
    for path, arr in arrays:
        if arr.dtype.kind not in "fiub":
            raise BadInput(f"{what} {path.name} has dtype {arr.dtype}, not numbers",
                           "save a numeric array (float32 as fed to the model in training)")
        shape = tuple(arr.shape)
        if shape[1:] == want:
            batch = arr
        elif shape == want:
            batch = arr[None]
        elif len(shape) >= 1 and _squeezed(shape[1:]) == _squeezed(want):
            batch = arr.reshape((shape[0],) + want)
        elif _squeezed(shape) == _squeezed(want):
            batch = arr.reshape((1,) + want)
        else:
            raise BadInput(f"{what} {path.name} holds samples of shape {_fmt(shape[1:])} (array {_fmt(shape)}), "
                           f"but the model input is {_fmt(want)} (batch excluded)",
                           f"save the data as an array of shape N x {_fmt(want)}, fed exactly as in training")
        out.append(np.asarray(batch, dtype=np.float32))
    x = np.concatenate(out) if len(out) > 1 else out[0]
    if not np.isfinite(x).all():
        raise BadInput(f"{what} contains NaN or infinite values", "clean the data before quantizing")
    return x


def pick(x: np.ndarray, n: int, source: str) -> np.ndarray:
    """``n`` samples spread evenly over ``x`` (deterministic)."""
    if len(x) < n:
        raise BadInput(f"{source} has {len(x)} samples; the representative dataset needs at least {n}",
                       f"give more samples (a few hundred spread over all classes), or --samples {len(x)} "
                       "to calibrate on fewer (ranges may be clipped)")
    idx = np.unique(np.linspace(0, len(x) - 1, n).round().astype(np.int64))
    return x[idx]


# -------------------------------------------------------------------------------------------------- conversion

@dataclass
class Source:
    kind: str
    path: Path
    sample_shape: tuple[int, ...]
    dtype: str
    predict: Callable[[np.ndarray], np.ndarray]  # float model on a batch -> output 0 as numpy
    make_converter: Callable[[str], object]  # tmp dir -> tf.lite.TFLiteConverter for batch 1


@contextlib.contextmanager
def _silenced(log_path: Path):
    """TF and the converter write to fd 1/2 from C++; send that to a log file and keep the terminal clean."""
    import sys

    if os.environ.get("FWTOOL_DEBUG"):
        yield
        return
    for s in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            s.flush()
    saved = [os.dup(1), os.dup(2)]
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for s in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                s.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for f in (*saved, fd):
            os.close(f)


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
    with tempfile.TemporaryDirectory(prefix="fwtool-quantize-") as tmp, _silenced(log_path):
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


# -------------------------------------------------------------------------------------------------- evaluation

def run_int8(model: Model, x: np.ndarray) -> np.ndarray:
    """Output 0 of the int8 model on float inputs ``x`` (quantized with the input's own scale/zero point),
    dequantized, from TFLM's interpreter: the same kernels' arithmetic the firmware runs."""
    from tflite_micro.python.tflite_micro import runtime

    ti, to = model.inputs[0], model.outputs[0]
    s_in, z_in = (ti.scale[0], ti.zero_point[0]) if ti.scale else (1.0, 0)
    s_out, z_out = (to.scale[0], to.zero_point[0]) if to.scale else (1.0, 0)
    info = np.iinfo(ti.numpy_dtype)
    interp = runtime.Interpreter.from_bytes(model.data, arena_size=16 * 1024 * 1024)
    outs = []
    for sample in x:
        q = np.clip(np.round(sample / s_in) + z_in, info.min, info.max).astype(ti.numpy_dtype)
        interp.set_input(q.reshape(ti.shape), 0)
        interp.invoke()
        outs.append((interp.get_output(0).astype(np.float32) - z_out) * s_out)
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


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


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
        with _silenced(log_path):
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
    _atomic_write(out, data)
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
    if out.is_file():
        return out, True
    data, report = quantize(QuantizeOptions(model=model, representative=representative, output=out,
                                            samples=samples), on_step)
    _atomic_write(folder / "quantize.json", json.dumps(report, indent=2, default=str).encode())
    _atomic_write(out, data)
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

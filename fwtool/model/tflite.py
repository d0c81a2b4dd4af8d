"""Read a .tflite flatbuffer (with the schema module the tflite-micro wheel ships) and check it against TFLM.

No TensorFlow needed. ``load_model()`` never raises anything but ``BadInput`` for a bad file.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from fwtool.core import userfile
from fwtool.core.errors import BadInput
from fwtool.core.escape import terminal
from fwtool.core.paths import data_file
from fwtool.core.tomlcompat import tomllib

TFLITE_IDENTIFIER = b"TFL3"
MAX_MODEL_BYTES = 64 * 1024 * 1024


def _schema():
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    return schema


@lru_cache(maxsize=None)
def _enum_names(enum_name: str) -> dict[int, str]:
    cls = getattr(_schema(), enum_name)
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


@lru_cache(maxsize=None)
def tflm_ops() -> dict[str, dict]:
    """op name -> {method, kernel, cmsis_nn[, custom]} for the pinned pico-tflmicro (fwtool/data/tflm_ops.toml).

    Builtins by name (``CONV_2D``, kernel relative to ``src/tensorflow/lite/micro/kernels/``); the signal library's
    custom ops as ``CUSTOM:SignalWindow`` etc. (``custom = true``, kernel relative to ``src/``)."""
    return tomllib.loads(data_file("tflm_ops.toml").read_text())


_NP = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32, "FLOAT32": np.float32,
       "INT64": np.int64, "BOOL": np.bool_, "FLOAT16": np.float16}


@dataclass
class Tensor:
    index: int
    name: str
    shape: list[int]
    dtype: str  # schema TensorType name: INT8, FLOAT32, ...
    scale: list[float]
    zero_point: list[int]
    buffer_bytes: int  # constant data size (0 for activations)
    is_variable: bool = False  # state the interpreter keeps between invokes (LSTM/SVDF state)

    @property
    def is_constant(self) -> bool:
        return self.buffer_bytes > 0

    @property
    def elements(self) -> int:
        return math.prod(self.shape) if len(self.shape) else 1

    @property
    def shape_str(self) -> str:
        return "x".join(str(d) for d in self.shape) or "scalar"

    @property
    def numpy_dtype(self):
        return _NP.get(self.dtype)

    def to_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "shape": self.shape, "dtype": self.dtype.lower(),
                "scale": self.scale, "zero_point": self.zero_point}


@dataclass
class Operator:
    index: int
    op: str  # builtin name (CONV_2D) or CUSTOM:<code>
    version: int
    inputs: list[int]
    outputs: list[int]
    options: dict = field(default_factory=dict)


@dataclass
class Model:
    path: Path
    data: bytes
    sha256: str
    op_codes: list[tuple[str, int]]  # (name, version) in the model's operator_codes order
    subgraph_count: int
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[Tensor]
    outputs: list[Tensor]
    description: str = ""
    # Tensors an operator reads or writes, plus the subgraph's inputs/outputs. The rest (an LSTM's
    # ``*_intermediate`` tensors, leftovers of the converter) is never allocated and says nothing about the model.
    live: frozenset[int] = frozenset()

    @property
    def activations(self) -> list[Tensor]:
        """Live tensors the interpreter computes (not constants, not variable state)."""
        return [t for t in self.tensors if t.index in self.live and not t.is_constant and not t.is_variable]

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def op_names(self) -> list[str]:
        """Distinct builtin ops used, in first-use order."""
        seen: dict[str, None] = {}
        for o in self.operators:
            seen.setdefault(o.op, None)
        return list(seen)

    def op_versions(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, ver in self.op_codes:
            out[name] = max(ver, out.get(name, 0))
        return out

    def to_dict(self) -> dict:
        return {
            "name": self.name, "path": str(self.path), "bytes": self.size, "sha256": self.sha256,
            "subgraphs": self.subgraph_count,
            "ops": [{"op": n, "version": v} for n, v in self.op_versions().items()],
            "inputs": [t.to_dict() for t in self.inputs], "outputs": [t.to_dict() for t in self.outputs],
        }


def _options_dict(opts) -> dict:
    if opts is None:
        return {}
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in vars(opts).items()
            if isinstance(v, (int, float, bool, list, np.ndarray))}


SCHEMA_VERSION = 3  # the TFLite schema version TFLM accepts (TFLITE_SCHEMA_VERSION)
MAX_TENSOR_BYTES = MAX_MODEL_BYTES  # no supported board holds a tensor larger than this
MAX_DIMS = 8


def _refuse(path: Path, what: str) -> BadInput:
    return BadInput(f"{_shown(path)} is malformed: {what}",
                    "re-export the model from the TFLite converter; this file was damaged or hand-edited")


def _shown(path: Path) -> str:
    return terminal(path.name)


def _index(path: Path, value, limit: int, what: str, optional: bool = False) -> int:
    i = int(value)
    if optional and i == -1:
        return i
    if not 0 <= i < limit:
        raise _refuse(path, f"{what} {i} is out of range (the model has {limit})")
    return i


def _check_tensor(path: Path, t: Tensor) -> None:
    if len(t.shape) > MAX_DIMS:
        raise _refuse(path, f"tensor {t.index} has {len(t.shape)} dimensions (TFLM supports up to {MAX_DIMS})")
    if any(d < 0 for d in t.shape):
        raise _refuse(path, f"tensor {t.index} has a negative dimension in shape {t.shape}")
    itemsize = np.dtype(t.numpy_dtype).itemsize if t.numpy_dtype is not None else 1
    if t.elements * itemsize > MAX_TENSOR_BYTES:
        raise BadInput(f"{_shown(path)}: tensor {t.index} claims {t.elements:,} elements, more than any supported "
                       f"board can hold", "check the model's shapes; fwtool needs fixed, small tensor shapes")
    if t.scale and len(t.zero_point) != len(t.scale):
        raise _refuse(path, f"tensor {t.index} has {len(t.scale)} quantization scale(s) but "
                            f"{len(t.zero_point)} zero point(s)")
    if any(not np.isfinite(s) for s in t.scale):
        raise _refuse(path, f"tensor {t.index} has a non-finite quantization scale")


def _parse_tensors(path: Path, sg, buffers: list, type_names: dict) -> list[Tensor]:
    tensors = []
    for i, t in enumerate(sg.tensors or []):
        q = t.quantization
        scale = [float(x) for x in (q.scale if q is not None and q.scale is not None else [])]
        zp = [int(x) for x in (q.zeroPoint if q is not None and q.zeroPoint is not None else [])]
        buf = buffers[_index(path, t.buffer, len(buffers), f"tensor {i} buffer index")] if buffers else None
        nbytes = 0
        if buf is not None:
            nbytes = len(buf.data) if buf.data is not None else int(buf.size or 0)
        shape = [int(d) for d in (t.shape if t.shape is not None else [])]
        name = t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name or "")
        tensor = Tensor(i, name, shape, type_names.get(t.type, f"TYPE_{t.type}"), scale, zp, nbytes,
                        bool(t.isVariable))
        _check_tensor(path, tensor)
        tensors.append(tensor)
    return tensors


def _parse_operators(path: Path, sg, codes: list, ntensors: int) -> list[Operator]:
    operators = []
    for i, op in enumerate(sg.operators or []):
        name, ver = codes[_index(path, op.opcodeIndex, len(codes), f"operator {i} op code index")]
        ins = [_index(path, x, ntensors, f"operator {i} input tensor index", optional=True)
               for x in (op.inputs if op.inputs is not None else [])]
        outs = [_index(path, x, ntensors, f"operator {i} output tensor index")
                for x in (op.outputs if op.outputs is not None else [])]
        operators.append(Operator(i, name, ver, ins, outs, _options_dict(op.builtinOptions)))
    return operators


def parse_model(data: bytes, path: Path | str = "model.tflite") -> Model:
    """Parse and sanity-check a .tflite; anything wrong is a ``BadInput`` naming what (never another exception)."""
    path = Path(path)
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise BadInput(f"{_shown(path)} is not a TensorFlow Lite model (no 'TFL3' flatbuffer identifier)",
                       "pass a .tflite file produced by the TFLite converter, e.g. 'fwtool quantize'")
    schema = _schema()
    try:
        m = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
        if m.version != SCHEMA_VERSION:
            raise BadInput(f"{_shown(path)} uses TFLite schema version {m.version}; TFLM runs only version "
                           f"{SCHEMA_VERSION}", "re-convert the model with a current TensorFlow (tf.lite.TFLiteConverter)")
        type_names = _enum_names("TensorType")
        op_names = _enum_names("BuiltinOperator")
        codes = []
        for oc in m.operatorCodes or []:
            code = max(oc.builtinCode or 0, oc.deprecatedBuiltinCode or 0)
            name = op_names.get(code, f"UNKNOWN_{code}")
            if name == "CUSTOM":
                name = "CUSTOM:" + (oc.customCode.decode(errors="replace") if oc.customCode else "?")
            codes.append((name, oc.version or 1))
        if not m.subgraphs:
            raise _refuse(path, "it has no subgraphs")
        sg = m.subgraphs[0]
        tensors = _parse_tensors(path, sg, m.buffers or [], type_names)
        operators = _parse_operators(path, sg, codes, len(tensors))
        sg_in = [] if sg.inputs is None else list(sg.inputs)
        sg_out = [] if sg.outputs is None else list(sg.outputs)
        if not sg_in or not sg_out:
            raise _refuse(path, f"its subgraph declares no {'inputs' if not sg_in else 'outputs'}")
        inputs = [tensors[_index(path, i, len(tensors), "subgraph input tensor index")] for i in sg_in]
        outputs = [tensors[_index(path, i, len(tensors), "subgraph output tensor index")] for i in sg_out]
        desc = m.description.decode(errors="replace") if isinstance(m.description, bytes) else (m.description or "")
    except BadInput:
        raise
    except RecursionError as e:
        raise _refuse(path, "its flatbuffer nests too deeply") from e
    except Exception as e:  # flatbuffers raises anything from struct.error to IndexError on a broken file
        raise BadInput(f"{_shown(path)} is a corrupt or truncated TFLite model ({type(e).__name__})",
                       "re-export the model from the converter; the file on disk is damaged") from e
    live = {i for op in operators for i in (*op.inputs, *op.outputs) if i >= 0}
    live.update(t.index for t in (*inputs, *outputs))
    return Model(path=path, data=bytes(data), sha256=hashlib.sha256(data).hexdigest(), op_codes=codes,
                 subgraph_count=len(m.subgraphs), tensors=tensors, operators=operators, inputs=inputs,
                 outputs=outputs, description=desc, live=frozenset(live))


def load_model(path: Path | str) -> Model:
    path = Path(path)
    data = userfile.read_bytes(path, "model file", MAX_MODEL_BYTES,
                               "check the --model path (a .tflite file; larger than any board's flash is refused)")
    return parse_model(data, path)


FLOAT_TYPES = {"FLOAT32", "FLOAT16", "FLOAT64"}
IO_TYPES = ("INT8", "UINT8", "INT16", "INT32")  # what the firmware feeds and prints
DATA_TYPES = {"INT8", "INT16", "UINT8", "FLOAT32"}  # checked against a kernel's ``types`` (tflm_ops.toml)
SOURCE_SUFFIXES = (".keras", ".h5", "")  # "" = a SavedModel folder


def quantize_source(tflite: Path) -> Path | None:
    """The Keras/SavedModel export next to a .tflite (same stem), if one exists."""
    for cand in (tflite.with_suffix(sfx) for sfx in SOURCE_SUFFIXES):
        if cand.is_file() if cand.suffix else (cand.is_dir() and (cand / "saved_model.pb").is_file()):
            return cand
    return None


def _quantize_fix(tflite: Path) -> str:
    """The exact ``fwtool quantize`` command for a float .tflite: its Keras/SavedModel sibling if one exists,
    otherwise what to quantize from and how."""
    out = tflite.with_name(tflite.stem + "_int8.tflite")
    source = quantize_source(tflite)
    if source is not None:
        return f"quantize the model it was exported from: fwtool quantize {source} --representative DATA.npy -o {out}"
    return (f"no .keras/.h5/SavedModel export of it sits next to {tflite.name}: quantize the Keras model or "
            f"SavedModel folder it was exported from, with ~100+ typical inputs as DATA.npy: "
            f"fwtool quantize MODEL.keras --representative DATA.npy -o {out}")


def scheme(model: Model) -> str:
    """The quantization scheme from the tensors the interpreter computes: ``int8``, ``int16x8`` (int16
    activations, int8 weights), ``uint8``, ``float32``, or ``mixed (int8, int16)`` etc."""
    acts = {t.dtype for t in model.activations if t.dtype in DATA_TYPES | FLOAT_TYPES}
    if not acts:
        acts = {t.dtype for t in model.inputs + model.outputs}
    if acts == {"INT16"}:
        weights = {t.dtype for t in model.tensors if t.is_constant and t.index in model.live and t.dtype in DATA_TYPES}
        return "int16x8" if "INT8" in weights or not weights else "int16"
    if len(acts) == 1:
        return next(iter(acts)).lower()
    return "mixed (" + ", ".join(sorted(a.lower() for a in acts)) + ")"


def kernel_type_gaps(model: Model) -> list[tuple[Operator, str]]:
    """(operator, tensor type) pairs where a live tensor the operator computes or reads has a data type its
    pinned TFLM kernel never names (``types`` in tflm_ops.toml, derived from the kernel source)."""
    table = tflm_ops()
    gaps: list[tuple[Operator, str]] = []
    for op in model.operators:
        types = table.get(op.op, {}).get("types")
        if not types:
            continue
        for i in (*op.inputs, *op.outputs):
            t = model.tensors[i] if i >= 0 else None
            if t is None or t.is_constant or t.dtype not in DATA_TYPES:
                continue
            if t.dtype.lower() not in types and (op, t.dtype) not in gaps:
                gaps.append((op, t.dtype))
    return gaps


# Limits a kernel states in its Prepare() beyond its types, as (op, weight input position, activation types allowed
# with per-channel weights). pico-tflmicro's cmsis_nn/fully_connected.cpp: "Currently only Int8 is supported for per
# channel quantization" (tests/test_coverage.py checks the pinned source still says so).
PER_CHANNEL_ONLY = {"FULLY_CONNECTED": (1, {"INT8"})}


def kernel_limit_gaps(model: Model) -> list[tuple[Operator, str]]:
    """(operator, what) where a kernel's own Prepare() would refuse the operator (see PER_CHANNEL_ONLY)."""
    gaps = []
    for op in model.operators:
        limit = PER_CHANNEL_ONLY.get(op.op)
        if limit is None or len(op.inputs) <= limit[0] or op.inputs[0] < 0 or op.inputs[limit[0]] < 0:
            continue
        act, weights = model.tensors[op.inputs[0]], model.tensors[op.inputs[limit[0]]]
        if len(weights.scale) > 1 and act.dtype not in limit[1]:
            gaps.append((op, f"{act.dtype.lower()} input with per-channel weights ({len(weights.scale)} scales)"))
    return gaps


def check_for_tflm(model: Model) -> None:
    """Refuse what the firmware cannot run, naming the missing piece: several subgraphs, float inputs/outputs,
    ops without a kernel in the pinned TFLM, tensor types those kernels do not handle. Only live tensors count:
    an LSTM's never-allocated ``*_intermediate`` tensors are float32 in int8 models and decide nothing."""
    if model.subgraph_count > 1:
        raise BadInput(f"{model.path.name} has {model.subgraph_count} subgraphs; fwtool supports single-subgraph "
                       "models", "export the model without control flow (IF/WHILE), or as one function")
    floats = [t for t in model.inputs + model.outputs if t.dtype in FLOAT_TYPES]
    acts = model.activations
    if floats or (acts and all(t.dtype in FLOAT_TYPES for t in acts if t.dtype in DATA_TYPES | FLOAT_TYPES)):
        which = floats[0] if floats else acts[0]
        raise BadInput(
            f"{model.path.name} is a float model (tensor '{which.name}' is {which.dtype.lower()}); "
            "the firmware runs integer-quantized models (int8 or int16x8)", _quantize_fix(model.path))
    table = tflm_ops()
    versions = model.op_versions()
    missing = [o for o in model.op_names if o not in table]
    if missing:
        custom = [o for o in missing if o.startswith("CUSTOM:")]
        fix = ("replace those layers with supported ones (see 'fwtool inspect') and re-convert the model")
        if custom:
            known = ", ".join(sorted(o.removeprefix("CUSTOM:") for o in table if table[o].get("custom")))
            fix = (f"the firmware registers only pico-tflmicro's custom ops ({known}); "
                   f"re-convert without {custom[0].removeprefix('CUSTOM:')} or use those ops")
        named = ", ".join(f"{o} (version {versions.get(o, 1)})" for o in missing)
        raise BadInput(f"{model.path.name} uses op(s) with no kernel in TFLM/pico-tflmicro: {named}", fix)
    gaps = kernel_type_gaps(model)
    if gaps:
        op, dtype = gaps[0]
        entry = table[op.op]
        more = f"; {len(gaps) - 1} more operator(s) have a type their kernel lacks" if len(gaps) > 1 else ""
        article = "an" if dtype in ("INT8", "INT16") else "a"
        raise BadInput(f"{model.path.name}: operator {op.index} {op.op} (version {op.version}) has "
                       f"{article} {dtype.lower()} tensor, and pico-tflmicro's {op.op} kernel ({entry['kernel']}) "
                       f"handles only {', '.join(entry['types'])}{more}",
                       f"quantize so that {op.op} runs in {' or '.join(t for t in entry['types'] if t in ('int8', 'int16'))} "
                       "(e.g. int8 instead of int16x8), or replace that layer")
    limits = kernel_limit_gaps(model)
    if limits:
        op, what = limits[0]
        raise BadInput(f"{model.path.name}: operator {op.index} {op.op} (version {op.version}) has an {what}; "
                       f"pico-tflmicro's {op.op} kernel ({table[op.op]['kernel']}) takes per-channel weights with "
                       "int8 input only",
                       "re-convert with per-tensor dense weights: converter._experimental_disable_per_channel_"
                       "quantization_for_dense_layers = True (TFLiteConverter), or quantize int8")
    bad_io = [t for t in model.inputs + model.outputs if t.dtype not in IO_TYPES]
    if bad_io:
        raise BadInput(f"{model.path.name}: tensor '{bad_io[0].name}' has unsupported type {bad_io[0].dtype}",
                       "convert with int8 input and output (inference_input_type=tf.int8)")


def resolver_calls(model: Model) -> list[dict]:
    """The MicroMutableOpResolver Add* calls for exactly the model's ops."""
    table = tflm_ops()
    return [{"op": op, "method": table[op]["method"], "kernel": table[op]["kernel"],
             "cmsis_nn": table[op]["cmsis_nn"]} for op in model.op_names if op in table]  # others: check_for_tflm

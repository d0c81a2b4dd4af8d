"""Read a .tflite flatbuffer (with the schema module the tflite-micro wheel ships) and check it against TFLM.

No TensorFlow needed. ``load_model()`` never raises anything but ``BadInput`` for a bad file.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from fwtool.core.errors import BadInput
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
    """builtin op name -> {method, kernel, cmsis_nn} for the pinned pico-tflmicro (fwtool/data/tflm_ops.toml)."""
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

    @property
    def is_constant(self) -> bool:
        return self.buffer_bytes > 0

    @property
    def elements(self) -> int:
        return int(np.prod(self.shape)) if len(self.shape) else 1

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


def parse_model(data: bytes, path: Path | str = "model.tflite") -> Model:
    path = Path(path)
    if len(data) < 8 or data[4:8] != TFLITE_IDENTIFIER:
        raise BadInput(f"{path.name} is not a TensorFlow Lite model (no 'TFL3' flatbuffer identifier)",
                       "pass a .tflite file produced by the TFLite converter, e.g. 'fwtool quantize'")
    schema = _schema()
    try:
        m = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
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
            raise ValueError("no subgraphs")
        sg = m.subgraphs[0]
        buffers = m.buffers or []
        tensors = []
        for i, t in enumerate(sg.tensors or []):
            q = t.quantization
            scale = [float(x) for x in (q.scale if q is not None and q.scale is not None else [])]
            zp = [int(x) for x in (q.zeroPoint if q is not None and q.zeroPoint is not None else [])]
            buf = buffers[t.buffer] if 0 <= t.buffer < len(buffers) else None
            nbytes = 0
            if buf is not None:
                nbytes = len(buf.data) if buf.data is not None else int(buf.size or 0)
            shape = [int(d) for d in (t.shape if t.shape is not None else [])]
            name = t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name or "")
            tensors.append(Tensor(i, name, shape, type_names.get(t.type, f"TYPE_{t.type}"), scale, zp, nbytes))
        operators = []
        for i, op in enumerate(sg.operators or []):
            name, ver = codes[op.opcodeIndex]
            operators.append(Operator(i, name, ver, [int(x) for x in (op.inputs if op.inputs is not None else [])],
                                      [int(x) for x in (op.outputs if op.outputs is not None else [])],
                                      _options_dict(op.builtinOptions)))
        inputs = [tensors[i] for i in sg.inputs]
        outputs = [tensors[i] for i in sg.outputs]
        desc = m.description.decode(errors="replace") if isinstance(m.description, bytes) else (m.description or "")
    except BadInput:
        raise
    except Exception as e:  # flatbuffers raises anything from struct.error to IndexError on a broken file
        raise BadInput(f"{path.name} is a corrupt or truncated TFLite model ({type(e).__name__})",
                       "re-export the model from the converter; the file on disk is damaged") from e
    return Model(path=path, data=bytes(data), sha256=hashlib.sha256(data).hexdigest(), op_codes=codes,
                 subgraph_count=len(m.subgraphs), tensors=tensors, operators=operators, inputs=inputs,
                 outputs=outputs, description=desc)


def load_model(path: Path | str) -> Model:
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"model file {path} does not exist", "check the --model path")
    size = path.stat().st_size
    if size > MAX_MODEL_BYTES:
        raise BadInput(f"{path.name} is {size:,} bytes, larger than any supported board's flash",
                       "use a smaller model or quantize it with 'fwtool quantize'")
    return parse_model(path.read_bytes(), path)


FLOAT_TYPES = {"FLOAT32", "FLOAT16", "FLOAT64"}


def _quantize_command(tflite: Path) -> str:
    """The exact ``fwtool quantize`` command for a float .tflite: its Keras/SavedModel sibling if one exists."""
    source = tflite.with_suffix(".keras")
    for cand in (tflite.with_suffix(".keras"), tflite.with_suffix(".h5"), tflite.with_suffix("")):
        if cand.is_file() or (cand.is_dir() and (cand / "saved_model.pb").is_file()):
            source = cand
            break
    out = tflite.with_name(tflite.stem + "_int8.tflite")
    return f"fwtool quantize {source} --representative DATA.npy -o {out}"


def check_for_tflm(model: Model) -> None:
    """Refuse what the firmware cannot run: float models, ops without a TFLM kernel, several subgraphs."""
    if model.subgraph_count > 1:
        raise BadInput(f"{model.path.name} has {model.subgraph_count} subgraphs; fwtool supports single-subgraph "
                       "models", "export the model without control flow (IF/WHILE), or as one function")
    floats = [t for t in model.inputs + model.outputs if t.dtype in FLOAT_TYPES]
    float_acts = [t for t in model.tensors if t.dtype in FLOAT_TYPES and not t.is_constant]
    if floats or float_acts:
        which = floats[0] if floats else float_acts[0]
        raise BadInput(
            f"{model.path.name} is a float model (tensor '{which.name}' is {which.dtype.lower()}); "
            "the firmware runs full-integer int8 models",
            f"quantize the Keras/SavedModel model it was exported from: {_quantize_command(model.path)}")
    table = tflm_ops()
    missing = [o for o in model.op_names if o not in table]
    if missing:
        raise BadInput(f"{model.path.name} uses op(s) with no kernel in TFLM/pico-tflmicro: {', '.join(missing)}",
                       "replace those layers with supported ones (see 'fwtool inspect') and re-convert the model")
    bad_io = [t for t in model.inputs + model.outputs if t.dtype not in ("INT8", "UINT8", "INT16", "INT32")]
    if bad_io:
        raise BadInput(f"{model.path.name}: tensor '{bad_io[0].name}' has unsupported type {bad_io[0].dtype}",
                       "convert with int8 input and output (inference_input_type=tf.int8)")


def resolver_calls(model: Model) -> list[dict]:
    """The MicroMutableOpResolver Add* calls for exactly the model's ops."""
    table = tflm_ops()
    return [{"op": op, "method": table[op]["method"], "kernel": table[op]["kernel"],
             "cmsis_nn": table[op]["cmsis_nn"]} for op in model.op_names]

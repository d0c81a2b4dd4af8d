"""Make .tflite variants for tests with the schema's object API (ModelT → flatbuffers), no TensorFlow needed."""
from __future__ import annotations

from pathlib import Path

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

SHARED = Path(__file__).resolve().parents[2] / "shared" / "models"
FIRE_ALARM = SHARED / "fire_alarm.tflite"


def load(path: Path = FIRE_ALARM):
    return schema.ModelT.InitFromPackedBuf(bytearray(Path(path).read_bytes()), 0)


def pack(model) -> bytes:
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def float_model() -> bytes:
    """fire_alarm with its input and output declared float32 (what an unquantized export looks like)."""
    m = load()
    sg = m.subgraphs[0]
    for i in list(sg.inputs) + list(sg.outputs):
        sg.tensors[i].type = schema.TensorType.FLOAT32
    return pack(m)


def unsupported_op_model(op: int = schema.BuiltinOperator.HASHTABLE_LOOKUP) -> bytes:
    """fire_alarm whose LOGISTIC is replaced by an op TFLM has no kernel for."""
    m = load()
    for oc in m.operatorCodes:
        if max(oc.builtinCode, oc.deprecatedBuiltinCode) == schema.BuiltinOperator.LOGISTIC:
            oc.builtinCode = op
            oc.deprecatedBuiltinCode = min(op, 127)
    return pack(m)


def padded_model(extra_bytes: int) -> bytes:
    """fire_alarm plus an unused constant buffer of ``extra_bytes`` (model bytes grow, ops do not change)."""
    m = load()
    buf = schema.BufferT()
    buf.data = np.zeros(extra_bytes, dtype=np.uint8)
    m.buffers.append(buf)
    return pack(m)


def two_subgraph_model() -> bytes:
    m = load()
    m.subgraphs.append(m.subgraphs[0])
    return pack(m)

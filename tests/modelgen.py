"""Make .tflite variants for tests with the schema's object API (ModelT → flatbuffers), no TensorFlow needed."""
from __future__ import annotations

import os
from pathlib import Path

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

# the shared models beside the checkout (FWTOOL_TEST_MODELS names another folder, e.g. from a git worktree)
SHARED = Path(os.environ.get("FWTOOL_TEST_MODELS") or Path(__file__).resolve().parents[2] / "shared" / "models")


def _fire_alarm() -> Path:
    """The fire-alarm model: ../shared/models/fire_alarm.tflite beside the clone if it is there, else fwtool's own
    example:fire_alarm (the Pico tutorial's header, its tree fetched on first use). A missing path when neither can
    be had: the tests that need it skip and say so."""
    shared = SHARED / "fire_alarm.tflite"
    if shared.is_file():
        return shared
    from fwtool.core.errors import FwtoolError
    from fwtool.model import examples

    try:
        return examples.model_path("fire_alarm")
    except FwtoolError:
        return shared


FIRE_ALARM = _fire_alarm()


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


def _tensor(name, shape, ttype, buffer, scale, zp):
    t = schema.TensorT()
    t.name, t.shape, t.type, t.buffer = name.encode(), np.array(shape, dtype=np.int32), ttype, buffer
    q = schema.QuantizationParametersT()
    q.scale, q.zeroPoint = np.array([scale], dtype=np.float32), np.array([zp], dtype=np.int64)
    t.quantization = q
    return t


def tiny_fc_model() -> bytes:
    """A small int8 model built from scratch: input [1,4] -> FULLY_CONNECTED (3 units) -> output [1,3]."""
    def buffer(data: bytes | None):
        b = schema.BufferT()
        b.data = None if data is None else np.frombuffer(data, dtype=np.uint8).copy()
        return b

    m = schema.ModelT()
    m.version, m.description = 3, b"fwtool test model"
    oc = schema.OperatorCodeT()
    oc.builtinCode = oc.deprecatedBuiltinCode = schema.BuiltinOperator.FULLY_CONNECTED
    oc.version = 1
    m.operatorCodes = [oc]
    weights = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    m.buffers = [buffer(None), buffer(None), buffer(weights.tobytes()),
                 buffer(np.array([1, -2, 3], dtype=np.int32).tobytes()), buffer(None)]
    sg = schema.SubGraphT()
    sg.tensors = [_tensor("input", [1, 4], schema.TensorType.INT8, 1, 0.5, -1),
                  _tensor("weights", [3, 4], schema.TensorType.INT8, 2, 0.25, 0),
                  _tensor("bias", [3], schema.TensorType.INT32, 3, 0.125, 0),
                  _tensor("output", [1, 3], schema.TensorType.INT8, 4, 1.0, 2)]
    op = schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, np.array([0, 1, 2], dtype=np.int32), np.array([3], dtype=np.int32)
    op.builtinOptionsType = schema.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = schema.FullyConnectedOptionsT()
    sg.operators = [op]
    sg.inputs, sg.outputs = np.array([0], dtype=np.int32), np.array([3], dtype=np.int32)
    sg.name = b"main"
    m.subgraphs = [sg]
    return pack(m)


def two_in_two_out_model() -> bytes:
    """int8 a[1,8], b[1,8] -> ADD -> sum[1,8] and MUL -> product[1,8]: two inputs, two outputs (issue 13)."""
    m = schema.ModelT()
    m.version, m.description = 3, b"fwtool test model: two inputs, two outputs"
    codes = []
    for op in (schema.BuiltinOperator.ADD, schema.BuiltinOperator.MUL):
        oc = schema.OperatorCodeT()
        oc.builtinCode = oc.deprecatedBuiltinCode = op
        oc.version = 1
        codes.append(oc)
    m.operatorCodes = codes
    m.buffers = [schema.BufferT() for _ in range(5)]
    i8 = schema.TensorType.INT8
    sg = schema.SubGraphT()
    sg.tensors = [_tensor("a", [1, 8], i8, 1, 0.05, -3), _tensor("b", [1, 8], i8, 2, 0.04, 5),
                  _tensor("sum", [1, 8], i8, 3, 0.09, 1), _tensor("product", [1, 8], i8, 4, 0.05, -2)]
    ops = []
    for code, outs, opt_type, opt in ((0, 2, schema.BuiltinOptions.AddOptions, schema.AddOptionsT()),
                                      (1, 3, schema.BuiltinOptions.MulOptions, schema.MulOptionsT())):
        op = schema.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = code, np.array([0, 1], np.int32), np.array([outs], np.int32)
        op.builtinOptionsType, op.builtinOptions = opt_type, opt
        ops.append(op)
    sg.operators = ops
    sg.inputs, sg.outputs = np.array([0, 1], np.int32), np.array([2, 3], np.int32)
    sg.name = b"main"
    m.subgraphs = [sg]
    return pack(m)


def with_intermediate_tensors() -> bytes:
    """tiny_fc_model plus what an int8 LSTM carries: float32 ``*_intermediate`` tensors with quantization
    parameters, listed as the operator's intermediates and never allocated (they must not make it a float model)."""
    m = schema.ModelT.InitFromPackedBuf(bytearray(tiny_fc_model()), 0)
    sg = m.subgraphs[0]
    first = len(sg.tensors)
    for name in ("input_to_input_intermediate", "input_to_forget_intermediate"):
        m.buffers.append(schema.BufferT())
        sg.tensors.append(_tensor(name, [0], schema.TensorType.FLOAT32, len(m.buffers) - 1, 0.01, 0))
    sg.operators[0].intermediates = np.array([first, first + 1], np.int32)
    return pack(m)

"""``fwtool inspect``: will this model run, and how well? Per-layer parameters, MACs and kernels; fit per board.

Everything here reads the .tflite flatbuffer (``fwtool.model``) and measures the arena with the TFLM host
interpreter (``fwtool.arena``), exactly as ``fwtool build`` does, so the arena and fit figures are the ones the
build will use. No TensorFlow needed.

Counting rules (documented in docs/model.md):

* params: elements of the constant tensors an op reads as weights or biases. Constant int32/int64 operands of
  ops without weights (RESHAPE's new shape, PAD's paddings, MEAN's axes, RESIZE's size, ...) are not parameters.
  The model total counts each constant tensor once even if several ops share it.
* MACs: multiply-accumulates of one inference (batch as in the model). CONV_2D: out_h·out_w·out_c·k_h·k_w·in_c
  per batch; DEPTHWISE_CONV_2D: out_h·out_w·out_c·k_h·k_w; FULLY_CONNECTED: rows·units·in; TRANSPOSE_CONV:
  in_h·in_w·in_c·k_h·k_w·out_c; BATCH_MATMUL: output elements · K; SVDF and LSTM from their weight matrices;
  MUL: one per output element. Pooling, activations and data movement count 0.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from fwtool.model import arena as arena_mod
from fwtool.core.boards import Board
from fwtool.core.errors import FwtoolError
from fwtool.model.tflite import Model, Operator, check_for_tflm, scheme, tflm_ops
from fwtool.core.paths import data_file
from fwtool.core.tomlcompat import tomllib

# Ops whose constant inputs are weights/biases (all of them, except the listed positions).
WEIGHT_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL", "SVDF",
              "UNIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN", "EMBEDDING_LOOKUP", "PRELU", "ADD",
              "SUB", "MUL", "DIV", "MAXIMUM", "MINIMUM", "SQUARED_DIFFERENCE", "CONCATENATION"}
NOT_WEIGHTS = {"TRANSPOSE_CONV": {0}}  # TRANSPOSE_CONV input 0 is the output shape
CMSIS_TYPES = {"INT8", "INT16"}  # CMSIS-NN kernels run int8/int16; other types use the reference code


@lru_cache(maxsize=None)
def cpu_table() -> dict[str, dict]:
    """cpu name -> {short, arch, cmsis_nn, example, show} (fwtool/data/cpus.toml)."""
    return tomllib.loads(data_file("cpus.toml").read_text())


def shown_cpus(boards: list[Board]) -> list[str]:
    """CPU columns for the kernel table: every CPU of the boards shown, plus the table's ``show`` CPUs."""
    cpus: dict[str, None] = {}
    for b in boards:
        cpus.setdefault(b.cpu, None)
    for name, row in cpu_table().items():
        if row.get("show"):
            cpus.setdefault(name, None)
    return list(cpus)


def cpu_label(cpu: str) -> str:
    row = cpu_table().get(cpu)
    if not row:
        return cpu
    return f"{row['short']} ({row['example']})" if row.get("example") else row["short"]


def implementation(op: Operator, model: Model, cpu: str) -> str:
    """How TFLM runs this op on that CPU: 'CMSIS-NN (…)', 'reference' or 'no TFLM kernel'."""
    entry = tflm_ops().get(op.op)
    if entry is None:
        return "no TFLM kernel"
    out_type = model.tensors[op.outputs[0]].dtype if op.outputs else ""
    if entry["cmsis_nn"] and out_type in CMSIS_TYPES:
        row = cpu_table().get(cpu)
        return row["cmsis_nn"] if row else "CMSIS-NN"
    return "reference"


def _shape(model: Model, idx: int) -> list[int]:
    return model.tensors[idx].shape if idx >= 0 else []


def param_tensors(op: Operator, model: Model) -> list[int]:
    """Indices of the constant tensors that are this op's weights/biases."""
    out = []
    for pos, idx in enumerate(op.inputs):
        if idx < 0 or not model.tensors[idx].is_constant:
            continue
        t = model.tensors[idx]
        if op.op in WEIGHT_OPS:
            if pos in NOT_WEIGHTS.get(op.op, ()):
                continue
        elif t.dtype in ("INT32", "INT64"):  # shapes, axes, sizes, paddings
            continue
        out.append(idx)
    return out


def macs(op: Operator, model: Model) -> int:
    """Multiply-accumulates of one inference of ``op`` (see the module docstring for the rules)."""
    outs = [_shape(model, i) for i in op.outputs]
    ins = [_shape(model, i) for i in op.inputs]
    out = outs[0] if outs else []
    n_out = int(np.prod(out)) if out else 0
    name = op.op
    try:
        if name == "CONV_2D":
            filt = ins[1]  # [out_c, k_h, k_w, in_c / groups]
            return n_out * filt[1] * filt[2] * filt[3]
        if name == "DEPTHWISE_CONV_2D":
            filt = ins[1]  # [1, k_h, k_w, out_c]
            return n_out * filt[1] * filt[2]
        if name == "FULLY_CONNECTED":
            w = ins[1]  # [units, in]
            return n_out * w[-1]
        if name == "TRANSPOSE_CONV":
            filt, x = ins[1], ins[2]  # filter [out_c, k_h, k_w, in_c], input NHWC
            return int(np.prod(x)) * filt[0] * filt[1] * filt[2]
        if name == "BATCH_MATMUL":
            a = ins[0]
            k = a[-2] if op.options.get("adjX") else a[-1]
            return n_out * k
        if name == "MUL":
            return n_out
        if name == "SVDF":
            feat, time_w = ins[1], ins[2]  # [filters, input], [filters, memory]
            batch = ins[0][0] if ins[0] else 1
            return batch * (feat[0] * feat[1] + time_w[0] * time_w[1])
        if name in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "UNIDIRECTIONAL_SEQUENCE_RNN"):
            x = ins[0]  # [time, batch, in] or [batch, time, in]
            steps = int(np.prod(x[:-1])) if len(x) > 1 else 1
            weights = [i for i in op.inputs[1:9 if name.endswith("LSTM") else 3] if i >= 0]
            return steps * sum(model.tensors[i].elements for i in weights if len(model.tensors[i].shape) == 2)
    except (IndexError, TypeError):
        return 0
    return 0


def layers(model: Model, cpus: list[str]) -> list[dict]:
    rows = []
    for op in model.operators:
        entry = tflm_ops().get(op.op)
        p = param_tensors(op, model)
        out = model.tensors[op.outputs[0]] if op.outputs else None
        rows.append({
            "index": op.index, "op": op.op, "version": op.version,
            "inputs": [model.tensors[i].shape for i in op.inputs if i >= 0 and not model.tensors[i].is_constant],
            "output_shape": out.shape if out else [], "output_dtype": out.dtype.lower() if out else "",
            "params": sum(model.tensors[i].elements for i in p),
            "param_bytes": sum(model.tensors[i].buffer_bytes for i in p),
            "macs": macs(op, model),
            "tflm_kernel": entry is not None, "kernel": entry["kernel"] if entry else None,
            "cmsis_nn": bool(entry and entry["cmsis_nn"]),
            "implementation": {cpu: implementation(op, model, cpu) for cpu in cpus},
        })
    return rows


def totals(model: Model) -> dict:
    seen: set[int] = set()
    for op in model.operators:
        seen.update(param_tensors(op, model))
    return {"params": sum(model.tensors[i].elements for i in seen),
            "param_bytes": sum(model.tensors[i].buffer_bytes for i in seen),
            "macs": sum(macs(op, model) for op in model.operators), "model_bytes": model.size,
            "operators": len(model.operators)}


def op_summary(model: Model, cpus: list[str]) -> list[dict]:
    """Distinct ops in first-use order: count, kernel file, CMSIS-NN or reference per CPU."""
    out = []
    for name in model.op_names:
        first = next(o for o in model.operators if o.op == name)
        entry = tflm_ops().get(name)
        out.append({"op": name, "version": model.op_versions().get(name, first.version),
                    "count": sum(1 for o in model.operators if o.op == name),
                    "tflm_kernel": entry is not None, "kernel": entry["kernel"] if entry else None,
                    "method": entry["method"] if entry else None,
                    "cmsis_nn": bool(entry and entry["cmsis_nn"]),
                    "implementation": {cpu: implementation(first, model, cpu) for cpu in cpus}})
    return out


def model_report(model: Model, boards: list[Board], arena_override: int | None = None) -> tuple[dict, int | None]:
    """Everything about the model itself, for the CPUs of ``boards`` (plain data), and the arena total (None
    when the TFLM interpreter could not run the model). Per-board fit: fwtool.firmware.verdict."""
    cpus = shown_cpus(boards)
    report: dict = {"model": model.to_dict(), "layers": layers(model, cpus), "totals": totals(model),
                    "ops": op_summary(model, cpus),
                    "cpus": {c: {"label": cpu_label(c), **cpu_table().get(c, {})} for c in cpus}}
    try:
        check_for_tflm(model)
        report["tflm"] = {"ok": True, "scheme": scheme(model)}
    except FwtoolError as e:
        report["tflm"] = {"ok": False, "scheme": scheme(model), "error": e.cause, "fix": e.fix,
                          "exit_code": int(e.code)}
    try:
        a = arena_mod.size_for(model, arena_override)
        report["arena"] = a.to_dict()
        arena_total: int | None = a.total
    except FwtoolError as e:
        report["arena"] = {"error": e.cause, "fix": e.fix, "exit_code": int(e.code)}
        arena_total = None
    return report, arena_total

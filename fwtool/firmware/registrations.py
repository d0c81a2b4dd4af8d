"""Type-specialized kernel registrations: ``Register_CONV_2D_INT8()`` instead of ``Register_CONV_2D()`` where the
model's tensor types allow, so the linker drops the int4/int16 paths (and their CMSIS-NN functions) no op calls.

Everything is read from the pinned tree: which resolver methods take a registration (``micro_mutable_op_resolver.h``:
``AddConv2D(const TFLMRegistration& registration = Register_CONV_2D())``), which variants exist (declared in
``kernels/*.h`` and defined in the kernel file the build compiles), and the variant's types from its suffix:

* ``INT8``: int8 activations (every non-constant input and output), constant inputs int8 (int32/int64 = bias);
* ``INT16``: int16 activations, int8 constant inputs;
* ``INT4``: int8 activations, int4 constant inputs;
* ``INT8_INT16``: int8 inputs, int16 outputs.

A variant is used only when every instance of the op in the model has exactly its types; otherwise the generic
registration (type dispatch at run time) stays.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

_METHOD = re.compile(r"TfLiteStatus\s+(Add\w+)\(\s*const\s+TFLMRegistration&\s+registration\s*=\s*(Register_\w+)\(\)\s*\)")
_VARIANT = re.compile(r"^TFLMRegistration\s+(Register_\w+?)_(INT8_INT16|INT8|INT16|INT4)\s*\(\s*\)\s*\{", re.M)
RESOLVER_HEADER = "src/tensorflow/lite/micro/micro_mutable_op_resolver.h"
KERNEL_HEADERS = "src/tensorflow/lite/micro/kernels"
BIAS_TYPES = ("INT32", "INT64")
# variant suffix -> (activation input type, output type, constant (weight) type)
VARIANT_TYPES = {"INT8": ("INT8", "INT8", "INT8"), "INT16": ("INT16", "INT16", "INT8"),
                 "INT4": ("INT8", "INT8", "INT4"), "INT8_INT16": ("INT8", "INT16", "INT8")}


@lru_cache(maxsize=8)
def resolver_methods(root: str) -> dict[str, str]:
    """{resolver method: its default registration function} for the methods that take a registration."""
    try:
        text = (Path(root) / RESOLVER_HEADER).read_text(errors="replace")
    except OSError:  # not a TFLM tree with that header: generic registrations only
        return {}
    return dict(_METHOD.findall(text))


@lru_cache(maxsize=64)
def kernel_variants(root: str, kernel_source: str) -> dict[str, tuple[str, ...]]:
    """{base registration: variant suffixes} that the kernel file ``kernel_source`` (tree-relative) defines."""
    found: dict[str, list[str]] = {}
    try:
        text = (Path(root) / kernel_source).read_text(errors="replace")
    except OSError:
        return {}
    for base, suffix in _VARIANT.findall(text):
        found.setdefault(base, []).append(suffix)
    return {k: tuple(v) for k, v in found.items()}


@lru_cache(maxsize=8)
def declaring_headers(root: str) -> dict[str, str]:
    """{registration function: the kernels/ header that declares it, include-path relative (without "src/")}."""
    found: dict[str, str] = {}
    for h in sorted((Path(root) / KERNEL_HEADERS).glob("*.h")):
        for name in re.findall(r"\bTFLMRegistration\s+(Register_\w+)\s*\(\s*\)\s*;", h.read_text(errors="replace")):
            found.setdefault(name, h.relative_to(Path(root) / "src").as_posix())
    return found


def _matches(model, operator, suffix: str) -> bool:
    act, out_t, weight = VARIANT_TYPES[suffix]
    tensors = model.tensors
    for i in operator.inputs:
        if i < 0:
            continue
        t = tensors[i]
        if t.is_constant:
            if t.dtype not in BIAS_TYPES and t.dtype != weight:
                return False
        elif t.dtype != act:
            return False
    return all(tensors[o].dtype == out_t for o in operator.outputs if o >= 0)


def choose(model, op: str, variants: tuple[str, ...]) -> str | None:
    """The variant suffix every instance of ``op`` in ``model`` fits, or None."""
    instances = [o for o in model.operators if o.op == op]
    if not instances:
        return None
    for suffix in variants:
        if all(_matches(model, o, suffix) for o in instances):
            return suffix
    return None


def registrations(model, calls: list[dict], tflm_root: Path, kernel_path) -> dict[str, dict]:
    """{op name: {"function": specialized registration (e.g. ``Register_CONV_2D_INT8``), "header": where it is
    declared}} for the resolver calls ``calls`` ({op, method, kernel}); ``kernel_path(kernel)`` gives a kernel's
    tree-relative source file."""
    root = str(tflm_root)
    methods = resolver_methods(root)
    headers = declaring_headers(root)
    chosen = {}
    for call in calls:
        base = methods.get(call["method"])
        if base is None:
            continue
        suffix = choose(model, call["op"], kernel_variants(root, kernel_path(call["kernel"])).get(base, ()))
        if suffix is not None and f"{base}_{suffix}" in headers:
            chosen[call["op"]] = {"function": f"{base}_{suffix}", "header": headers[f"{base}_{suffix}"]}
    return chosen


def template_values(model, calls: list[dict], tflm_root: Path, kernel_path) -> dict:
    """``op_registrations`` ({op: the argument of its resolver call, "" for the generic one}) and
    ``op_registration_headers`` for templates/common/ops_resolver.h.j2."""
    chosen = registrations(model, calls, tflm_root, kernel_path)
    return {"op_registrations": {c["op"]: f"tflite::{chosen[c['op']]['function']}()" if c["op"] in chosen else ""
                                 for c in calls},
            "op_registration_headers": sorted({v["header"] for v in chosen.values()})}

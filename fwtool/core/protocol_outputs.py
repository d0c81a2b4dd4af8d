"""The inference app's line for a model's further outputs, part of fwtool/core/protocol.py's line set:
``protocol.c_formats()`` hands its format to the firmware and ``protocol.parse_line()`` parses it.

``FWT:INFER`` carries output tensor 0 (unchanged, so older hosts keep parsing it). A model with several outputs
prints, right after it, one line per further output tensor ``t`` (1, 2, ...) of the same inference ``n``::

    FWT:INFER n=7 us=24113 top=class_2 score=0.9961 scores=0.0000,0.0039,0.9961 q=-128,-127,127
    FWT:INFER_OUT n=7 t=1 q=-128,12,40

``q``: every raw quantized value of output tensor ``t`` (printed as long: int8..int32 tensors). A host that does
not know this line sees free text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

PREFIX_INFER_OUT = "FWT:INFER_OUT"
INFER_OUT_FIELDS = [("n", "%lu"), ("t", "%lu")]
INFER_OUT_VECTOR = ("q", "%ld")  # after the fixed fields, comma-separated
_PAIR = re.compile(r"(\w+)=(\S*)")


def outputs_c_formats() -> dict:
    """printf format of FWT:INFER_OUT (fixed fields; the vector follows comma-separated, like ``c_formats()``)."""
    return {"infer_out": PREFIX_INFER_OUT + "".join(f" {n}={c}" for n, c in INFER_OUT_FIELDS),
            "infer_out_vector": {"name": INFER_OUT_VECTOR[0], "conv": INFER_OUT_VECTOR[1]}}


@dataclass
class InferenceOutput:
    """``FWT:INFER_OUT``: output tensor ``t`` (>= 1) of inference ``n`` (output 0 is in the FWT:INFER line)."""

    n: int
    t: int
    q: list[int] = field(default_factory=list)
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": "inference_output", "n": self.n, "t": self.t, "q": self.q}


def parse_outputs_line(line: str) -> InferenceOutput | None:
    """Parse one FWT:INFER_OUT line; None for anything else or a malformed record."""
    line = line.strip()
    i = line.find(PREFIX_INFER_OUT + " ")
    if i < 0:
        return None
    p = dict(_PAIR.findall(line[i + len(PREFIX_INFER_OUT):]))
    try:
        q = [int(x) for x in p["q"].split(",")] if p.get("q") else []
        return InferenceOutput(n=int(p["n"]), t=int(p["t"]), q=q, raw=line)
    except (KeyError, ValueError):
        return None

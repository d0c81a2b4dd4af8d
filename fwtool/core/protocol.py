"""The machine-readable lines fwtool firmware prints, defined once.

The firmware template gets its printf formats from here (``c_formats()``); ``fwtool monitor``, ``fwtool run`` and
``fwtool validate`` parse with ``parse_line()``. Format (one line each, ``key=value`` pairs separated by one space,
values never contain spaces; vectors are comma-separated)::

    FWT:BOOT model=fire_alarm sha256=4d5f2cd1842e board=pico arena=12345 arena_used=11872 ops=6 in=int8:1x124x129x1 out=int8:1x1 labels=fire_alarm fwtool=0.1.0
    FWT:INFER n=7 us=24113 top=fire_alarm score=0.9961 scores=0.9961 q=127
    FWT:ERROR AllocateTensors failed: arena too small (rebuild with a larger --arena)
    FWT:OUT v=3 t=0 us=22101 q=-128
    FWT:DONE n=20 inputs=3f2a9c0d1e7b

The validation app (``fwtool validate``) prints one ``FWT:OUT`` line per output tensor ``t`` per input vector ``v``
(``q``: every raw quantized value of that tensor, ``us``: that vector's ``Invoke()`` time), then ``FWT:DONE`` with
the number of vectors it ran and the first 12 hex digits of the sha256 of their bytes.

``scores`` are the dequantized values of output tensor 0 (``(q - zero_point) * scale``), ``q`` the raw quantized
values, ``us`` the ``Invoke()`` time in microseconds from ``time_us_64()``, ``top`` the label of the highest score.
Any other line the firmware prints is free text.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

PREFIX_BANNER = "FWT:BOOT"
PREFIX_INFER = "FWT:INFER"
PREFIX_ERROR = "FWT:ERROR"  # "FWT:ERROR <free text>": the firmware cannot run (repeated every second)
PREFIX_OUT = "FWT:OUT"  # validation app: one output tensor of one input vector
PREFIX_DONE = "FWT:DONE"  # validation app: all vectors ran

# (field, printf conversion) in the order the firmware prints them.
BANNER_FIELDS = [
    ("model", "%s"), ("sha256", "%s"), ("board", "%s"), ("arena", "%lu"), ("arena_used", "%lu"),
    ("ops", "%lu"), ("in", "%s"), ("out", "%s"), ("labels", "%s"), ("fwtool", "%s"),
]
INFER_FIELDS = [("n", "%lu"), ("us", "%lu"), ("top", "%s"), ("score", "%.4f")]
INFER_VECTORS = [("scores", "%.4f"), ("q", "%d")]  # printed after the fixed fields, comma-separated
OUT_FIELDS = [("v", "%lu"), ("t", "%lu"), ("us", "%lu")]
OUT_VECTOR = ("q", "%ld")  # after the fixed fields, comma-separated (printed as long: int8..int32 tensors)
DONE_FIELDS = [("n", "%lu"), ("inputs", "%s")]  # inputs: sha256[:12] of the vectors

_INT_FIELDS = {"arena", "arena_used", "ops", "n", "us", "v", "t"}
_PAIR = re.compile(r"(\w+)=(\S*)")


def c_formats() -> dict[str, str]:
    """printf formats for the firmware template (each ends before the newline / vector part)."""
    def fmt(prefix, fields):
        return prefix + "".join(f" {name}={conv}" for name, conv in fields)

    return {
        "banner": fmt(PREFIX_BANNER, BANNER_FIELDS),
        "infer": fmt(PREFIX_INFER, INFER_FIELDS),
        "vectors": [{"name": n, "conv": c} for n, c in INFER_VECTORS],
        "out": fmt(PREFIX_OUT, OUT_FIELDS), "out_vector": {"name": OUT_VECTOR[0], "conv": OUT_VECTOR[1]},
        "done": fmt(PREFIX_DONE, DONE_FIELDS),
        "error": PREFIX_ERROR + " %s",
    }


@dataclass
class Banner:
    fields: dict
    raw: str = ""

    @property
    def labels(self) -> list[str]:
        v = self.fields.get("labels", "")
        return v.split(",") if v else []

    def to_dict(self) -> dict:
        return {"type": "banner", **self.fields}


@dataclass
class Inference:
    n: int
    us: int
    top: str
    score: float
    scores: list[float] = field(default_factory=list)
    q: list[int] = field(default_factory=list)
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": "inference", "n": self.n, "us": self.us, "top": self.top, "score": self.score,
                "scores": self.scores, "q": self.q}


@dataclass
class FirmwareError:
    """``FWT:ERROR <text>``: the firmware stopped (e.g. AllocateTensors failed) and keeps repeating why."""

    text: str
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": "error", "text": self.text}


def _pairs(rest: str) -> dict:
    out = {}
    for k, v in _PAIR.findall(rest):
        out[k] = int(v) if k in _INT_FIELDS and re.fullmatch(r"-?\d+", v) else v
    return out


def _vector(text: str, cast):
    if not text:
        return []
    return [cast(x) for x in text.split(",")]


@dataclass
class Output:
    """``FWT:OUT``: output tensor ``t`` of input vector ``v`` (validation app)."""

    v: int
    t: int
    us: int
    q: list[int] = field(default_factory=list)
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": "output", "v": self.v, "t": self.t, "us": self.us, "q": self.q}


@dataclass
class Done:
    """``FWT:DONE``: the validation app ran all ``n`` vectors."""

    n: int
    inputs: str | None = None
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": "done", "n": self.n, "inputs": self.inputs}


def parse_line(line: str) -> Banner | Inference | FirmwareError | Output | Done | None:
    """Parse one line (without its newline). Returns None for free text or a malformed record."""
    line = line.strip()
    i = line.find(PREFIX_ERROR)
    if i >= 0 and line[i + len(PREFIX_ERROR):i + len(PREFIX_ERROR) + 1] in ("", " "):
        return FirmwareError(line[i + len(PREFIX_ERROR):].strip(), raw=line)
    # The prefix may follow other text on the same line (e.g. a log prefix), so search, don't match.
    i = line.find(PREFIX_BANNER + " ")
    if i >= 0:
        return Banner(_pairs(line[i + len(PREFIX_BANNER):]), raw=line)
    i = line.find(PREFIX_INFER + " ")
    if i >= 0:
        p = _pairs(line[i + len(PREFIX_INFER):])
        try:
            return Inference(n=int(p["n"]), us=int(p["us"]), top=str(p["top"]), score=float(p["score"]),
                             scores=_vector(p.get("scores", ""), float), q=_vector(p.get("q", ""), int), raw=line)
        except (KeyError, ValueError):
            return None
    i = line.find(PREFIX_OUT + " ")
    if i >= 0:
        p = _pairs(line[i + len(PREFIX_OUT):])
        try:
            return Output(v=int(p["v"]), t=int(p["t"]), us=int(p["us"]), q=_vector(p["q"], int), raw=line)
        except (KeyError, ValueError):
            return None
    i = line.find(PREFIX_DONE + " ")
    if i >= 0:
        p = _pairs(line[i + len(PREFIX_DONE):])
        try:
            inputs = p.get("inputs")
            return Done(n=int(p["n"]), inputs=None if inputs in (None, "", "none") else str(inputs), raw=line)
        except (KeyError, ValueError):
            return None
    return None

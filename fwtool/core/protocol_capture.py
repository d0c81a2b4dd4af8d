"""The audio apps' detect-then-capture lines (``fwtool build --capture``), part of fwtool/core/protocol.py's line
set: ``protocol.c_formats()`` hands their formats to the firmware (templates/common/fwt_capture.h.j2) and
``protocol.parse_line()`` parses them; fwtool/monitor/handoff.py reads them around the capture's FWR frames::

    FWT:CAPCFG rate=16000 pre=4800 post=48000 frame=256 inference=continues   after FWT:AUDIO: what a detection sends
    FWT:CAPTURE n=3 label=yes rate=16000 pre=4800 samples=52800 frame=256     after FWT:DETECT n=3: FWR frames follow
    FWT:CAPEND n=3 sent=52800 lost=0 overrun=0                                then an FWR frame with count 0

``pre``: samples before the detection; ``samples``: pre + post; ``lost``: samples the app never had (microphone
overruns, zeros in the capture); ``overrun``: samples the link could not carry (a gap in the frames' seq).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

PREFIX_CAPCFG, PREFIX_CAPTURE, PREFIX_CAPEND = "FWT:CAPCFG", "FWT:CAPTURE", "FWT:CAPEND"
CAPCFG_FIELDS = [("rate", "%lu"), ("pre", "%lu"), ("post", "%lu"), ("frame", "%u"), ("inference", "%s")]
CAPTURE_FIELDS = [("n", "%lu"), ("label", "%s"), ("rate", "%lu"), ("pre", "%lu"), ("samples", "%lu"), ("frame", "%u")]
CAPEND_FIELDS = [("n", "%lu"), ("sent", "%lu"), ("lost", "%lu"), ("overrun", "%lu")]
_KINDS = {PREFIX_CAPCFG: ("config", CAPCFG_FIELDS), PREFIX_CAPTURE: ("start", CAPTURE_FIELDS),
          PREFIX_CAPEND: ("end", CAPEND_FIELDS)}
_PAIR = re.compile(r"(\w+)=(\S*)")


def capture_c_formats() -> dict:
    """printf formats of the three lines (each ends before the newline)."""
    def fmt(prefix, fields):
        return prefix + "".join(f" {name}={conv}" for name, conv in fields)

    return {"capcfg": fmt(PREFIX_CAPCFG, CAPCFG_FIELDS), "capture": fmt(PREFIX_CAPTURE, CAPTURE_FIELDS),
            "capend": fmt(PREFIX_CAPEND, CAPEND_FIELDS)}


@dataclass
class CaptureLine:
    """``kind`` "config" | "start" | "end"; ``fields`` as parsed (ints where the format is numeric)."""

    kind: str
    fields: dict = field(default_factory=dict)
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": f"capture_{self.kind}", **self.fields}


def parse_capture_line(line: str) -> CaptureLine | None:
    """One of the three lines (anywhere in ``line``, like the other audio lines), else None (also when malformed)."""
    line = line.strip()
    for prefix, (kind, fields) in _KINDS.items():
        i = line.find(prefix + " ")
        if i < 0:
            continue
        pairs = dict(_PAIR.findall(line[i + len(prefix):]))
        try:
            return CaptureLine(kind, {name: pairs[name] if conv == "%s" else int(pairs[name])
                                      for name, conv in fields}, raw=line)
        except (KeyError, ValueError):
            return None
    return None

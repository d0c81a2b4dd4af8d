"""The profile app's FWT: lines (``fwtool profile``, templates/apps/profile), part of fwtool/core/protocol.py's
line set: ``protocol.c_formats()`` hands these formats to the firmware and ``protocol.parse_line()`` parses them.

Device -> host, after FWT:BOOT, for each run r (values in microseconds from ``fwt_time_us()``)::

    FWT:PROF r=1 i=0 t=3 us=1834 op=CONV_2D
    FWT:SPLIT r=1 i=0 calls=4 c0=850 c1=862 wait=14
    FWT:PROFRUN r=1 us=24113 events=6 dropped=0 arena_used=11872
    FWT:DONE n=3 inputs=none

``FWT:PROF``: profiler event ``i`` (0-based, in the order TFLM began them) of run ``r``: its start ``t`` since
``Invoke()`` began and its duration ``us``; ``op`` is the event's tag, the op name TFLM's MicroProfilerInterface hook
passes (``OpNameFromRegistration``: ``CONV_2D``, or a custom op's name). A subgraph op's (IF, WHILE, CALL_ONCE)
inner operators are events nested inside its own (their t/us lie within it).
``FWT:SPLIT`` (dual-core builds, after the FWT:PROF line of an event during which pico-tflmicro split matrix
products across the cores): how many products were split, and in µs core 0's share ``c0``, core 1's share ``c1``
and core 0's wait for core 1 ``wait`` (timed by the profile build's copy of the split kernel). Core 0 is busy for
the event's ``us`` minus ``wait``; core 1 only for ``c1``.
``FWT:PROFRUN``: run ``r``'s whole ``Invoke()`` time, the events recorded and those dropped (the firmware's event
buffer was full), and ``interpreter.arena_used_bytes()`` after the run.
``FWT:DONE``: all runs printed (the validation app's line, ``n`` = runs).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX_PROF = "FWT:PROF"
PREFIX_PROFRUN = "FWT:PROFRUN"
# (field, printf conversion) in the order the firmware prints them.
PROF_FIELDS = [("r", "%lu"), ("i", "%lu"), ("t", "%lu"), ("us", "%lu"), ("op", "%s")]
PREFIX_SPLIT = "FWT:SPLIT"
SPLIT_FIELDS = [("r", "%lu"), ("i", "%lu"), ("calls", "%lu"), ("c0", "%lu"), ("c1", "%lu"), ("wait", "%lu")]
PROFRUN_FIELDS = [("r", "%lu"), ("us", "%lu"), ("events", "%lu"), ("dropped", "%lu"), ("arena_used", "%lu")]
_PAIR = re.compile(r"(\w+)=(\S*)")


def profile_c_formats() -> dict[str, str]:
    """printf formats of the profile app's lines (each ends before the newline)."""
    return {"prof": PREFIX_PROF + "".join(f" {n}={c}" for n, c in PROF_FIELDS),
            "profrun": PREFIX_PROFRUN + "".join(f" {n}={c}" for n, c in PROFRUN_FIELDS),
            "split": PREFIX_SPLIT + "".join(f" {n}={c}" for n, c in SPLIT_FIELDS)}


@dataclass
class ProfileEvent:
    """``FWT:PROF``: profiler event ``i`` of run ``r`` (start ``t`` and duration ``us`` since Invoke() began)."""

    r: int
    i: int
    t: int
    us: int
    op: str
    raw: str = ""

    @property
    def end(self) -> int:
        return self.t + self.us

    def to_dict(self) -> dict:
        return {"type": "profile_event", "r": self.r, "i": self.i, "t": self.t, "us": self.us, "op": self.op}


@dataclass
class ProfileRun:
    """``FWT:PROFRUN``: run ``r``'s whole Invoke() time, its event count, dropped events and arena use."""

    r: int
    us: int
    events: int
    dropped: int
    arena_used: int
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": "profile_run", "r": self.r, "us": self.us, "events": self.events, "dropped": self.dropped,
                "arena_used": self.arena_used}


@dataclass
class ProfileSplit:
    """``FWT:SPLIT``: event ``i`` of run ``r`` split ``calls`` matrix products: core 0's share ``c0``, core 1's
    ``c1`` and core 0's wait for core 1 ``wait`` (µs)."""

    r: int
    i: int
    calls: int
    c0: int
    c1: int
    wait: int
    raw: str = ""

    def to_dict(self) -> dict:
        return {"type": "profile_split", "r": self.r, "i": self.i, "calls": self.calls, "c0": self.c0,
                "c1": self.c1, "wait": self.wait}


def parse_profile_line(line: str) -> ProfileEvent | ProfileRun | ProfileSplit | None:
    """Parse one profile-app line (without its newline); None for anything else or a malformed record."""
    line = line.strip()
    for prefix, fields in ((PREFIX_PROF, PROF_FIELDS), (PREFIX_PROFRUN, PROFRUN_FIELDS),
                           (PREFIX_SPLIT, SPLIT_FIELDS)):
        at = line.find(prefix + " ")  # may follow other text on the line, like every FWT: line
        if at < 0:
            continue
        pairs = dict(_PAIR.findall(line[at + len(prefix):]))
        try:
            ints = [int(pairs[name]) for name, conv in fields if conv == "%lu"]
        except (KeyError, ValueError):
            return None
        if any(v < 0 for v in ints):
            return None
        if prefix == PREFIX_PROFRUN:
            return ProfileRun(*ints, raw=line)
        if prefix == PREFIX_SPLIT:
            return ProfileSplit(*ints, raw=line)
        op = pairs.get("op", "")
        return ProfileEvent(*ints, op=op, raw=line) if op else None
    return None

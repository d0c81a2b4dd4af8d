"""Tensor-arena sizing by measurement with the TFLM Python interpreter (the ``tflite-micro`` wheel).

The host interpreter is TFLM itself (64-bit, reference kernels). We find the smallest arena with which
``AllocateTensors()`` and one ``Invoke()`` succeed (binary search to 16 bytes). On the 32-bit target the
persistent structures are smaller (4-byte pointers), but CMSIS-NN kernels ask for scratch buffers the reference
kernels do not (e.g. conv: 4 bytes per ⌈filter_h·filter_w·in_ch⌉₄), so fwtool adds a margin of
``max(MARGIN_MIN, MARGIN_FRACTION × measured)`` rounded up to 16 bytes. The firmware reports the arena it really
used in its banner (``arena_used``).
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np

from .errors import FwtoolError
from .model import Model

MARGIN_FRACTION = 0.10
MARGIN_MIN = 1024
_UPPER = 16 * 1024 * 1024


@dataclass(frozen=True)
class ArenaSize:
    measured: int  # smallest arena the host interpreter ran with
    margin: int
    total: int  # what goes into the firmware
    source: str  # "measured" or "override"

    def to_dict(self) -> dict:
        return {"measured_bytes": self.measured, "margin_bytes": self.margin, "arena_bytes": self.total,
                "source": self.source}


@contextlib.contextmanager
def _quiet_fds():
    """TFLM's C++ logs allocation failures straight to fd 1/2 while we probe; hide them."""
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


def _runs(runtime, data: bytes, model: Model, size: int) -> bool:
    try:
        interp = runtime.Interpreter.from_bytes(data, arena_size=size)
        for i, t in enumerate(model.inputs):
            interp.set_input(np.zeros(t.shape, dtype=t.numpy_dtype), i)
        interp.invoke()
        return True
    except Exception:
        return False


def measure(model: Model) -> int:
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as e:  # pragma: no cover - dependency of the package
        raise FwtoolError("the tflite-micro Python package is missing, so the arena cannot be measured",
                          "pip install tflite-micro, or pass --arena BYTES") from e
    with _quiet_fds():
        if not _runs(runtime, model.data, model, _UPPER):
            raise FwtoolError(f"the TFLM interpreter could not run {model.path.name} even with a 16 MiB arena",
                              "check the model with 'fwtool inspect'; it may use unsupported op versions")
        lo, hi = 0, _UPPER
        while hi - lo > 16:
            mid = (lo + hi) // 2 // 16 * 16
            if mid <= lo:
                break
            if _runs(runtime, model.data, model, mid):
                hi = mid
            else:
                lo = mid
    return hi


def size_for(model: Model, override: int | None = None) -> ArenaSize:
    if override is not None:
        return ArenaSize(0, 0, (override + 15) // 16 * 16, "override")
    measured = measure(model)
    margin = max(MARGIN_MIN, int(measured * MARGIN_FRACTION))
    total = (measured + margin + 15) // 16 * 16
    return ArenaSize(measured, total - measured, total, "measured")

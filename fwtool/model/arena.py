"""Tensor-arena sizing by measurement with the TFLM Python interpreter (the ``tflite-micro`` wheel).

The host interpreter (fwtool/model/host.py) is TFLM itself (64-bit, reference kernels). We find the smallest arena
with which ``AllocateTensors()`` and one ``Invoke()`` succeed (binary search to 16 bytes). On the 32-bit target the
persistent structures are smaller (4-byte pointers), but CMSIS-NN kernels ask for scratch buffers the reference
kernels do not (e.g. conv: 4 bytes per ⌈filter_h·filter_w·in_ch⌉₄), so fwtool adds a margin of
``max(MARGIN_MIN, MARGIN_FRACTION × measured)`` rounded up to 16 bytes. The firmware reports the arena it really
used in its banner (``arena_used``).
"""
from __future__ import annotations

import importlib.metadata
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from fwtool.core import userfile
from fwtool.core.escape import terminal
from fwtool.core.errors import BadInput, FwtoolError, MissingTool
from fwtool.core.files import atomic_write
from fwtool.core.paths import cache_dir
from fwtool.model import host
from fwtool.model.tflite import Model, load_model

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


def runs(model: Model, size: int) -> bool:
    """Whether ``model`` allocates and runs one inference (zero inputs) with a ``size``-byte arena."""
    try:
        interp = host.HostInterpreter(model.data, size)
        interp.run([np.zeros(t.shape, dtype=t.numpy_dtype) for t in model.inputs], 0)
        return True
    except Exception:
        return False


def _bisect(model: Model, lo: int, hi: int | None, note: Callable[[str, int], None]) -> int:
    """Smallest arena (16-byte steps) in (lo, hi] with which the model runs; ``hi=None``: check _UPPER first."""
    if hi is None:
        note("try", _UPPER)
        if not runs(model, _UPPER):
            note("upper", _UPPER)
            return -1
        note("ok", _UPPER)
        hi = _UPPER
    while hi - lo > 16:
        mid = (lo + hi) // 2 // 16 * 16
        if mid <= lo:
            break
        note("try", mid)
        if runs(model, mid):
            note("ok", mid)
            hi = mid
        else:
            note("fail", mid)
            lo = mid
    note("done", hi)
    return hi


def _probe_main(argv: list[str]) -> None:
    """Child process: ``python -m fwtool.model.arena MODEL LO HI RESULTS`` appends 'try/ok/fail/done N' lines."""
    model, lo, hi, results = load_model(argv[0]), int(argv[1]), int(argv[2]) or None, argv[3]
    with open(results, "a", buffering=1) as out, host.quiet_native_output():
        _bisect(model, lo, hi, lambda kind, size: (out.write(f"{kind} {size}\n"), out.flush()))


def measure(model: Model) -> int:
    """Bisect in a child process: for some sizes just below the minimum TFLM aborts the whole process
    ("All temp buffers must be freed before calling ResetTempAllocations()", seen with a FULLY_CONNECTED
    first layer) instead of failing AllocateTensors. A probe that kills the child counts as too small; a crash
    with the 16 MiB arena is the model's fault (:func:`fwtool.model.host.crash_error`)."""
    try:
        host.load_runtime()
    except FwtoolError as e:  # pragma: no cover - dependency of the package
        raise MissingTool("the tflite-micro Python package is missing, so the arena cannot be measured",
                          "pip install tflite-micro, or pass --arena BYTES") from e

    lo, hi = 0, None
    with tempfile.TemporaryDirectory(prefix="fwtool-arena-") as tmp:
        model_file, results = Path(tmp) / "model.tflite", Path(tmp) / "probes.txt"
        model_file.write_bytes(model.data)
        for _ in range(64):
            results.unlink(missing_ok=True)
            proc = host.run_child("fwtool.model.arena", [model_file, lo, hi or 0, results])
            pending = None
            for line in (results.read_text().splitlines() if results.is_file() else []):
                kind, size = line.split()[0], int(line.split()[1])
                if kind == "done":
                    return size
                if kind == "upper":
                    pending = -1
                    break
                pending = size if kind == "try" else None
                if kind == "ok":
                    hi = size
                elif kind == "fail":
                    lo = size
            if pending == _UPPER and hi is None and proc.signal:
                raise host.crash_error(proc.signal)
            if pending == -1 or (pending == _UPPER and hi is None):
                raise FwtoolError(f"the TFLM interpreter could not run {model.path.name} even with a 16 MiB arena",
                                  "check the model with 'fwtool inspect'; it may use unsupported op versions")
            if pending is None:  # the child failed before probing (import error, bad file)
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [f"exit {proc.returncode}"]
                raise FwtoolError(f"measuring the arena of {model.path.name} failed: {tail[0][:200]}",
                                  "pass --arena BYTES to skip the measurement")
            lo = pending  # the child died probing this size: TFLM aborted, the arena is too small
    raise FwtoolError(f"measuring the arena of {model.path.name} did not converge",
                      "pass --arena BYTES to skip the measurement")


def _runtime_version() -> str:
    try:
        return importlib.metadata.version("tflite-micro")
    except Exception:  # pragma: no cover
        return "unknown"


def _read_cache_entry(path: Path, key: str) -> int | None:
    """The cached measurement, or None for a missing, unreadable, corrupt or implausible entry (re-measured)."""
    try:
        userfile.check(path, "arena cache entry", 4096, "")
        entry = json.loads(path.read_text())
    except (FwtoolError, OSError, ValueError):
        return None
    if not isinstance(entry, dict) or entry.get("tflite_micro") != key:
        return None
    measured = entry.get("measured")
    if type(measured) is not int or not 0 < measured <= _UPPER:  # noqa: E721 - bool is not a size
        return None
    return measured


def cached_measure(model: Model) -> int:
    """measure(), remembered per (model sha256, tflite-micro version) in the cache: a rebuild of the same model
    does not start the interpreter again."""
    path = cache_dir() / "arena" / f"{model.sha256}.json"
    key = _runtime_version()
    cached = _read_cache_entry(path, key)
    if cached is not None:
        return cached
    measured = measure(model)
    try:
        atomic_write(path, json.dumps({"tflite_micro": key, "measured": measured}))
    except OSError:  # a read-only cache only costs time
        pass
    return measured


def size_for(model: Model, override: int | None = None) -> ArenaSize:
    if override is not None:
        if override <= 0 or override > _UPPER:
            raise BadInput(f"--arena {override} is not a usable arena size", f"give 1..{_UPPER} bytes, or omit --arena")
        total = (override + 15) // 16 * 16
        try:
            host.load_runtime()
        except FwtoolError:  # no host interpreter: the override cannot be checked, the firmware reports it
            return ArenaSize(0, 0, total, "override")
        measured = cached_measure(model)
        if total < measured:
            raise BadInput(f"--arena {override:,} is smaller than the {measured:,} bytes {terminal(model.path.name)} needs "
                           "(measured with the TFLM interpreter); the firmware would stop with FWT:ERROR",
                           f"pass --arena {measured + max(MARGIN_MIN, int(measured * MARGIN_FRACTION))} or more, "
                           "or omit --arena")
        return ArenaSize(measured, total - measured, total, "override")
    measured = cached_measure(model)
    margin = max(MARGIN_MIN, int(measured * MARGIN_FRACTION))
    total = (measured + margin + 15) // 16 * 16
    return ArenaSize(measured, total - measured, total, "measured")


if __name__ == "__main__":
    _probe_main(sys.argv[1:])

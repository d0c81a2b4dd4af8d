"""Tensor-arena sizing by measurement with the TFLM Python interpreter (the ``tflite-micro`` wheel).

The host interpreter (fwtool/model/host.py) is TFLM itself (64-bit, reference kernels). We find the smallest arena
with which ``AllocateTensors()`` and one ``Invoke()`` succeed (binary search to 16 bytes). On the 32-bit target the
persistent structures are smaller (4-byte pointers), but CMSIS-NN kernels ask for scratch buffers the reference
kernels do not (e.g. conv: 4 bytes per ⌈filter_h·filter_w·in_ch⌉₄), so fwtool adds a margin of
``max(MARGIN_MIN, MARGIN_FRACTION × measured)`` rounded up to 16 bytes. The firmware reports the arena it really
used in its banner (``arena_used``).

Where a family has a virtual board (rp2040: rp2040js), the build runs its firmware there once and records the
banner's ``arena_used`` per (model graph, target family, kernel set, pinned tree revision, fwtool version)
(:func:`record_target`); every later build with the same key (and its fit check, which uses the same
:class:`ArenaSize`) allocates that figure plus a small stated margin (:func:`target_size`, ``source`` "target"):
the same code on the same core allocates the same bytes.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from fwtool import __version__
from fwtool.core import vendor
from fwtool.core.escape import terminal
from fwtool.core.errors import BadInput, FwtoolError, MissingTool
from fwtool.core.files import read_json, write_json
from fwtool.core.paths import cache_dir
from fwtool.model import host
from fwtool.model.tflite import Model, load_model

MARGIN_FRACTION = 0.10
MARGIN_MIN = 1024
# Over a figure measured on the target itself (the virtual board): alignment only, at most ~2 % + 16 B.
TARGET_MARGIN_FRACTION = 0.02
TARGET_MARGIN_MIN = 64
# Bumped when how a target figure is obtained changes: 2 = the tight image was checked to allocate on the target
# (firmware/flow.py), else the figure that did allocate was recorded; older records are not used.
TARGET_RULE = 2
_UPPER = 16 * 1024 * 1024


@dataclass(frozen=True)
class ArenaSize:
    measured: int  # smallest arena the host interpreter ran with
    margin: int
    total: int  # what goes into the firmware
    source: str  # "measured" (host interpreter), "target" (recorded on the virtual board) or "override" (--arena)

    def to_dict(self) -> dict:
        return {"measured_bytes": self.measured, "margin_bytes": self.margin, "arena_bytes": self.total,
                "source": self.source}


def provenance(arena: dict) -> str:
    """Where an arena figure (:meth:`ArenaSize.to_dict`) came from, for one line of console text."""
    used, margin = arena.get("measured_bytes", 0), arena.get("margin_bytes", 0)
    if arena.get("source") == "target":
        return f"measured on the virtual board {used:,} + margin {margin:,}"
    if arena.get("source") == "override":
        return "--arena" + (f", checked against the host measurement {used:,}" if used else ", not checked")
    return f"measured on the host {used:,} + margin {margin:,}"


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
    entry = read_json(path, 4096)
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
    write_json(path, {"tflite_micro": key, "measured": measured})
    return measured


def target_fields(model: Model, target: str, kernels: list[str]) -> dict:
    """What decides the arena a target allocates for ``model``: the target (family), the kernel files, the pinned
    TFLM tree revision and fwtool's version."""
    pinned = vendor.manifest()
    revs = {n: pinned[n].rev for n in ("pico-tflmicro",) if n in pinned}
    return {"graph": graph_sha(model), "target": target, "kernels": sorted(kernels), "revisions": revs,
            "fwtool": __version__, "rule": TARGET_RULE}


def graph_sha(model: Model) -> str:
    """sha256 of what TFLM's allocations depend on: operators (op, version, tensors, options), tensors (shape,
    type, constant or not, quantization array lengths), inputs and outputs; not the weight values, so a retrained
    model of the same graph reuses the target figure."""
    graph = {"ops": [[o.op, o.version, o.inputs, o.outputs, sorted((k, repr(v)) for k, v in o.options.items())]
                     for o in model.operators],
             "tensors": [[t.shape, t.dtype, t.is_constant, len(t.scale), len(t.zero_point)] for t in model.tensors],
             "io": [[t.index for t in model.inputs], [t.index for t in model.outputs]],
             "subgraphs": model.subgraph_count}
    return hashlib.sha256(json.dumps(graph, default=str).encode()).hexdigest()


def _target_path(fields: dict) -> Path:
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]
    return cache_dir() / "arena_target" / f"{key}.json"


def _target_entry(fields: dict) -> dict | None:
    entry = read_json(_target_path(fields), 4096)
    if not isinstance(entry, dict) or entry.get("fields") != fields or not _size_ok(entry.get("arena_used")):
        return None
    if "allocate" in entry and not (_size_ok(entry["allocate"]) and entry["allocate"] >= entry["arena_used"]):
        return None
    return entry


def _size_ok(n) -> bool:
    return type(n) is int and 0 < n <= _UPPER  # noqa: E721 - bool is not a size


def target_used(fields: dict) -> int | None:
    """The ``arena_used`` recorded for ``fields`` on the target, or None (missing, corrupt or implausible)."""
    entry = _target_entry(fields)
    return entry["arena_used"] if entry else None


def record_target(fields: dict, used: int, allocate: int | None = None) -> bool:
    """Remember the target's ``arena_used`` for ``fields`` (and ``allocate``: the arena to use when used + the
    small margin did not allocate on the target); False when implausible or the cache is unwritable."""
    if not _size_ok(used) or (allocate is not None and not (_size_ok(allocate) and allocate >= used)):
        return False
    entry = {"fields": fields, "arena_used": used, **({"allocate": allocate} if allocate is not None else {})}
    return write_json(_target_path(fields), entry)


def target_size(used: int, allocate: int | None = None) -> ArenaSize:
    """The arena for a figure measured on the target: + max(TARGET_MARGIN_MIN, TARGET_MARGIN_FRACTION), to 16 B
    (or ``allocate`` where that was checked to be needed)."""
    if allocate is not None:
        return ArenaSize(used, allocate - used, allocate, "target")
    total = (used + max(TARGET_MARGIN_MIN, int(used * TARGET_MARGIN_FRACTION)) + 15) // 16 * 16
    return ArenaSize(used, total - used, total, "target")


def size_for(model: Model, override: int | None = None, target: dict | None = None) -> ArenaSize:
    """The arena for ``model``: ``override`` (checked against the measurement), else the figure the target
    recorded for ``target`` (:func:`target_fields`) + a small margin, else the host measurement + margin."""
    if override is None and target is not None:
        entry = _target_entry(target)
        if entry is not None:
            return target_size(entry["arena_used"], entry.get("allocate"))
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

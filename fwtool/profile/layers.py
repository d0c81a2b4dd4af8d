"""From the profile app's lines to per-layer figures: which event is which operator, time, cycles, MACs.

Pure data work (no firmware, no I/O), so every rule here is unit-tested on given lines:

* Events come from TFLM's MicroProfilerInterface hook, one per operator invoked. Top-level events are the
  operators of the model's main subgraph, in order; an event inside the interval of a subgraph op (IF, WHILE,
  CALL_ONCE) belongs to that op's subgraph and is listed as nested, not summed.
* Per layer: the median over the runs of its duration (µs on the target's clock), cycles = µs x clock, the
  operator's MACs from its tensor shapes (fwtool.model.inspection.macs), MACs per cycle, share of the whole
  invoke, and the kernel TFLM runs (CMSIS-NN or reference, from the pinned tree's op table and the CPU table).
* The sum of the top-level layers must agree with the whole Invoke() time: the gap (TFLM's loop between operators,
  the profiler's own clock reads, 1 µs truncation per event) must stay within :func:`tolerance_us`.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from fwtool.core import protocol
from fwtool.core.errors import FwtoolError
from fwtool.model.inspection import implementation, macs
from fwtool.model.tflite import Model, tflm_ops

SUBGRAPH_OPS = {"IF", "WHILE", "CALL_ONCE", "STABLEHLO_CASE", "STABLEHLO_WHILE"}  # ops that invoke subgraphs
TOLERANCE_FRACTION = 0.01  # of the whole invoke ...
TOLERANCE_US_PER_EVENT = 4  # ... plus this much per top-level event


def tolerance_us(invoke_us: float, events: int) -> float:
    """How far the sum of the layers may be from the whole Invoke() time: 1 % of it + 4 µs per layer.

    What lies between the events: TFLM's per-operator loop (ResetTempAllocations, status checks), the profiler's
    two clock reads per event, and up to 1 µs of truncation per event (the clock ticks in µs). Measured: 1-2 µs
    per operator on the virtual RP2040 at 125 MHz."""
    return TOLERANCE_FRACTION * invoke_us + TOLERANCE_US_PER_EVENT * events


@dataclass
class Run:
    """One profiled Invoke(): its events in order and the FWT:PROFRUN summary."""

    r: int
    events: list[protocol.ProfileEvent] = field(default_factory=list)
    summary: protocol.ProfileRun | None = None
    splits: dict[int, protocol.ProfileSplit] = field(default_factory=dict)  # event index -> its cores' shares

    def split(self) -> tuple[list[protocol.ProfileEvent], list[protocol.ProfileEvent]]:
        """(top-level events, events nested inside a subgraph op's event)."""
        top, nested, parent = [], [], None
        for e in sorted(self.events, key=lambda x: x.i):
            if parent is not None and e.t >= parent.t and e.end <= parent.end:
                nested.append(e)
                continue
            top.append(e)
            parent = e if e.op in SUBGRAPH_OPS else None
        return top, nested


@dataclass
class Capture:
    """What the profile app printed in one session."""

    banner: dict
    runs: list[Run]


def parse_lines(lines: list[str]) -> Capture:
    """The banner and the complete runs (events + FWT:PROFRUN) in ``lines``; FWT:ERROR raises."""
    banner: dict = {}
    runs: dict[int, Run] = {}
    for line in lines:
        rec = protocol.parse_line(line)
        if isinstance(rec, protocol.FirmwareError):
            raise FwtoolError(f"the profile firmware stopped: {rec.text}",
                              "fix what the firmware says (e.g. rebuild with a larger --arena) and retry")
        if isinstance(rec, protocol.Banner):
            banner = dict(rec.fields)
            runs.clear()  # a new session: only what follows this banner counts
        elif isinstance(rec, protocol.ProfileEvent):
            runs.setdefault(rec.r, Run(rec.r)).events.append(rec)
        elif isinstance(rec, protocol.ProfileRun):
            runs.setdefault(rec.r, Run(rec.r)).summary = rec
        elif isinstance(rec, protocol.ProfileSplit):
            runs.setdefault(rec.r, Run(rec.r)).splits[rec.i] = rec
    done = [runs[r] for r in sorted(runs) if runs[r].summary is not None]
    if not done:
        raise FwtoolError("the profile firmware printed no complete run (no FWT:PROFRUN line)",
                          "re-run with --verbose to see the serial lines; check that the board runs the profile app")
    return Capture(banner, done)


def _median(values: list[int]) -> float:
    return float(statistics.median(values)) if values else 0.0


def kernel_of(model: Model, index: int, cpu: str) -> dict:
    """The kernel TFLM runs for operator ``index``: family (CMSIS-NN/reference), the CPU's code path, the file."""
    op = model.operators[index]
    entry = tflm_ops().get(op.op)
    impl = implementation(op, model, cpu)
    return {"kernel": "CMSIS-NN" if impl.startswith("CMSIS-NN") else impl, "implementation": impl,
            "kernel_file": entry["kernel"] if entry else None}


def _tag(op_name: str) -> str:
    """The tag TFLM gives an operator's event: the builtin name, or a custom op's own name."""
    return op_name.split(":", 1)[1] if op_name.startswith("CUSTOM:") else op_name


def layer_table(model: Model, capture: Capture, clock_hz: float, cpu: str) -> dict:
    """Per-layer rows, per-op totals, the whole invoke and the sum check (plain data for --json)."""
    if model.operators and not any(run.events for run in capture.runs):
        raise FwtoolError("the profile firmware reported no layer events: TFLM's profiler hook is not compiled in",
                          "rebuild with the profile app of this fwtool (its app.toml keeps the hook: tflm_profiler)")
    splits = [run.split() for run in capture.runs]
    tops = [top for top, _ in splits]
    n_layers = max(len(t) for t in tops)
    warnings: list[str] = []
    invoke_runs = [run.summary.us for run in capture.runs]
    invoke = _median(invoke_runs)
    mhz = clock_hz / 1e6
    dual = int(capture.banner.get("cores") or 1) > 1
    rows = []
    for i in range(n_layers):
        events = [t[i] for t in tops if i < len(t)]
        us = _median([e.us for e in events])
        per_core = core_times(capture.runs, tops, i, us) if dual else None
        op_name = events[0].op
        matched = i < len(model.operators) and _tag(model.operators[i].op) == op_name
        row = {"index": i, "op": op_name, "us": us, "us_runs": [e.us for e in events], "cycles": round(us * mhz),
               "share": us / invoke if invoke else 0.0, "macs": None, "macs_per_cycle": None,
               "kernel": None, "implementation": None, "kernel_file": None, "matched": matched, "cores": per_core}
        if matched:
            row.update(kernel_of(model, i, cpu))
            m = macs(model.operators[i], model)
            if m:
                row["macs"] = m
                row["macs_per_cycle"] = m / (us * mhz) if us else None
        rows.append(row)
    if n_layers != len(model.operators) or not all(r["matched"] for r in rows):
        warnings.append(f"the firmware reported {n_layers} top-level events for the model's {len(model.operators)} "
                        "operators (or in another order); MACs and kernels are shown only where they match")
    dropped = max(run.summary.dropped for run in capture.runs)
    if dropped:
        warnings.append(f"{dropped} profiler events did not fit the firmware's event buffer and are missing")
    checks = []
    for run, top in zip(capture.runs, tops):
        total = sum(e.us for e in top)
        gap = run.summary.us - total
        tol = tolerance_us(run.summary.us, len(top))
        checks.append({"run": run.r, "invoke_us": run.summary.us, "layers_us": total, "gap_us": gap,
                       "tolerance_us": tol, "agrees": abs(gap) <= tol})
    worst = max(checks, key=lambda c: abs(c["gap_us"]))
    if not worst["agrees"]:
        warnings.append(f"run {worst['run']}: the layers add up to {worst['layers_us']} µs but the whole invoke took "
                        f"{worst['invoke_us']} µs (gap {worst['gap_us']} µs > tolerance {worst['tolerance_us']:.0f} µs)")
    nested = [e.to_dict() for e in splits[0][1]]
    total_macs = sum(r["macs"] or 0 for r in rows)
    layers_us = sum(r["us"] for r in rows)
    return {
        "invoke_us": invoke, "invoke_us_runs": invoke_runs, "invoke_cycles": round(invoke * mhz),
        "layers_us": layers_us, "gap_us": invoke - layers_us, "tolerance_us": tolerance_us(invoke, len(rows)),
        "agrees": all(c["agrees"] for c in checks), "checks": checks,
        "macs": total_macs, "macs_per_cycle": total_macs / (invoke * mhz) if invoke else None,
        "arena_used": max(run.summary.arena_used for run in capture.runs),
        "layers": rows, "ops": op_totals(rows, invoke, mhz), "nested_events": nested, "warnings": warnings,
        "core_us": [sum(r["cores"]["core0_us"] for r in rows), sum(r["cores"]["core1_us"] for r in rows)]
        if dual else None,  # per-core busy time summed over the layers (from the split kernel's timing)
    }


def core_times(runs: list[Run], tops: list[list[protocol.ProfileEvent]], i: int, us: float) -> dict:
    """Layer ``i``'s busy time per core (medians over the runs), from the firmware's timing of pico-tflmicro's
    split matrix product: core 0 is busy for the layer minus its wait for core 1, core 1 for its share only."""
    splits = [run.splits.get(top[i].i) for run, top in zip(runs, tops) if i < len(top)]
    got = [s for s in splits if s is not None]
    wait, c1 = _median([s.wait for s in got]), _median([s.c1 for s in got])
    return {"split_calls": max((s.calls for s in got), default=0), "core0_us": us - wait, "core1_us": c1,
            "core0_wait_us": wait, "core0_split_us": _median([s.c0 for s in got])}


def op_totals(rows: list[dict], invoke_us: float, mhz: float) -> list[dict]:
    """Per op type, in first-use order: layer count, time, share, MACs, MACs per cycle."""
    out: dict[str, dict] = {}
    for r in rows:
        t = out.setdefault(r["op"], {"op": r["op"], "count": 0, "us": 0.0, "macs": 0, "kernel": r["kernel"]})
        t["count"] += 1
        t["us"] += r["us"]
        t["macs"] += r["macs"] or 0
    for t in out.values():
        t["share"] = t["us"] / invoke_us if invoke_us else 0.0
        t["macs_per_cycle"] = t["macs"] / (t["us"] * mhz) if t["macs"] and t["us"] else None
        t["macs"] = t["macs"] or None
    return list(out.values())

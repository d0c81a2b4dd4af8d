"""Fleet runs: validate (or run and monitor) one model on several labgrid places at once, one aggregated report.

The places come from ``--labgrid PLACE`` (repeatable, or a comma list) or from ``--labgrid-tags k=v --boards N``
(N reservations, waited for, then acquired). The validation firmware is built once; every board is then
flashed through the labgrid driver and read over its exported port in parallel, each compared with the host
reference by the same validate flow as a single board. Everything acquired or reserved is released/cancelled on
the way out (errors and Ctrl-C included).
"""
from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

from fwtool.core.errors import Exit, FwtoolError
from fwtool.core.stats import percentile
from fwtool.lab.places import Lab
from fwtool.lab.target import PlaceTarget
from fwtool.model.tflite import load_model
from fwtool.monitor import MonitorOptions, run_monitor
from fwtool.validate import flow

RESERVE_WAIT_S = 300.0


@dataclass
class LabRequest:
    """What the user asked for on the command line."""

    places: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    boards: int | None = None
    wait_s: float = RESERVE_WAIT_S
    coordinator: str | None = None

    def describe(self) -> str:
        if self.places:
            return ", ".join(self.places)
        return f"{self.boards or 1} place(s) with " + " ".join(f"{k}={v}" for k, v in self.tags.items())


def take_places(lab: Lab, req: LabRequest, on_wait: Callable[[str], None] | None = None) -> list[str]:
    """Acquire the named places, or reserve ``boards`` places by tags, wait for them and acquire them."""
    if req.places:
        if req.boards and req.boards != len(req.places):
            raise FwtoolError(f"--boards {req.boards} but {len(req.places)} place(s) named",
                              "drop --boards, or use --labgrid-tags instead of naming places", Exit.USAGE)
        for p in req.places:
            lab.acquire(p)
        return list(req.places)
    names = sorted(lab.reserve(req.tags, req.boards or 1, req.wait_s, on_wait))
    for p in names:
        lab.acquire(p)
    return names


def all_virtual(req: LabRequest | None) -> bool:
    """True when every place the request can get is a virtual board (tag virtual=1): build for one core."""
    if req is None:
        return False
    with Lab(req.coordinator) as lab:
        names = req.places or lab.places_with(req.tags)
        return bool(names) and all(lab.place(n).tags.get("virtual") == "1" for n in names)


def one_place(lab: Lab, req: LabRequest, on_wait: Callable[[str], None] | None = None) -> PlaceTarget:
    """The one place of a single-board command (acquired, or reserved by tags and acquired)."""
    return PlaceTarget(lab, take_places(lab, replace(req, boards=1), on_wait=on_wait)[0])


def in_parallel(fn: Callable, items: list, name: str) -> None:
    """``fn(item)`` for every item in its own thread; short joins, so Ctrl-C reaches the main thread (and
    Lab.close() releases the places)."""
    threads = [threading.Thread(target=fn, args=(it,), daemon=True, name=f"{name}-{i}") for i, it in enumerate(items)]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)


def _max_diff(report: dict):
    diffs = [o["max_abs_diff"] for o in report.get("outputs", []) if o.get("max_abs_diff") is not None]
    return max(diffs) if diffs else None


def aggregate(model: str, results: list[tuple[str, dict]]) -> dict:
    """One row per board (pass/fail, max |Δ|, p95 latency) and the overall verdict; the per-board reports too.
    The exit code is 0 when every board passed, else the first failing board's (8 for a threshold miss)."""
    rows = []
    for place, r in results:
        if "error" in r and "outputs" not in r:
            rows.append({"place": place, "ok": False, "exit_code": r["exit_code"], "max_abs_diff": None,
                         "p95_ms": None, "port": None, "error": r["error"], "fix": r.get("fix")})
            continue
        lat = r.get("latency") or {}
        rows.append({"place": place, "ok": bool(r["ok"]), "exit_code": int(r["exit_code"]),
                     "max_abs_diff": _max_diff(r), "p95_ms": lat.get("p95_ms"), "port": r["target"].get("port"),
                     "virtual": r["target"].get("virtual", False),
                     "error": None if r["ok"] else "; ".join(r.get("problems", [])) or "FAIL"})
    failing = [row for row in rows if not row["ok"]]
    return {"ok": not failing and bool(rows), "exit_code": int(failing[0]["exit_code"]) if failing else 0,
            "model": model, "boards": rows, "passed": len(rows) - len(failing), "failed": len(failing),
            "reports": {place: r for place, r in results}}


def validate_fleet(req: LabRequest, opts: flow.ValidateOptions, *, on_step: Callable[[str], None] = lambda s: None,
                   on_line: Callable[[str, str], None] = lambda place, line: None) -> dict:
    """Validate ``opts.model`` on every place of ``req`` in parallel; the aggregated report."""
    with Lab(req.coordinator) as lab:
        on_step(f"taking labgrid places ({req.describe()})")
        places = take_places(lab, req, on_wait=on_step)
        lock = threading.Lock()
        boards = [PlaceTarget(lab, p, lock) for p in places]
        kinds = {b.board for b in boards}
        if len(kinds) > 1:
            raise FwtoolError(f"the places hold different boards ({', '.join(sorted(kinds))}); one build cannot "
                              "serve them", "pick places of one board (--labgrid-tags board=pico)", Exit.USAGE)
        opts = replace(opts, target="board", board=kinds.pop(), flash=True)
        model = load_model(opts.model)
        vectors, source = flow.make_vectors(opts, model)
        on_step("building the validation firmware (once for all boards)")
        built = flow.build_firmware(opts, model, vectors, source, on_step=on_step)
        results: dict[str, dict] = {}

        def one(b: PlaceTarget) -> None:
            try:
                results[b.place] = flow.run(replace(opts, prebuilt=built, on_target=b),
                                            on_line=lambda line: on_line(b.place, line))
            except FwtoolError as e:
                results[b.place] = {"ok": False, **e.to_dict()}
            except Exception as e:  # a bug in one board's run must not hide the others' results
                results[b.place] = {"ok": False, "error": f"{type(e).__name__}: {e}", "fix": None,
                                    "exit_code": int(Exit.FAILED)}

        on_step(f"validating on {len(boards)} board(s) in parallel")
        in_parallel(one, boards, "validate")
    return aggregate(model.name, [(p, results[p]) for p in places])


def flash_and_watch(b: PlaceTarget, image: Path, mon: dict, quiet: bool,
                    on_info: Callable[[str], None] = lambda s: None) -> dict:
    """Flash ``image`` on the place and monitor its port (quiet: plain view into a buffer); one result row with the
    monitor's exit code, the inference count and the p95 invoke latency (core.stats: nearest rank)."""
    try:
        res = b.flash(image)
        if not quiet:
            on_info(f"flashed   {b.place} via {res.get('method')} in {res['seconds']:.1f} s, port {b.url}")
        records: list = []
        kw = {"out": io.StringIO(), "err": io.StringIO()} if quiet else {}
        code = run_monitor(MonitorOptions(port=b.url, reconnect=not b.virtual, wait=10.0, send_input=False,
                                          **(dict(mon, view="plain") if quiet else mon)),
                           on_record=records.append, **kw)
        us = [r.parsed.us for r in records if r.kind == "inference"]
        p95 = percentile(us, 95)
        return {"place": b.place, "ok": code == 0, "exit_code": int(code), "inferences": len(us),
                "p95_ms": p95 / 1000 if p95 is not None else None, "port": b.url, "error": None}
    except FwtoolError as e:
        return {"place": b.place, "ok": False, "exit_code": int(e.code), "inferences": 0, "p95_ms": None,
                "port": None, "error": e.cause}


def run_fleet(req: LabRequest, image: Path, mon: dict, on_info: Callable[[str], None] = lambda s: None) -> dict:
    """``fwtool run`` on the place(s): one place live (its row; an error raised as usual); several in parallel,
    quietly. Returns ``{"ok", "exit_code", "boards": rows, "single": bool}``."""
    with Lab(req.coordinator) as lab:
        places = take_places(lab, req, on_wait=on_info)
        lock = threading.Lock()
        boards = [PlaceTarget(lab, p, lock) for p in places]
        results: dict[str, dict] = {}
        if len(boards) == 1:
            row = flash_and_watch(boards[0], image, mon, False, on_info)
            if row["error"]:
                raise FwtoolError(row["error"], None, Exit(row["exit_code"]))
            return {"ok": row["ok"], "exit_code": row["exit_code"], "boards": [row], "single": True}
        in_parallel(lambda b: results.__setitem__(b.place, flash_and_watch(b, image, mon, True)), boards, "run")
    rows = [results[p] for p in places]
    failing = [r for r in rows if not r["ok"]]
    return {"ok": not failing, "exit_code": failing[0]["exit_code"] if failing else 0, "boards": rows,
            "single": False}

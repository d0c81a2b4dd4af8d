"""Fleet runs: validate one model on several labgrid places at once, one aggregated report.

The places come from ``--labgrid PLACE`` (repeatable, or a comma list) or from ``--labgrid-tags k=v --boards N``
(N reservations, waited for, then acquired). The validation firmware is built once; every board is then
flashed through the labgrid driver and read over its exported port in parallel, each compared with the host
reference by the same validate flow as a single board. Everything acquired or reserved is released/cancelled on
the way out (errors and Ctrl-C included).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from typing import Callable

from fwtool.core.errors import Exit, FwtoolError
from fwtool.lab.boards import PlaceBoard
from fwtool.lab.places import Lab
from fwtool.model.tflite import load_model
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
        boards = [PlaceBoard(lab, p, lock) for p in places]
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

        def one(b: PlaceBoard) -> None:
            try:
                results[b.place] = flow.run(replace(opts, prebuilt=built, board_runner=b.validate_runner(opts.timeout)),
                                            on_line=lambda line: on_line(b.place, line))
            except FwtoolError as e:
                results[b.place] = {"ok": False, **e.to_dict()}
            except Exception as e:  # a bug in one board's run must not hide the others' results
                results[b.place] = {"ok": False, "error": f"{type(e).__name__}: {e}", "fix": None,
                                    "exit_code": int(Exit.FAILED)}

        on_step(f"validating on {len(boards)} board(s) in parallel")
        threads = [threading.Thread(target=one, args=(b,), daemon=True, name=f"validate-{b.place}") for b in boards]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)  # short joins: Ctrl-C reaches the main thread, and Lab.close() releases the places
    return aggregate(model.name, [(p, results[p]) for p in places])

"""``--labgrid PLACE`` / ``LG_PLACE`` / ``--labgrid-tags k=v [--boards N]`` for flash, monitor, run and validate.

:func:`labgrid_options` adds the options and hands the command one ``lab`` argument (a
:class:`fwtool.lab.fleet.LabRequest`, or None when no labgrid option was given, so the command runs as before).
The functions below call fwtool.lab for the labgrid part of each command (acquire or reserve and wait, flash
through the exporter, find the exported port again, monitor/validate over it, release in ``finally``; the fleet
threads and figures are fwtool/lab/fleet.py) and print.
Exit codes are the commands' own. The coordinator is ``LG_COORDINATOR`` (labgrid's variable; default
127.0.0.1:20408).
"""
from __future__ import annotations

import functools
import sys
from dataclasses import replace
from pathlib import Path
from typing import Callable

import click

from fwtool.core import ui
from fwtool.core.errors import Exit, FwtoolError
from fwtool.lab.fleet import LabRequest, RESERVE_WAIT_S, one_place, run_fleet, validate_fleet
from fwtool.lab.places import Lab, parse_tags
from fwtool.monitor import MonitorOptions, run_monitor


def labgrid_options(fleet: bool = False):
    """Decorator: the labgrid options (``fleet``: also --boards and several places), folded into ``lab``."""
    def deco(f):
        @functools.wraps(f)
        def wrapper(*args, labgrid_places=(), labgrid_tags=(), labgrid_wait=RESERVE_WAIT_S, boards=None, **kw):
            kw["lab"] = request_from(labgrid_places, labgrid_tags, labgrid_wait, boards, fleet)
            return f(*args, **kw)

        opts = [click.option("--labgrid", "labgrid_places", multiple=True, envvar="LG_PLACE", metavar="PLACE",
                             help="Use the board of this labgrid place (acquired, released on exit). "
                                  + ("Repeat (or a comma list) for several boards at once. " if fleet else "")
                                  + "Env: LG_PLACE; coordinator: LG_COORDINATOR."),
                click.option("--labgrid-tags", multiple=True, metavar="KEY=VALUE",
                             help="Reserve a labgrid place with these tags (e.g. board=pico), waiting until one "
                                  "is free."),
                click.option("--labgrid-wait", type=click.FloatRange(min=0), default=RESERVE_WAIT_S,
                             show_default=True, help="Seconds to wait for a reservation.")]
        if fleet:
            opts.append(click.option("--boards", type=click.IntRange(min=1),
                                     help="With --labgrid-tags: run on N places in parallel, one aggregated report."))
        for o in reversed(opts):
            wrapper = o(wrapper)
        return wrapper
    return deco


def request_from(places, tags, wait_s, boards, fleet: bool) -> LabRequest | None:
    names = [p for item in places or () for p in str(item).replace(",", " ").split()]
    tag_map = parse_tags(tags)
    if not names and not tag_map:
        if boards:
            raise FwtoolError("--boards needs --labgrid-tags (which places to reserve)",
                              "add --labgrid-tags board=pico", Exit.USAGE)
        return None
    if names and tag_map:
        raise FwtoolError("--labgrid and --labgrid-tags exclude each other", "name places or give tags, not both",
                          Exit.USAGE)
    if not fleet and len(names) > 1:
        raise FwtoolError(f"this command uses one board, but {len(names)} labgrid places were named",
                          "name one place (fleet runs: fwtool validate/run)", Exit.USAGE)
    return LabRequest(places=names, tags=tag_map, boards=boards, wait_s=wait_s)


# ---- monitor ----------------------------------------------------------------------------------------------------
def monitor_on_lab(req: LabRequest, opts: MonitorOptions) -> int:
    """Monitor the place's exported serial port."""
    with Lab(req.coordinator) as lab:
        board = one_place(lab, req, on_wait=ui.info)
        ui.info(f"labgrid place {board.place}: {board.port.url}")
        return run_monitor(replace(opts, port=board.port.url, serial=None))


# ---- flash ------------------------------------------------------------------------------------------------------
def flash_on_lab(req: LabRequest, image: Path, as_json: bool) -> dict:
    with Lab(req.coordinator) as lab:
        board = one_place(lab, req, on_wait=ui.info)
        if not as_json:
            ui.info(f"flashing {image} on labgrid place {board.place} ({board.port.host})…")
        result = board.flash(Path(image))
    if as_json:
        ui.emit_json(result)
    else:
        click.echo(f"flashed   {result.get('place')} via {result.get('method')} in {result['seconds']:.1f} s; "
                   f"verified {'yes' if result.get('verified') else 'no'}; port {result.get('port')}")
    return result


# ---- validate ---------------------------------------------------------------------------------------------------
def print_fleet(r: dict) -> None:
    click.echo(f"validate  {r['model']} on {len(r['boards'])} labgrid board(s)")
    click.echo(f"{'place':24} {'result':6} {'max |Δ|':>8} {'p95 ms':>9}  detail")
    for b in r["boards"]:
        diff = "-" if b["max_abs_diff"] is None else str(b["max_abs_diff"])
        p95 = "-" if b["p95_ms"] is None else f"{b['p95_ms']:.2f}"
        detail = b.get("error") or b.get("port") or ""
        click.echo(f"{b['place']:24} {'PASS' if b['ok'] else 'FAIL':6} {diff:>8} {p95:>9}  {detail}")
    click.echo(f"result    {'PASS' if r['ok'] else 'FAIL'}: {r['passed']} passed, {r['failed']} failed")


def validate_on_lab(req: LabRequest, opts, as_json: bool, verbose: bool, print_report: Callable[[dict], None]) -> None:
    """One place: validate's usual report; several (or --boards N): the aggregated one. Exits with its code."""
    with ui.err.status("fwtool validate: labgrid") as status:
        def on_line(place: str, line: str) -> None:
            if verbose:
                ui.err.print(f"[{place}] {line}", markup=False)

        report = validate_fleet(req, opts, on_step=lambda s: status.update(f"fwtool validate: {s}"), on_line=on_line)
    fleet = len(report["boards"]) > 1 or (req.boards or 1) > 1
    if not fleet:  # one board: validate's own report and behaviour
        only = next(iter(report["reports"].values()))
        if "outputs" not in only:
            raise FwtoolError(only["error"], only.get("fix"), Exit(only["exit_code"]))
        ui.emit_json(only) if as_json else print_report(only)
    else:
        ui.emit_json(report) if as_json else print_fleet(report)
    if not report["ok"]:
        sys.exit(report["exit_code"])


# ---- run --------------------------------------------------------------------------------------------------------
def run_on_lab(req: LabRequest, image: Path, mon: dict, as_json: bool) -> int:
    """Flash ``image`` on the place(s) and monitor: one place live as usual; several in parallel, quietly, with
    one row per board (exit code, inferences, p95 latency) at the end."""
    fleet = run_fleet(req, image, mon, on_info=ui.info)
    if fleet["single"]:
        return fleet["exit_code"]
    rows, code = fleet["boards"], fleet["exit_code"]
    if as_json:
        ui.emit_json_line({"type": "fleet", "ok": fleet["ok"], "exit_code": code, "boards": rows})
    else:
        for r in rows:
            p95 = "-" if r["p95_ms"] is None else f"{r['p95_ms']:.2f} ms"
            click.echo(f"{r['place']:24} {'PASS' if r['ok'] else 'FAIL'}  exit {r['exit_code']}  "
                       f"{r['inferences']} inferences  p95 {p95}  {r['error'] or ''}")
        failed = sum(1 for r in rows if not r["ok"])
        click.echo(f"result    {len(rows) - failed} passed, {failed} failed")
    return code

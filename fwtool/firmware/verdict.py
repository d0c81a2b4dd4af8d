"""``fwtool inspect``'s board side: will the model run on each board (fit check, app contract), and the one
error that keeps it off a given board. The model side (layers, MACs, kernels, arena) is fwtool.model.inspection."""
from __future__ import annotations

from fwtool.firmware import codesize, fit
from fwtool.firmware.apps import get_app
from fwtool.firmware.families import all_families, get_family
from fwtool.core.boards import Board, all_boards, get_board
from fwtool.core.errors import BadInput, DoesNotFit, FwtoolError
from fwtool.model import arena as arena_mod
from fwtool.model.inspection import model_report
from fwtool.model.tflite import Model


def board_row(b: Board, model: Model, app: str, arena_total: int | None, tflm_ok: bool,
              arena_override: int | None = None) -> dict:
    if arena_total is not None:
        family = get_family(b.family)
        if arena_override is None:  # the figure a build for this board uses (measured on its target, if recorded)
            arena_total = arena_mod.size_for(model, None, fit.arena_target(family, get_app(app), model)).total
        fields = codesize.plan_fields(b, family, get_app(app), codesize.kernel_files(model), b.stdio, 2)
        fits = fit.fit_report(b, family, model, arena_total, 0,  # the reserve a build would use (measured or default)
                              *codesize.reserve_for(fields, family.code_reserve_bytes))
    else:
        fits = {"fits": None, "problems": ["arena unknown (the TFLM interpreter could not run the model)"]}
    row = {"board": b.name, "title": b.title, "cpu": b.cpu, **fits}
    try:
        get_app(app).check_model(model)
        row["app"] = {"name": app, "ok": True}
    except FwtoolError as e:
        row["app"] = {"name": app, "ok": False, "error": e.cause, "fix": e.fix}
    row["runs"] = bool(tflm_ok and fits["fits"] and row["app"]["ok"])
    return row


def inspect_model(model: Model, board: str | None = None, app: str = "inference",
                  arena_override: int | None = None) -> dict:
    """The whole report as plain data (what ``--json`` prints): the model's, plus a row per board."""
    # every board whose family this fwtool builds (a board file may come before its family module)
    boards = [get_board(board)] if board else [b for b in all_boards().values() if b.family in all_families()]
    report, arena_total = model_report(model, boards, arena_override)
    if board and arena_total is not None and arena_override is None:
        # one board: show the figure a build for it uses (measured on its virtual board once a build recorded it)
        on_board = arena_mod.size_for(model, None, fit.arena_target(get_family(boards[0].family), get_app(app), model))
        if on_board.source == "target":
            report["arena"] = on_board.to_dict()
    report["boards"] = [board_row(b, model, app, arena_total, report["tflm"]["ok"], arena_override) for b in boards]
    return report


def verdict_error(report: dict, board: str) -> FwtoolError | None:
    """For ``--board``: the one error that keeps the model off that board (None if it runs)."""
    row = next(r for r in report["boards"] if r["board"] == board)
    name = report["model"]["path"].rsplit("/", 1)[-1]
    if not report["tflm"]["ok"]:
        return BadInput(report["tflm"]["error"], report["tflm"]["fix"])
    if not row["app"]["ok"]:
        return BadInput(row["app"]["error"], row["app"]["fix"])
    if row["fits"] is None and report["arena"].get("exit_code") == int(BadInput.code):  # e.g. --arena too small
        return BadInput(report["arena"]["error"], report["arena"].get("fix"))
    if row["fits"] is None:
        return FwtoolError(f"{name}: {row['problems'][0]}", report["arena"].get("fix"))
    if not row["fits"]:
        return DoesNotFit(f"{name} does not fit {board}: " + "; ".join(row["problems"]), fit.FIX)
    return None

"""The fit check: does a model (plus its embedded inputs, the code and the arena) fit a board, before compiling.

Used by ``fwtool build`` (refuses early), ``fwtool inspect`` (a row per board) and ``fwtool validate`` (how many
input vectors fit). Flash: model + embedded input bytes + the family's code reserve vs the board's flash.
RAM: arena + the family's RAM reserve vs the board's SRAM. The code reserve is the one a real build of the same
family/board/app/op set/trees measured (fwtool/firmware/codesize.py, + a margin) when ``code_reserve`` is given, else the
family's default (an upper bound); the RAM reserve comes from the family (``Family``).
"""
from __future__ import annotations

from typing import Protocol

from fwtool.core.boards import Board
from fwtool.core.errors import DoesNotFit
from fwtool.model import arena as arena_mod
from fwtool.model.tflite import Model, resolver_calls

FIX = ("use a smaller or int8-quantized model (fewer filters/units, smaller input), "
       "or a board with more memory ('fwtool boards')")


class Reserves(Protocol):  # what the fit check needs of a family
    code_reserve_bytes: int
    ram_reserve_bytes: int


# What an app's main.cpp calls when it prints the FWT:BOOT banner (directly or through the shared loops).
BANNER_CALLS = ("fwt_print_banner", "fwt_inference_loop", "fwt_validate_loop")


def prints_banner(app) -> bool:
    """Whether ``app``'s firmware prints the banner with ``arena_used`` (the recorder, which runs no model, does
    not): only then can the virtual board measure its arena."""
    try:
        text = (app.path / "main.cpp.j2").read_text(errors="replace")
    except (OSError, AttributeError, TypeError):
        return False
    return any(call in text for call in BANNER_CALLS)


def arena_target(family, app, model: Model) -> dict | None:
    """The key of the arena measured on ``family``'s virtual board for ``model`` (None when the family has none or
    ``app`` prints no banner): the build, the fit check and the report then all use that figure + margin
    (model/arena.py). Every app runs the model through the same resolver and interpreter, so the figure is per
    family, not per app: a validate build uses what the default app measured."""
    if not family.arena_on_virtual_board or not prints_banner(app):
        return None
    kernels = sorted({op["kernel"] for op in resolver_calls(model)})
    return arena_mod.target_fields(model, family.name, kernels)


def fit_report(board: Board, family: Reserves, model: Model, arena_bytes: int, input_bytes: int = 0,
               code_reserve: int | None = None, code_source: str = "family default") -> dict:
    """Flash and RAM needed vs available, with margins (negative: byte-exact shortfall). Never raises."""
    if code_reserve is None:
        code_reserve, code_source = family.code_reserve_bytes, "family default"
    code, reserve = code_reserve, family.ram_reserve_bytes
    flash_need = model.size + input_bytes + code
    ram_need = arena_bytes + reserve
    result = {
        "flash": {"model": model.size, "input": input_bytes, "code_reserve": code,
                  "code_reserve_source": code_source,
                  "required": flash_need, "available": board.flash_bytes, "margin": board.flash_bytes - flash_need},
        "ram": {"arena": arena_bytes, "reserve": reserve, "required": ram_need,
                "available": board.sram_bytes, "margin": board.sram_bytes - ram_need},
    }
    problems = []
    if flash_need > board.flash_bytes:
        inputs = f" + inputs {input_bytes:,}" if input_bytes else ""
        source = "" if code_source == "family default" else f" ({code_source})"
        problems.append(f"flash short by {flash_need - board.flash_bytes:,} bytes (model {model.size:,}{inputs} + "
                        f"code reserve {code:,}{source} > {board.flash_bytes:,})")
    if ram_need > board.sram_bytes:
        problems.append(f"RAM short by {ram_need - board.sram_bytes:,} bytes (arena {arena_bytes:,} + "
                        f"reserve {reserve:,} > {board.sram_bytes:,})")
    result["fits"] = not problems
    result["problems"] = problems
    return result


def fit_check(board: Board, family: Reserves, model: Model, arena_bytes: int, input_bytes: int = 0,
              code_reserve: int | None = None, code_source: str = "family default") -> dict:
    """:func:`fit_report`, raising DoesNotFit (exit 5) with every shortfall when something does not fit."""
    result = fit_report(board, family, model, arena_bytes, input_bytes, code_reserve, code_source)
    if result["problems"]:
        raise DoesNotFit(f"{model.path.name} does not fit {board.name}: " + "; ".join(result["problems"]), FIX)
    return result


def inputs_that_fit(board: Board, family: Reserves, model: Model, vector_bytes: int) -> int:
    """How many input vectors of ``vector_bytes`` fit in flash next to the model and the code (for validate)."""
    free = board.flash_bytes - model.size - family.code_reserve_bytes
    return max(0, free // vector_bytes) if vector_bytes else 0

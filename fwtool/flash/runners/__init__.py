"""The runner registry: filled from one module per runner. A board file names the runners that apply to it, in
order of preference (``[flash] runners``); ``--method`` offers ``auto`` and these names.

A new runner (pyOCD, OpenOCD, ...): a module here with a ``Runner`` subclass, one line below, its name in the
boards' ``[flash] runners``. External tools go through ``Runner.run_tool`` (logged).
"""
from __future__ import annotations

from fwtool.core.errors import BadInput
from fwtool.flash.base import Runner
from fwtool.flash.runners.drive import DriveRunner
from fwtool.flash.runners.mtb_program import MtbProgramRunner
from fwtool.flash.runners.openocd import OpenocdRunner
from fwtool.flash.runners.picoboot import PicobootRunner
from fwtool.flash.runners.pyocd import PyocdRunner
from fwtool.flash.runners.samba import SambaRunner

RUNNERS: dict[str, Runner] = {}


def register(runner: Runner) -> None:
    RUNNERS[runner.name] = runner


register(PicobootRunner())  # verified, skips identical sectors, no drive needed
register(DriveRunner())
register(PyocdRunner())  # PSoC 6 kits through the KitProg3: program, read back, reset
register(OpenocdRunner())  # Infineon's OpenOCD (any PSoC 6), upstream's for PSoC 6-BLE2 only
register(MtbProgramRunner())  # ModusToolbox's own 'make qprogram' of the project that built the image
register(SambaRunner())  # Arduino Nano 33 BLE: the SAM-BA extended bootloader over its CDC port, CRC-verified


def names() -> list[str]:
    return list(RUNNERS)


def method_choices() -> list[str]:
    """What ``--method`` accepts: auto and every registered runner."""
    return ["auto", *RUNNERS]


def board_order(board) -> list[str]:
    """The board's runners in order of preference (every registered runner when the board names none)."""
    order = list(getattr(board, "runners", ()) or RUNNERS)
    unknown = [n for n in order if n not in RUNNERS]
    if unknown:
        raise BadInput(f"boards/{board.name}.toml names the unknown flash runner '{unknown[0]}'",
                       f"use some of: {', '.join(RUNNERS)} ([flash] runners)")
    return order


def for_board(board, method: str = "auto") -> list[Runner]:
    """The runners to try for ``method`` on ``board``, in order; a method the board does not list is refused."""
    if method not in method_choices():
        raise BadInput(f"unknown flash method '{method}'", f"use one of: {', '.join(method_choices())}")
    order = board_order(board)
    if method == "auto":  # runners that cannot write this part with what is installed are left out
        listed = [RUNNERS[n] for n in order]
        return [r for r in listed if r.supports(board)[0]] or listed[:1]
    if method not in order:
        raise BadInput(f"{board.name} cannot be flashed with '{method}': its board file lists {', '.join(order)}",
                       f"use --method {' or '.join(['auto', *order])} (boards/{board.name}.toml: [flash] runners)")
    ok, why = RUNNERS[method].supports(board)
    if not ok:
        raise RUNNERS[method].refuse_board(board, why)
    return [RUNNERS[method]]

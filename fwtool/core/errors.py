"""One error type for every expected failure: a one-line cause, the fix, and an exit code scripts can trust.

The CLI turns a FwtoolError into two lines on stderr (``error: <cause>`` and ``  fix: <fix>``) and exits with
``code``; it never shows a traceback for these.
"""
from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    """Process exit codes: the one definition (``fwtool --help`` and docs/exit-codes.md are generated from
    ``MEANING`` below). Never renumber, only add."""

    OK = 0
    FAILED = 1  # a step failed (compiler error, verify mismatch, device fault)
    USAGE = 2  # bad command line (click's own code)
    BAD_INPUT = 3  # corrupt/unsupported model, bad input file, unknown board
    MISSING_TOOL = 4  # toolchain, SDK tree, node, permissions: the environment lacks something
    DOES_NOT_FIT = 5  # model + arena + reserve exceed the board's flash or RAM
    NO_DEVICE = 6  # no board attached / board not found / several boards and none chosen
    TIMEOUT = 7  # a wait ran out (monitor --timeout, BOOTSEL never appeared)
    MISMATCH = 8  # an expectation was not met (monitor --expect*, validate thresholds)
    LOST_DEVICE = 9  # the board disappeared and did not come back
    FIRMWARE_ERROR = 10  # the firmware printed FWT:ERROR <cause> and stopped (monitor, emulate, run)
    BUSY = 11  # another fwtool process holds the build folder, cache entry or board (--no-wait)
    INTERRUPTED = 130  # Ctrl-C


# code -> (short name for --help, what it means). tests/test_docs.py checks every Exit member has an entry.
MEANING: dict[Exit, tuple[str, str]] = {
    Exit.OK: ("ok", "the command did what was asked"),
    Exit.FAILED: ("failed", "a step failed: compiler error, verify mismatch, device fault"),
    Exit.USAGE: ("usage", "bad command line (click's own code)"),
    Exit.BAD_INPUT: ("bad input", "corrupt or unsupported model, bad input file, unknown board"),
    Exit.MISSING_TOOL: ("missing tool/SDK", "toolchain, SDK tree (offline, or its fetch failed), node, permissions: "
                        "the environment lacks something"),
    Exit.DOES_NOT_FIT: ("does not fit", "model + arena + reserve exceed the board's flash or RAM"),
    Exit.NO_DEVICE: ("no device", "no board attached, board not found, or several boards and none chosen"),
    Exit.TIMEOUT: ("timeout", "a wait ran out (monitor --timeout, BOOTSEL never appeared)"),
    Exit.MISMATCH: ("expectation not met", "monitor --expect*, validate thresholds"),
    Exit.LOST_DEVICE: ("device lost", "the board disappeared and did not come back"),
    Exit.FIRMWARE_ERROR: ("firmware error", "the firmware printed FWT:ERROR <cause> and stopped (monitor, emulate, "
                          "run)"),
    Exit.BUSY: ("busy", "another fwtool process holds the build folder, cache entry or board and --no-wait was "
                "given (docs/concurrency.md)"),
    Exit.INTERRUPTED: ("interrupted", "Ctrl-C"),
}


def exit_code_summary() -> str:
    """One line per few codes, for ``fwtool --help``: '0 ok, 1 failed, ...'."""
    return ", ".join(f"{int(code)} {MEANING[code][0]}" for code in Exit) + "."


class FwtoolError(Exception):
    """An expected failure. ``cause`` is one line; ``fix`` tells the user what to do."""

    code: Exit = Exit.FAILED

    def __init__(self, cause: str, fix: str | None = None, code: Exit | None = None):
        super().__init__(cause)
        self.cause = cause
        self.fix = fix
        if code is not None:
            self.code = code

    def to_dict(self) -> dict:
        return {"error": self.cause, "fix": self.fix, "exit_code": int(self.code)}


class ToolTimeout(FwtoolError):
    """An external tool did not finish in time (core.runner.capture); callers that know the tool say why."""


class BadInput(FwtoolError):
    code = Exit.BAD_INPUT


class MissingTool(FwtoolError):
    code = Exit.MISSING_TOOL


class DoesNotFit(FwtoolError):
    code = Exit.DOES_NOT_FIT


class NoDevice(FwtoolError):
    code = Exit.NO_DEVICE


class Busy(FwtoolError):
    """Another fwtool process holds the lock (core/locks.py) and waiting is off."""

    code = Exit.BUSY


# ---- talking to a board (discovery, reset, flashing, the monitor) ----------------------------------------------
class FlashFailed(FwtoolError):
    """A device fault, a verify mismatch, a protocol error: the flash is not known to be good."""

    code = Exit.FAILED


class DeviceLost(FwtoolError):
    code = Exit.LOST_DEVICE


class WaitTimeout(FwtoolError):
    code = Exit.TIMEOUT


class UsbAccessDenied(MissingTool):
    """The OS refused to open the USB device (Linux: no udev rule / not in the group)."""


class NoUsbBackend(MissingTool):
    """pyusb is installed but found no libusb."""

"""The virtual Cortex-M4: a firmware ELF linked for QEMU's ``mps2-an386`` machine (Debian ``qemu-system-arm``).

No public PSoC 6 emulator exists; what can be wrong in silence — TFLM with the Cortex-M4/DSP CMSIS-NN kernels,
compiled exactly as for the kit — runs on QEMU's Cortex-M4F board instead (the psoc6 family links the kit's
objects for it: ``PSoC6Family.virtual_image``). Output comes over the machine's UART0 (QEMU's stdio with
``-nographic``); the firmware ends the run with a semihosting SYS_EXIT.

Timing: ``-icount shift=0`` makes QEMU advance virtual time by exactly 1 ns per instruction, so the firmware's
``us=`` values are instruction counts / 1000 — deterministic, but not cycle-accurate and not PSoC 6 timing.
"""
from __future__ import annotations

import selectors
import time
from pathlib import Path
from typing import Callable

from fwtool.core import protocol, runner
from fwtool.core.errors import MissingTool
from fwtool.core.lines import LineSplitter
from fwtool.emulator.result import RunResult

MACHINE = "mps2-an386"
NS_PER_INSTRUCTION = 1  # -icount shift=0
TITLE = "virtual Cortex-M4 (QEMU mps2-an386)"
TIMING_NOTE = ("virtual Cortex-M4 (QEMU mps2-an386, -icount shift=0): 1 instruction = 1 ns of virtual time, so "
               "'us' counts instructions / 1000; not cycle-accurate and not the board's own timing (PSoC 6, nRF52840)")


def command(elf: Path) -> list[str]:
    return ["qemu-system-arm", "-M", MACHINE, "-nographic", "-semihosting", "-icount", "shift=0",
            "-monitor", "none", "-kernel", str(elf)]


def check() -> str:
    path = runner.which("qemu-system-arm")
    if path is None:
        raise MissingTool("qemu-system-arm was not found (the virtual Cortex-M4 runs on it)",
                          "sudo apt-get install qemu-system-arm")
    return path


def hint(elf: Path) -> str:
    """The fix for a run that ran out of time or ended early: the QEMU command line to run it by hand."""
    return "raise --timeout, or run the image by hand: " + runner.command_line(command(Path(elf)))


def instructions(invoke_us: list[int]) -> list[int]:
    """``us=`` values back to instruction counts (-icount shift=0)."""
    return [us * 1000 // NS_PER_INSTRUCTION for us in invoke_us]


def run(elf: Path, count: int | None = None, until: str | None = None, timeout: float = 300.0,
        on_line: Callable[[str], None] = lambda s: None,
        on_command: Callable[[str], None] = lambda s: None) -> RunResult:
    """Run ``elf`` until ``count`` lines starting with ``until`` (default FWT:INFER; ``until`` alone: its first
    line), a FWT:ERROR line, the firmware's own exit, or ``timeout`` wall-clock seconds (then QEMU is killed).
    Reasons as fwtool/emulator/result.py: count, done, firmware-error, wall-limit, exited, ended-early."""
    check()
    cmd = command(Path(elf))
    on_command("$ " + runner.command_line(cmd))
    proc = runner.spawn(cmd)
    proc.stdin.close()
    splitter, result = LineSplitter(), RunResult([], "exit", None, image=str(elf))
    marker, wanted = until or protocol.PREFIX_INFER, (count or 1) if (count or until) else 0
    t0 = time.monotonic()
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    seen = 0
    try:
        while result.reason == "exit":
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                result.reason, result.detail = "wall-limit", f"{timeout:g} s"
                break
            if not sel.select(min(left, 0.5)):
                continue
            chunk = proc.stdout.read1(65536)
            if not chunk:
                break
            for piece in splitter.feed(chunk, time.time()):
                line = piece.text
                result.lines.append(line)
                on_line(line)
                if line.startswith(protocol.PREFIX_ERROR):
                    parsed = protocol.parse_line(line)
                    result.reason = "firmware-error"
                    result.detail = parsed.text if isinstance(parsed, protocol.FirmwareError) and parsed.text else line
                elif wanted and line.startswith(marker):
                    seen += 1
                    if seen >= wanted:
                        result.reason = "count"
                if result.reason != "exit":
                    break
    finally:
        sel.close()
        if proc.poll() is None and result.reason != "exit":
            runner.kill_group(proc)
        else:
            try:
                proc.wait(timeout=10)
            except Exception:  # noqa: BLE001 - a QEMU that does not exit after its output ended
                runner.kill_group(proc)
        result.exit_code = proc.returncode
        stderr = proc.stderr.read().decode(errors="replace").strip() if proc.stderr else ""
        proc.stdout.close()
        proc.stderr.close()
    result.wall_s = round(time.monotonic() - t0, 3)
    if result.reason == "exit" and result.exit_code not in (0, None):
        result.reason, result.detail = "exited", stderr.splitlines()[-1] if stderr else f"exit {result.exit_code}"
    elif result.reason == "exit":
        result.reason = "ended-early" if wanted else "done"
    return result

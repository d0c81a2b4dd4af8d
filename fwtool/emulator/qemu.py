"""The virtual Cortex-M4 and Cortex-M33: a firmware ELF linked for QEMU's ``mps2-an386`` (M4F, for psoc6) or
``mps2-an505`` (M33 with DSP and FPU, for rp2350: the Pico 2's cores) machine (Debian ``qemu-system-arm``).

No public PSoC 6 emulator exists; what can be wrong in silence — TFLM with the Cortex-M4/DSP CMSIS-NN kernels,
compiled exactly as for the kit — runs on QEMU's Cortex-M4F board instead (the psoc6 family links the kit's
objects for it: ``PSoC6Family.virtual_image``). Output comes over the machine's UART0 (QEMU's stdio with
``-nographic``); the firmware ends the run with a semihosting SYS_EXIT.

Timing: ``-icount shift=0`` makes QEMU advance virtual time by exactly 1 ns per instruction, so the firmware's
``us=`` values are instruction counts / 1000 — deterministic, but not cycle-accurate and not PSoC 6 timing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from fwtool.core import runner
from fwtool.core.errors import MissingTool
from fwtool.emulator import process
from fwtool.emulator.result import RunResult

MACHINE = "mps2-an386"
NS_PER_INSTRUCTION = 1  # -icount shift=0
TITLE = "virtual Cortex-M4 (QEMU mps2-an386)"
TIMING_NOTE = ("virtual Cortex-M4 (QEMU mps2-an386, -icount shift=0): 1 instruction = 1 ns of virtual time, so "
               "'us' counts instructions / 1000; not cycle-accurate and not the board's own timing (PSoC 6, nRF52840)")
MACHINE_M33 = "mps2-an505"
TITLE_M33 = "virtual Cortex-M33 (QEMU mps2-an505)"
TIMING_NOTE_M33 = ("virtual Cortex-M33 (QEMU mps2-an505, -icount shift=0): 1 instruction = 1 ns of virtual time, so "
                   "'us' counts instructions / 1000; not cycle-accurate and not RP2350 timing")


def command(elf: Path, machine: str = MACHINE, serial_socket: str | None = None) -> list[str]:
    """The QEMU command line. ``serial_socket``: the machine's UART0 (serial0) on a Unix socket QEMU listens on
    (``-chardev socket,server=on,wait=on``: the guest starts when fwtool connects, so no byte is missed), both
    ways: what the firmware prints, and what fwtool writes into the UART's RX (a live feed; QEMU delivers a byte
    only when the CMSDK UART's RX buffer is empty, so nothing is dropped). Without it: -nographic (stdout only)."""
    if serial_socket is None:
        return ["qemu-system-arm", "-M", machine, "-nographic", "-semihosting", "-icount", "shift=0",
                "-monitor", "none", "-kernel", str(elf)]
    return ["qemu-system-arm", "-M", machine, "-display", "none", "-semihosting", "-icount", "shift=0",
            "-monitor", "none", "-chardev", f"socket,id=fwt0,path={serial_socket},server=on,wait=on",
            "-serial", "chardev:fwt0", "-kernel", str(elf)]


def check() -> str:
    path = runner.which("qemu-system-arm")
    if path is None:
        raise MissingTool("qemu-system-arm was not found (the virtual Cortex-M4 runs on it)",
                          "sudo apt-get install qemu-system-arm")
    return path


def hint(elf: Path, machine: str = MACHINE) -> str:
    """The fix for a run that ran out of time or ended early: the QEMU command line to run it by hand."""
    return "raise --timeout, or run the image by hand: " + runner.command_line(command(Path(elf), machine))


def instructions(invoke_us: list[int]) -> list[int]:
    """``us=`` values back to instruction counts (-icount shift=0)."""
    return [us * 1000 // NS_PER_INSTRUCTION for us in invoke_us]


def run(elf: Path, count: int | None = None, until: str | None = None, timeout: float = 300.0,
        on_line: Callable[[str], None] = lambda s: None,
        on_command: Callable[[str], None] = lambda s: None, machine: str = MACHINE) -> RunResult:
    """Run ``elf`` until ``count`` lines starting with ``until`` (default FWT:INFER; ``until`` alone: its first
    line), a FWT:ERROR line, the firmware's own exit, or ``timeout`` wall-clock seconds (then QEMU is killed).
    Reasons as fwtool/emulator/result.py: count, done, firmware-error, wall-limit, exited, ended-early."""
    check()
    cmd = command(Path(elf), machine)
    return process.run_lines(cmd, str(elf), count, until, timeout, None, on_line, on_command)

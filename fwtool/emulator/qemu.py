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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fwtool.core import protocol, runner
from fwtool.core.errors import Exit, FwtoolError, MissingTool
from fwtool.core.lines import LineSplitter

MACHINE = "mps2-an386"
NS_PER_INSTRUCTION = 1  # -icount shift=0
TIMING_NOTE = ("virtual Cortex-M4 (QEMU mps2-an386, -icount shift=0): 1 instruction = 1 ns of virtual time, so "
               "'us' counts instructions / 1000; not cycle-accurate and not PSoC 6 timing")


@dataclass
class QemuResult:
    ok: bool
    reason: str  # "count" | "until" | "exit" | "error" | "timeout" | "crashed"
    lines: list[str] = field(default_factory=list)
    exit_code: int | None = None
    wall_s: float = 0.0
    detail: str = ""

    @property
    def invoke_us(self) -> list[int]:
        """The ``us=`` of every FWT:INFER / FWT:OUT line (each output tensor of a vector counts once)."""
        out = []
        for line in self.lines:
            p = protocol.parse_line(line)
            us = getattr(p, "us", None)
            if us is not None and (not hasattr(p, "t") or getattr(p, "t", 0) == 0):
                out.append(int(us))
        return out

    @property
    def invoke_instructions(self) -> list[int]:
        return [us * 1000 // NS_PER_INSTRUCTION for us in self.invoke_us]


def command(elf: Path) -> list[str]:
    return ["qemu-system-arm", "-M", MACHINE, "-nographic", "-semihosting", "-icount", "shift=0",
            "-monitor", "none", "-kernel", str(elf)]


def check() -> str:
    path = runner.which("qemu-system-arm")
    if path is None:
        raise MissingTool("qemu-system-arm was not found (the virtual Cortex-M4 runs on it)",
                          "sudo apt-get install qemu-system-arm")
    return path


def run_capture(elf: Path, count: int | None = None, until: str | None = None, timeout: float = 300.0,
                on_line: Callable[[str], None] = lambda s: None,
                on_command: Callable[[str], None] = lambda s: None) -> QemuResult:
    """Run ``elf`` until ``count`` FWT:INFER lines, a line starting with ``until``, a FWT:ERROR line, the
    firmware's own exit, or ``timeout`` wall-clock seconds (then QEMU is killed)."""
    check()
    cmd = command(Path(elf))
    on_command("$ " + runner.command_line(cmd))
    proc = runner.spawn(cmd)
    proc.stdin.close()
    splitter, result = LineSplitter(), QemuResult(False, "exit")
    t0 = time.monotonic()
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    infers = 0
    try:
        while result.reason == "exit":
            left = timeout - (time.monotonic() - t0)
            if left <= 0:
                result.reason = "timeout"
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
                    result.reason, result.detail = "error", line
                elif until and line.startswith(until):
                    result.reason = "until"
                elif line.startswith(protocol.PREFIX_INFER):
                    infers += 1
                    if count and infers >= count:
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
        result.reason, result.detail = "crashed", stderr.splitlines()[-1] if stderr else f"exit {result.exit_code}"
    wanted = {"count"} if count else {"until"} if until else {"exit"}
    result.ok = result.reason in wanted or (result.reason == "exit" and not count and not until)
    return result


def failure(result: QemuResult, timeout: float) -> FwtoolError:
    """The FwtoolError for a run that did not give what was asked."""
    what = "the virtual Cortex-M4 (QEMU mps2-an386)"
    if result.reason == "timeout":
        return FwtoolError(f"{what} did not print the expected output within {timeout:g} s",
                           "raise --timeout, or run the image by hand: " + " ".join(command(Path("firmware_vm4.elf"))),
                           Exit.TIMEOUT)
    if result.reason == "error":  # FWT:ERROR <cause>: the firmware cannot run (exit 10, as on the RP2040 emulator)
        parsed = protocol.parse_line(result.detail or "")
        cause = parsed.text if isinstance(parsed, protocol.FirmwareError) and parsed.text else result.detail
        return FwtoolError(f"the firmware on {what} stopped: {cause}",
                           "fix what the firmware says (e.g. rebuild with a larger --arena) and retry",
                           Exit.FIRMWARE_ERROR)
    return FwtoolError(f"{what} ended before the expected output ({result.reason}: {result.detail or 'no detail'})",
                       "check the build ('fwtool build') and run the image by hand with qemu-system-arm")


def emulate(elf: Path, count: int | None, timeout: float | None, on_line: Callable[[str], None],
            on_info: Callable[[str], None]) -> int:
    """``fwtool run --emulator`` on the virtual Cortex-M4: print its lines until ``count`` inferences (default 3),
    then the instruction count of one Invoke; the exit code (0, or 7 on a timeout)."""
    count = count or 3
    on_info(f"virtual Cortex-M4: {runner.command_line(command(Path(elf)))}")
    result = run_capture(elf, count=count, timeout=timeout or 300.0, on_line=on_line)
    if not result.ok:
        raise failure(result, timeout or 300.0)
    ins = result.invoke_instructions
    if ins:
        on_info(f"invoke    {ins[0]:,} instructions (QEMU -icount; {len(ins)} inference(s), "
                f"min {min(ins):,}, max {max(ins):,})")
    on_info(f"note      {TIMING_NOTE}")
    return 0

"""A linux-family program run on this machine: natively when it is built for this machine's architecture, else
under user-mode QEMU (Debian ``qemu-user-static``: ``qemu-aarch64-static`` runs the static aarch64 program).

The program prints its ``FWT:`` lines on stdout and reads stdin (the host's byte stream, or raw S16LE 16 kHz mono
PCM for the audio apps), so a run is a child process with pipes; it ends with the program's own exit (the
validate app exits after FWT:DONE), a count of marker lines, a FWT:ERROR line, or the wall-clock limit.

Timing: natively, the ``us=`` values are this machine's real times. Under qemu-user they are the wall time of
translated code (QEMU's user mode has no -icount and this Debian build no TCG plugins): no instruction counts,
and neither a Pi's times nor this machine's; ``instruction_count`` (a benchmark, not a run) counts executed
instructions with ``-singlestep -d exec,nochain`` (one logged translation block per instruction).
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from fwtool.core import runner
from fwtool.core.errors import MissingTool
from fwtool.emulator import process
from fwtool.emulator.result import RunResult

QEMU_USER = {"aarch64": "qemu-aarch64-static", "x86_64": "qemu-x86_64-static"}
QEMU_NOTE = ("user-mode QEMU (qemu-aarch64-static): 'us' is the wall time of translated code on this machine, "
             "not a Raspberry Pi's; qemu-user gives no instruction counts (no -icount)")
NATIVE_NOTE = "a native run on this machine: 'us' is this machine's real time, not a Raspberry Pi's"


def qemu_for(arch: str) -> str:
    """The qemu-user binary for ``arch`` (MissingTool with the Debian package when absent)."""
    name = QEMU_USER.get(arch, f"qemu-{arch}-static")
    path = runner.which(name) or runner.which(name.replace("-static", ""))
    if path is None:
        raise MissingTool(f"{name} was not found (it runs {arch} programs on this machine)",
                          "sudo apt-get install qemu-user-static")
    return path


def command(program: Path, arch: str | None) -> list[str]:
    """The command line running ``program``: itself, or under qemu-user for ``arch`` (None: native)."""
    return [str(program)] if arch is None else [qemu_for(arch), str(program)]


def run(cmd: list[str], count: int | None = None, until: str | None = None, timeout: float = 300.0,
        stdin: bytes | None = None, on_line: Callable[[str], None] = lambda s: None,
        on_command: Callable[[str], None] = lambda s: None) -> RunResult:
    """The program's run (fwtool/emulator/process.py run_lines: count, done, firmware-error, wall-limit, exited,
    ended-early)."""
    return process.run_lines(cmd, None, count, until, timeout, stdin, on_line, on_command)


def instruction_count(program: Path, arch: str, timeout: float = 1800.0) -> int:
    """Guest instructions ``program`` executes from start to its own exit under qemu-user (``-singlestep``: one
    translation block per instruction; ``-d exec,nochain``: one log line per executed block). Slow (~100x)."""
    cmd = [qemu_for(arch), "-singlestep", "-d", "exec,nochain", "-D", "/dev/stderr", str(program)]
    proc = runner.spawn(cmd)
    proc.stdin.close()
    n = 0
    deadline = time.monotonic() + timeout
    try:
        for line in proc.stderr:
            if line.startswith(b"Trace "):
                n += 1
            if time.monotonic() > deadline:
                break
    finally:
        runner.kill_group(proc)
        proc.stdout.close()
        proc.stderr.close()
    return n

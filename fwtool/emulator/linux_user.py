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

import selectors
import threading
import time
from pathlib import Path
from typing import Callable

from fwtool.core import protocol, runner
from fwtool.core.errors import MissingTool
from fwtool.core.lines import LineSplitter
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


def _feeder(proc, data: bytes) -> threading.Thread:
    def feed() -> None:
        try:
            proc.stdin.write(data)
            proc.stdin.close()
        except (BrokenPipeError, OSError, ValueError):  # the program ended before it read everything
            pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    return t


def run(cmd: list[str], count: int | None = None, until: str | None = None, timeout: float = 300.0,
        stdin: bytes | None = None, on_line: Callable[[str], None] = lambda s: None,
        on_command: Callable[[str], None] = lambda s: None) -> RunResult:
    """Run ``cmd`` until ``count`` lines starting with ``until`` (default FWT:INFER), a FWT:ERROR line, its own
    exit or ``timeout`` s (then its process group is killed). ``stdin``: bytes written to it (then closed; None
    closes it at once). Reasons as fwtool/emulator/result.py: count, done, firmware-error, wall-limit, exited,
    ended-early."""
    on_command("$ " + runner.command_line(cmd))
    proc = runner.spawn(cmd)
    if stdin is None:
        proc.stdin.close()
    else:
        _feeder(proc, stdin)
    splitter, result = LineSplitter(), RunResult([], "exit", None, image=cmd[-1])
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
            except Exception:  # noqa: BLE001 - a program that does not exit after its output ended
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

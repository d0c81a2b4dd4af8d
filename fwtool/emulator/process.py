"""Running an emulator or a program as a child whose stdout carries FWT: lines (QEMU system emulation, qemu-user,
a native Linux program): one loop that cuts lines, stops at the asked-for count, a FWT:ERROR or a time limit, and
kills the process group; the result is the one RunResult (fwtool/emulator/result.py)."""
from __future__ import annotations

import selectors
import threading
import time
from typing import Callable

from fwtool.core import protocol, runner
from fwtool.core.lines import LineSplitter
from fwtool.emulator.result import RunResult


class Child:
    """A long-running child (an emulator, a program) that fwtool talks to over a live link instead of
    :func:`run_lines`: started in its own process group, its stderr drained (the last 4 KB kept for an error
    message), ended by ``stop()`` with its whole group."""

    def __init__(self, cmd: list[str], on_command: Callable[[str], None] = lambda s: None) -> None:
        on_command("$ " + runner.command_line(cmd))
        self.cmd = cmd
        self.proc = runner.spawn(cmd)
        self._err = bytearray()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        try:
            for chunk in iter(lambda: self.proc.stderr.read1(4096), b""):
                self._err = (self._err + chunk)[-4096:]
        except (OSError, ValueError):  # closed by stop()
            pass

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stderr_tail(self) -> str:
        lines = bytes(self._err).decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else (f"exit {self.proc.returncode}" if self.proc.returncode is not None else "")

    def stop(self) -> int | None:
        code = runner.kill_group(self.proc)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                if f is not None:
                    f.close()
            except OSError:
                pass
        return code


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


def run_lines(cmd: list[str], image: str | None = None, count: int | None = None, until: str | None = None, timeout: float = 300.0,
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
    splitter, result = LineSplitter(), RunResult([], "exit", None, image=image or cmd[-1])
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
            except Exception:  # noqa: BLE001 - a child that does not exit after its output ended
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

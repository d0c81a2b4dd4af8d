"""A started target you can talk to line by line: :class:`Board` (what ``fwtool.api.open_target`` returns and the
pytest plugin's ``board`` fixture is).

It holds one open serial stream (a served virtual board's ``socket://`` URL, a board's port, a labgrid place's
exported port), cuts it into lines with fwtool.core.lines and keeps every line, so ``expect`` scans forward from
what it matched last and a failure can show the tail.
"""
from __future__ import annotations

import re
import time
from typing import Callable

from fwtool.core import protocol
from fwtool.core.errors import Exit, FwtoolError
from fwtool.core.lines import PortLines
from fwtool.devices.serial import open_serial
from fwtool.emulator.latency import LatencyStats, latency_stats
from fwtool.targets.base import Target, Unsupported

TAIL = 20


class ExpectationFailed(AssertionError):
    """An ``expect``/``inferences`` that was not met in time; the message ends with the board's last lines."""


class IdentityMismatch(AssertionError):
    """The banner names another model (or sha256) than the build: the target runs another image."""


def _tail(lines: list[str], n: int = TAIL) -> str:
    shown = lines[-n:]
    head = f"last {len(shown)} of {len(lines)} lines the board printed:" if lines else "the board printed nothing"
    return "\n".join([head, *(f"  | {ln}" for ln in shown)])


class Board:
    """A started target and the lines it printed. Build one with ``fwtool.api.open_target``."""

    def __init__(self, target: Target, ser, restart: Callable[[], object] | None = None,
                 on_close: Callable[[], object] | None = None) -> None:
        self.target, self.ser = target, ser
        self._restart, self._on_close = restart, on_close
        self._reader = PortLines(ser)
        self._lines: list[str] = []
        self._pos = 0  # where the next expect starts scanning
        self.banner: protocol.Banner | None = None

    # -- how one is made --------------------------------------------------------------------------------------
    @classmethod
    def virtual(cls, target: Target, image) -> "Board":
        """A virtual target that serves its serial stream (rp2040js): served, then read over its socket."""
        if not target.info.serves:
            raise Unsupported(f"{target.info.title} cannot be read line by line", "use the virtual RP2040 (pico)")

        def serve():
            return open_serial(target.serve(image)["port"], timeout=0.05)

        board = cls(target, serve())

        def restart():
            board.ser.close()
            target.stop()
            board.ser = serve()
            board._reader = PortLines(board.ser)
        board._restart = restart
        return board

    @classmethod
    def port_target(cls, target: Target, image, on_close: Callable[[], object] | None = None) -> "Board":
        """A board or labgrid place: ``load`` flashes it, ``start`` opens its port (``target.ser``)."""
        try:
            target.load(image)
            target.start()
        except BaseException:
            target.stop()
            if on_close:
                on_close()
            raise
        return cls(target, target.ser, on_close=on_close)

    # -- reading ----------------------------------------------------------------------------------------------
    def _poll(self) -> bool:
        try:
            pieces = self._reader.poll()
        except (OSError, ValueError, TypeError, AttributeError) as e:
            raise FwtoolError(f"the board went away while it ran: {e}", "reconnect it and re-run",
                              Exit.LOST_DEVICE) from e
        self._lines.extend(p.text for p in pieces)
        return bool(pieces)

    def lines(self) -> list[str]:
        """Every line the board printed so far (read what is waiting first)."""
        self._poll()
        return list(self._lines)

    def tail(self, n: int = TAIL) -> str:
        """The last ``n`` lines, formatted for a failure message."""
        return _tail(self._lines, n)

    def _scan(self, match: Callable[[str], object], timeout: float, what: str):
        __tracebackhide__ = True  # pytest: a failed expectation points at the test's line, not at this loop
        deadline = time.monotonic() + timeout
        while True:
            while self._pos < len(self._lines):
                line = self._lines[self._pos]
                self._pos += 1
                hit = match(line)
                if hit is not None and hit is not False:
                    return hit
                rec = protocol.parse_line(line)
                if isinstance(rec, protocol.FirmwareError):
                    raise ExpectationFailed(f"{what}: the firmware reported an error: {line}\n{self.tail()}")
            if time.monotonic() >= deadline:
                raise ExpectationFailed(f"{what}: not seen within {timeout:g} s\n{self.tail()}")
            self._poll()

    def expect(self, pattern: str | re.Pattern | None = None, *, label: str | None = None,
               min_score: float | None = None, timeout: float = 30.0):
        """Wait for the next line matching ``pattern`` (a regex, searched) — returns the ``re.Match`` — or the next
        inference whose top label is ``label`` (with a score of at least ``min_score``) — returns the
        ``protocol.Inference``. Raises :class:`ExpectationFailed` with the tail after ``timeout`` seconds."""
        __tracebackhide__ = True
        if (pattern is None) == (label is None):
            raise ValueError("expect() takes a regex or label=..., not both")
        if pattern is not None:
            rx = re.compile(pattern) if isinstance(pattern, str) else pattern
            return self._scan(rx.search, timeout, f"expected a line matching {rx.pattern!r}")

        def is_label(line: str):
            rec = protocol.parse_line(line)
            ok = (isinstance(rec, protocol.Inference) and rec.top == label
                  and (min_score is None or rec.score >= min_score))
            return rec if ok else None
        want = f"expected an inference with top label {label!r}" + (f" and score >= {min_score:g}"
                                                                     if min_score is not None else "")
        return self._scan(is_label, timeout, want)

    def inferences(self, n: int, timeout: float = 60.0) -> list[protocol.Inference]:
        """The next ``n`` inferences (``FWT:INFER`` lines), parsed."""
        __tracebackhide__ = True
        def infer(line: str):
            rec = protocol.parse_line(line)
            return rec if isinstance(rec, protocol.Inference) else None
        deadline = time.monotonic() + timeout
        return [self._scan(infer, max(0.0, deadline - time.monotonic()), f"expected {n} inferences (got {i})")
                for i in range(n)]

    def wait_banner(self, timeout: float = 60.0) -> protocol.Banner:
        """Wait for the ``FWT:BOOT`` banner (kept in ``self.banner``)."""
        def banner(line: str):
            rec = protocol.parse_line(line)
            return rec if isinstance(rec, protocol.Banner) else None
        self.banner = self._scan(banner, timeout, "expected the boot banner (FWT:BOOT)")
        return self.banner

    def check_identity(self, model_name: str, model_sha256: str) -> None:
        """The banner must name ``model_name`` and a prefix of ``model_sha256`` (it prints 12 hex digits)."""
        got = self.banner.fields if self.banner else {}
        name, sha = str(got.get("model", "")), str(got.get("sha256", ""))
        if name != model_name or not sha or not model_sha256.startswith(sha):
            raise IdentityMismatch(f"the board runs another image: its banner says model={name} sha256={sha}, the "
                                   f"build is model={model_name} sha256={model_sha256[:12]}\n{self.tail()}")

    # -- figures ----------------------------------------------------------------------------------------------
    def latency(self) -> LatencyStats | None:
        """Invoke-time statistics of every inference printed so far (None before the first)."""
        us = [r.us for r in map(protocol.parse_line, self.lines()) if isinstance(r, protocol.Inference)]
        return latency_stats(us, None, "emulated" if self.target.info.virtual else "board")

    def latency_summary(self) -> str:
        stats = self.latency()
        return stats.summary() if stats else "no inferences yet"

    # -- control ----------------------------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Bytes into the firmware's serial input (audio apps' host stream)."""
        self.ser.write(data)

    def reset(self, boot_timeout: float = 60.0) -> protocol.Banner:
        """Restart the firmware (the virtual board: a fresh run of the same image) and wait for its banner."""
        if self._restart is None:
            raise Unsupported(f"reset() is not supported on {self.target.info.title}", "start a new board fixture")
        self._restart()
        self._lines.clear()
        self._pos = 0
        return self.wait_banner(boot_timeout)

    def close(self) -> None:
        """Stop the target and release what it holds (idempotent)."""
        try:
            if self.ser is not None and self.ser is not getattr(self.target, "ser", None):
                self.ser.close()
            self.target.stop()
        finally:
            self.ser = None
            if self._on_close:
                on_close, self._on_close = self._on_close, None
                on_close()

    def __enter__(self) -> "Board":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

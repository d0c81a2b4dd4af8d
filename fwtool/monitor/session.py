"""The monitor session: find the port, read lines across reconnects, show them, decide when to stop.

Public API (used by ``fwtool monitor`` and ``fwtool run``)::

    from fwtool.monitor import MonitorOptions, run_monitor
    code = run_monitor(MonitorOptions(board="pico", serial=flashed_serial, wait=10, count=5, view="json"))

``run_monitor`` raises :class:`~fwtool.core.errors.FwtoolError` for problems before monitoring starts (no board / several
boards: exit 6, a bad --expect regex: exit 2, unknown board: exit 3) and otherwise returns the exit code:

====  ===========  ====================================================================================
code  name         when
====  ===========  ====================================================================================
0     OK           stop conditions met (or none given and the monitor was ended / --timeout ran out)
7     TIMEOUT      --timeout ran out before --count / --expect / --expect-label were met
8     MISMATCH     --count inferences went by without the expectations met, or the banner's labels do not
                   include --expect-label
9     LOST_DEVICE  the board disconnected and did not come back within --reconnect-timeout (or at all
                   with --no-reconnect)
10    FIRMWARE_ER  the firmware printed ``FWT:ERROR <cause>`` (it cannot run): with a stop condition the
                   session ends at once with that cause (an --expect pattern matching the line wins);
                   without one the line is shown and the session, when ended, exits 10 with that cause
130   INTERRUPTED  Ctrl-C while a stop condition was still pending
====  ===========  ====================================================================================
"""
from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO

from rich.console import Console
from rich.text import Text

from fwtool.core.boards import get_board
from fwtool.core.errors import Exit, FwtoolError
from fwtool.core.protocol import FirmwareFault
import fwtool.monitor.keys as keys_mod
from fwtool.devices.last_flash import LAST_FLASH_FILE
from fwtool.devices.ports import Discovery, PortInfo, resolve_port, target_for
from fwtool.devices.serial import is_url, open_serial
from fwtool.image.symbols import check_elf, fault_places
from fwtool.core.lines import LineSplitter
from fwtool.devices import board_lock
from fwtool.monitor.reader import Connected, Data, Disconnected, OpenFailed, PortReader, Reclaimed, Yielded
from fwtool.monitor.conditions import Conditions, Verdict, firmware_error
from fwtool.core.protocol_capture import PREFIX_CAPCFG
from fwtool.monitor.frameport import FrameStripper
from fwtool.monitor.handoff import Handoff, HandoffOptions, describe as describe_handoff
from fwtool.monitor.attach_reset import reset_after_open
from fwtool.monitor.reboot import default_reboot
from fwtool.monitor.stats import Record, Stats, classify
from fwtool.monitor.view import JsonView, LiveView, LogTee, PanelState, make_view

DEFAULT_LOST_TIMEOUT_CI = 10.0  # seconds a board may stay away when a stop condition is set


@dataclass
class MonitorOptions:
    port: str | None = None  # device path or pyserial URL (socket://, rfc2217://, loop://); default: discover
    serial: str | None = None  # only the board with this USB serial number (fwtool run passes the flashed one)
    board: str | None = None  # boards/<name>.toml: which USB ids to look for (default: last flash/all boards)
    uart: bool = False  # the console is on a UART behind a USB-UART bridge
    baud: int | None = None  # default 115200 (the board's uart_baud for --uart)
    reconnect: bool = True
    wait: float = 3.0  # seconds to wait for the board to appear at start
    reconnect_timeout: float | None = None  # None: forever, or 10 s when a stop condition is set
    view: str = "auto"  # auto (live on a terminal, else plain) | live | plain | json | raw
    timestamps: bool = False
    log: Path | None = None
    count: int | None = None
    timeout: float | None = None
    expect: tuple[str, ...] = ()
    expect_label: str | None = None
    min_score: float | None = None
    send_input: bool = True  # forward stdin to the board
    eol: str = "crlf"  # crlf | lf | cr, appended to each line sent
    poll_s: float = 0.05  # how often a missing board is looked for
    last_flash_file: Path = field(default_factory=lambda: LAST_FLASH_FILE)
    handoff: HandoffOptions | None = None  # --on-detect: capture after a detection and hand it off (handoff.py)
    elf: Path | None = None  # the build's ELF: FWT:FAULT pc/lr shown as function (file:line)
    # Reset the target once the port is open so its boot banner is seen (a PSoC 6 kit: through its KitProg3,
    # monitor/attach_reset.py); off, or when that fails, the identity comes with the firmware's re-announce.
    reset_on_open: bool = True


@dataclass
class MonitorResult:
    exit_code: int
    reason: str
    fix: str | None = None
    seconds: float = 0.0
    stats: dict = field(default_factory=dict)
    port: str | None = None

    def to_dict(self) -> dict:
        return {"type": "result", "ok": self.exit_code == 0, "exit_code": self.exit_code, "reason": self.reason,
                "fix": self.fix, "seconds": round(self.seconds, 3), "port": self.port, **self.stats}


class Session:
    def __init__(self, opts: MonitorOptions, *, discovery: Discovery | None = None,
                 opener: Callable | None = None, out: TextIO | None = None, err: TextIO | None = None,
                 stdin=None, reboot: Callable | None = None, stop: threading.Event | None = None,
                 on_record: Callable[[Record], None] | None = None, clock: Callable[[], float] = time.monotonic,
                 attach_reset: Callable | None = None):
        self.opts = opts
        self.discovery = discovery or Discovery()
        self.opener = opener or open_serial
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.stdin = stdin
        self.reboot = reboot or default_reboot
        self.attach_reset = attach_reset or reset_after_open  # (board, port) -> message | None; FwtoolError
        self.stop_event = stop
        self.on_record = on_record
        self.clock = clock
        self.errc = Console(file=self.err, highlight=False, soft_wrap=True, emoji=False)
        self.stats = Stats()
        self.panel = PanelState()
        self.verdict: Verdict | None = None

    # ---- set-up -----------------------------------------------------------------------------------------------
    def _info(self, msg: str) -> None:
        self.errc.print(Text(msg, style="dim"))

    def _resolve(self) -> tuple[PortInfo, int]:
        o = self.opts
        r = resolve_port(o.port, o.board, o.serial, uart=o.uart, baud=o.baud, wait_s=o.wait, poll_s=o.poll_s,
                         discovery=self.discovery, last_flash_file=o.last_flash_file, on_wait=self._info)
        return r.port, r.baud

    # ---- the loop ---------------------------------------------------------------------------------------------
    def run(self) -> MonitorResult:
        o = self.opts
        if o.eol not in keys_mod.EOLS:
            raise FwtoolError(f"--eol must be one of {', '.join(keys_mod.EOLS)}", "pick one", code=Exit.USAGE)
        self.handoff: Handoff | None = None
        self.stripper: FrameStripper | None = None  # a --capture firmware's frames without --on-detect
        self.cond = Conditions(o.count, tuple(o.expect), o.expect_label, o.min_score,
                               o.handoff.expect_transcript if o.handoff else None)
        self.cond.elf = o.elf
        if o.elf is not None:
            check_elf(o.elf)
        if o.handoff is not None:
            o.handoff.check()
        port, baud = self._resolve()
        # one device, one user: hold the board, letting go for a flash another process starts (devices/board_lock)
        gate = board_lock.Yieldable(board_lock.of_device(port))
        gate.acquire(on_wait=self._info)
        self.reader = PortReader(target_for(port), self.discovery, baud, opener=self.opener,
                                 reconnect=o.reconnect, poll_s=o.poll_s, clock=self.clock, gate=gate)
        try:
            first = self.reader.open_first(port)
        except BaseException:
            gate.release()
            raise
        self.splitter = LineSplitter()
        mode = "json" if o.view == "json" else o.view
        self.view = make_view(mode, self.out, self.err, o.timestamps)
        self.log = LogTee(o.log, as_json=(mode == "json")) if o.log else None
        self.input = None
        if o.send_input:
            stdin = self.stdin if self.stdin is not None else sys.stdin
            if stdin is not None:
                self.input = keys_mod.InputReader(stdin, keys=isinstance(self.view, LiveView))
                self.panel.pending_input = "" if self.input.keys else None
        self.eol = keys_mod.EOLS[o.eol].encode()
        lost_after = o.reconnect_timeout
        if lost_after is None and self.cond.active:
            lost_after = DEFAULT_LOST_TIMEOUT_CI
        t0 = self.clock()
        deadline = t0 + o.timeout if o.timeout else None
        self.view.start(self.stats, self.panel)
        if o.handoff is not None:
            self.handoff = Handoff(o.handoff, clock=self.clock, log=lambda s: self._emit_event("handoff_log", s))
        try:
            if self.input is not None:
                self.input.start()
            self._connected(first)
            self._reset_on_open(first.port)
            while self.verdict is None:
                if self.stop_event is not None and self.stop_event.is_set():
                    self.verdict = Verdict(Exit.OK, "stopped")
                    break
                for ev in self.reader.poll():
                    self._event(ev)
                    if self.verdict is not None:
                        break
                if self.verdict is None and self.input is not None:
                    for kind, value in self.input.poll():
                        self._input(kind, value)
                if self.verdict is None and self.handoff is not None:
                    self.handoff.tick()
                    for hev in self.handoff.poll():
                        self._handoff_event(hev)
                self.view.tick()
                if self.verdict is not None:
                    break
                now = self.clock()
                if deadline is not None and now >= deadline:
                    self.verdict = (Verdict(Exit.TIMEOUT, f"timed out after {o.timeout:g} s waiting for "
                                                          f"{self.cond.pending()}",
                                            "is the board running this firmware? Look at its output above, "
                                            "or allow more time with --timeout")
                                    if self.cond.active else Verdict(Exit.OK, f"stopped after {o.timeout:g} s"))
                elif self.reader.disconnected_at is not None:
                    away = now - self.reader.disconnected_at
                    if not o.reconnect:
                        self.verdict = Verdict(Exit.LOST_DEVICE, "the board disconnected (--no-reconnect)",
                                               "drop --no-reconnect to follow it across resets")
                    elif lost_after is not None and away >= lost_after:
                        self.verdict = Verdict(Exit.LOST_DEVICE,
                                               f"the board disconnected and did not come back within "
                                               f"{lost_after:g} s", "check the cable and power; a board left in "
                                               "BOOTSEL needs flashing ('fwtool flash'); or raise --reconnect-timeout")
        except KeyboardInterrupt:
            self.verdict = self._ended("interrupted")
        finally:
            if self.input is not None:
                self.input.stop()
            self.reader.close()
            gate.release()
            if self.handoff is not None:
                for hev in self.handoff.close():
                    self._handoff_event(hev, final=True)
                if self.handoff.in_flight:
                    self._emit_event("handoff_pending", f"{self.handoff.in_flight} handoff(s) still in flight at "
                                     f"the end; their captures stay in {o.handoff.spool}")
            try:
                self.view.stop()
            except Exception:  # noqa: BLE001 - never hide the result behind a display problem
                pass
        if self.verdict.code == Exit.OK and self.cond.fw_error is not None and not self.cond.active:
            self.verdict = firmware_error(self.cond.fw_error, self.opts.elf)
        result = MonitorResult(int(self.verdict.code), self.verdict.reason, self.verdict.fix,
                               seconds=self.clock() - t0, stats=self.stats.summary(),
                               port=self.reader.port.device if self.reader.port else port.device)
        result.stats["reconnects"] = max(0, self.reader.connects - 1)
        result.stats["bytes_read"] = self.reader.bytes_read
        self._report(result)
        if self.log is not None:
            self.log.close()
        return result

    def _report(self, r: MonitorResult) -> None:
        if isinstance(self.view, JsonView):
            self.view.emit(r.to_dict())
        if self.log is not None:
            self.log.event("result", f"exit {r.exit_code}: {r.reason}", time.time(), {"exit_code": r.exit_code})
        s = self.stats
        summary = (f"{s.inferences} inferences, {s.lines} lines, {max(0, self.reader.connects - 1)} reconnects "
                   f"in {r.seconds:.1f} s")
        if r.exit_code == 0:
            self.errc.print(Text(f"monitor: {r.reason} ({summary})", style="green" if self.cond.active else "dim"))
        else:
            self.errc.print(f"error: {r.reason} ({summary})", markup=False)
            if r.fix:
                self.errc.print(f"  fix: {r.fix}", markup=False)

    # ---- events -----------------------------------------------------------------------------------------------
    def _emit_event(self, kind: str, text: str, extra: dict | None = None, t: float | None = None) -> None:
        t = time.time() if t is None else t
        self.view.event(kind, text, t, extra)
        if self.log is not None:
            self.log.event(kind, text, t, extra)

    def _connected(self, ev: Connected) -> None:
        p = ev.port
        self.panel.port, self.panel.serial, self.panel.status = p.device, p.serial_number or "", "connected"
        self._emit_event("connected", ("reconnected: " if ev.again else "connected: ") + p.describe(long=False),
                         {"port": p.device, "serial": p.serial_number, "reconnect": ev.again}, ev.t)

    def _reset_on_open(self, port: PortInfo) -> None:
        """Once, after the first open: reset the target so the boot banner comes to this open port (ESP-IDF's
        monitor pulses DTR/RTS); where the board has no such reset nothing happens, where it fails an event says
        the identity comes with the firmware's periodic re-announce instead."""
        if not self.opts.reset_on_open or not self.opts.board:
            return
        try:
            board = get_board(self.opts.board)
            msg = self.attach_reset(board, port)
        except FwtoolError as e:
            self._emit_event("reset_failed", f"could not reset the target after opening the port: {e.cause}"
                             + (f" ({e.fix})" if e.fix else ""))
            return
        if msg:
            self._emit_event("reset", msg)

    def _event(self, ev) -> None:
        if isinstance(ev, Data):
            if self.view.wants_bytes:
                self.view.data(ev.data)
            if self.handoff is None and self.stripper is None and PREFIX_CAPCFG.encode() in ev.data:
                self.stripper = FrameStripper()  # (also found by _line when the banner was cut between reads)
            text = (self.handoff.feed(ev.data) if self.handoff is not None
                    else self.stripper.feed(ev.data) if self.stripper is not None else ev.data)
            for line in self.splitter.feed(text, ev.t):
                self._line(line)
                if self.verdict is not None:
                    return
        elif isinstance(ev, Disconnected):
            for line in self.splitter.flush(ev.t):
                self._line(line)
            self.stats.on_disconnect()
            self.panel.status = "disconnected"
            follow = "; waiting for it to come back" if self.opts.reconnect else ""
            self._emit_event("disconnected", f"disconnected ({ev.reason}){follow}", {"reason": ev.reason}, ev.t)
        elif isinstance(ev, Connected):
            self._connected(ev)
        elif isinstance(ev, Yielded):
            for line in self.splitter.flush(ev.t):
                self._line(line)
            self.panel.status = "lent to a flash"
            self._emit_event("yielded", f"let go of the board for {ev.to}; taking it back when that ends",
                             {"to": ev.to}, ev.t)
        elif isinstance(ev, Reclaimed):
            self.panel.status = "disconnected"
            self._emit_event("reclaimed", "the board is free again: reopening its port", None, ev.t)
        elif isinstance(ev, OpenFailed):
            self._emit_event("open_failed", f"{ev.port.device} is back but cannot be opened: {ev.error}",
                             {"port": ev.port.device, "error": ev.error}, ev.t)

    def _line(self, line) -> None:
        if self.handoff is None:
            if self.stripper is None and line.complete and line.text.startswith(PREFIX_CAPCFG):
                self.stripper = FrameStripper()
            note = self.stripper.take_summary() if self.stripper is not None else None
            if note:
                self._emit_event("capture_skipped", note)
        rec = classify(line)
        self.stats.add(rec)
        self.view.record(rec)
        if self.log is not None:
            self.log.record(rec)
        if self.on_record is not None:
            self.on_record(rec)
        if isinstance(rec.parsed, FirmwareFault) and self.opts.elf is not None and not self.cond.active:
            # shown at once, as ESP-IDF's monitor decodes a panic (a stop condition ends with it in the verdict)
            where = fault_places(rec.parsed.raw, self.opts.elf)
            self._emit_event("fault", f"fault: {where or 'pc/lr not in ' + str(self.opts.elf)}",
                             dict(rec.parsed.fields))
        v = self.cond.check(rec, self.stats)
        if v is not None:
            self.verdict = v

    def _handoff_event(self, ev: dict, final: bool = False) -> None:
        """One finished handoff: one event in the view, one JSON line with --json; may meet --expect-transcript."""
        self._emit_event("handoff", describe_handoff(ev), ev)
        if self.handoff is not None and self.handoff.transcript_matches(ev) and self.cond.transcript_met is None:
            v = self.cond.check_transcript(ev["transcript"])
            if v is not None and (self.verdict is None or (final and self.verdict.code == Exit.TIMEOUT)):
                self.verdict = v

    def _ended(self, how: str) -> Verdict:
        """The user ended the session: fine, unless a stop condition was still pending (exit 130)."""
        if self.cond.active and not self.cond.satisfied():
            return Verdict(Exit.INTERRUPTED, f"{how} while waiting for {self.cond.pending()}")
        return Verdict(Exit.OK, "ended by the user")

    def _input(self, kind: str, value: str) -> None:
        if kind == "pending":
            self.panel.pending_input = value
            if isinstance(self.view, LiveView):
                self.view.mark_dirty()
        elif kind == "line":
            if self.reader.write(value.encode("utf-8") + self.eol):
                self._emit_event("sent", f"sent: {value}", {"text": value})
            else:
                self._emit_event("not_sent", f"not sent (board disconnected): {value}", {"text": value})
        elif kind == "action":
            if value == "quit":
                self.verdict = self._ended("ended")
                return
            port = self.reader.port
            if port is None or not self.reader.connected:
                self._emit_event("reboot_failed", "cannot reboot: the board is not connected")
                return
            if port.vid is None and is_url(port.device):
                self._emit_event("reboot_failed", f"cannot reboot a board behind {port.device} (a USB board only)")
                return
            try:
                msg = self.reboot("bootsel" if value == "bootsel" else "app", port, self.reader)
                self._emit_event("reboot", msg or "rebooting")
            except FwtoolError as e:
                self._emit_event("reboot_failed", f"cannot reboot: {e.cause}" + (f" ({e.fix})" if e.fix else ""))
            except Exception as e:  # noqa: BLE001 - a USB hiccup must not end the monitor
                self._emit_event("reboot_failed", f"cannot reboot: {type(e).__name__}: {e}")


def run_monitor(options: MonitorOptions, **kwargs) -> int:
    """Monitor until a stop condition; returns the exit code (see the module docstring).

    Keyword arguments (for ``fwtool run`` and tests): ``discovery`` (a :class:`Discovery` with an injected
    ``list_ports``), ``opener(device, baud, timeout)``, ``out``/``err`` streams, ``stdin``, ``reboot(kind, port,
    reader)``, ``stop`` (a threading.Event that ends the monitor with exit 0), ``on_record(record)``.
    """
    return Session(options, **kwargs).run().exit_code

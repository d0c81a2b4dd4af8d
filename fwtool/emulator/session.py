"""One run of the virtual board: a ``node runner.mjs`` process fwtool owns from start to kill.

* :class:`Rp2040jsProcess` starts it (serial on a TCP port on 127.0.0.1, or on its stdout), collects its JSON control
  events from stderr, and stops it: SIGTERM then SIGKILL to its process group, always, also on Ctrl-C or an
  exception. A wall-clock guard kills it even if it stops answering (a synchronous spin inside rp2040js), and the
  runner itself exits when its stdin closes, so a killed fwtool leaves no node process behind.
* :func:`run_capture` runs an image until the N-th line containing a marker (by default ``FWT:INFER``) and
  returns the serial lines with the reason the run ended (one :class:`~fwtool.emulator.result.RunResult`, the type
  the virtual Cortex-M4 returns too; commands reach both through fwtool/emulator/targets.py).
"""
from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import threading
import time
import weakref
from pathlib import Path
from typing import Callable

from fwtool.core import protocol, runner
from fwtool.core.errors import FwtoolError
from fwtool.core.lines import LineSplitter
from fwtool.emulator import bootrom as bootrom_mod
from fwtool.emulator import image as image_mod
from fwtool.emulator import node as node_mod
from fwtool.emulator.result import RunResult, failure  # noqa: F401 - failure: re-exported (tests, commands)
from fwtool.image.symbols import decode_fault

RUNNER_JS = Path(__file__).resolve().parent / "runner.mjs"
CLOCK_MHZ = 125  # pico-sdk's default clk_sys on the RP2040: the runner's cycle time until the firmware sets the PLL
TIMING_NOTE = ("emulated timing: rp2040js cycle counts at the clk_sys the firmware set, both cores in lock-step, "
               "zero-wait flash (no XIP cache misses, no bus contention between the cores) - an estimate, typically "
               "optimistic; confirm on a real board")
GUARD_S = 15.0  # the external kill comes this long after the runner's own wall limit

_live: "weakref.WeakSet[Rp2040jsProcess]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:  # last resort: never leave a node process behind
    for board in list(_live):
        board.stop()


class Rp2040jsProcess:
    """One rp2040js process running an image: the engine behind the ``rp2040js`` target (fwtool/emulator/targets.py,
    which commands use; was ``VirtualBoard``). Use as a context manager, or call :meth:`start` and :meth:`stop`."""

    def __init__(self, image: Path, *, serial: str = "tcp", start: str = "on-connect", port: int = 0,
                 max_emulated_s: float | None = None, max_wall_s: float | None = 3600.0, until: str | None = None,
                 count: int = 0, on_event: Callable[[dict], None] | None = None,
                 on_line: Callable[[str], None] | None = None, extra_args: list[str] | None = None,
                 stop_on_error: bool = True):
        if serial not in ("tcp", "stdout"):
            raise ValueError(serial)
        self.image_path = Path(image)
        self.serial, self.start_mode, self.port = serial, start, port
        self.max_emulated_s, self.max_wall_s = max_emulated_s, max_wall_s
        self.until, self.count = until, count
        self.on_event, self.on_line = on_event, on_line
        self.extra_args = list(extra_args or [])  # more runner.mjs options (e.g. --no-out-hold for A/B runs)
        self.stop_on_error = stop_on_error  # end the run at the firmware's first FWT:ERROR line (serial on stdout)
        self.firmware_error: str | None = None  # its cause: the run's reason becomes "firmware-error"
        self.events: list[dict] = []
        self.lines: list[str] = []
        self.exit_event: dict | None = None
        self.image: image_mod.FlashImage | None = None
        self.node: node_mod.Node | None = None
        self.rp2040js: node_mod.Rp2040js | None = None
        self._proc = None
        self._tmp: Path | None = None
        self._threads: list[threading.Thread] = []
        self._listening = threading.Event()
        self._exited = threading.Event()
        self._guard: threading.Timer | None = None
        self._started_at = 0.0
        self._killed = False

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def prepare(self) -> list[str]:
        """Everything short of starting node: tools, package, bootrom, image (raises the first problem)."""
        self.image = image_mod.load(self.image_path)
        self.node = node_mod.find_node()
        self.rp2040js = node_mod.ensure_rp2040js()
        rom = bootrom_mod.bootrom_file()
        self._tmp = Path(tempfile.mkdtemp(prefix="fwtool-emu-"))
        flash = self._tmp / "flash.bin"
        flash.write_bytes(self.image.data)
        cmd = [self.node.path, str(RUNNER_JS), "--rp2040js", str(self.rp2040js.entry), "--bootrom", str(rom),
               "--flash", str(flash), "--serial", self.serial, "--port", str(self.port), "--start", self.start_mode,
               "--mhz", str(CLOCK_MHZ)]
        if self.max_emulated_s:
            cmd += ["--max-emulated-s", f"{self.max_emulated_s:g}"]
        if self.max_wall_s:
            cmd += ["--max-wall-s", f"{self.max_wall_s:g}"]
        if self.until and self.count > 0:
            cmd += ["--until", self.until, "--count", str(self.count)]
        return cmd + self.extra_args

    def start(self, ready_timeout: float = 30.0) -> "Rp2040jsProcess":
        cmd = self.prepare()
        self._started_at = time.monotonic()
        self._proc = runner.spawn(cmd)
        _live.add(self)
        self._spawn_thread(self._read_events)
        if self.serial == "stdout":
            self._spawn_thread(self._read_serial)
        guard_after = (self.max_wall_s or 0) + GUARD_S if self.max_wall_s else None
        if guard_after:
            self._guard = threading.Timer(guard_after, self._kill)
            self._guard.daemon = True
            self._guard.start()
        if self.serial == "tcp":
            deadline = time.monotonic() + ready_timeout
            while not self._listening.is_set():
                if self._exited.is_set() or time.monotonic() > deadline:
                    self.stop()
                    ev = self.exit_event or {}
                    raise FwtoolError(f"the virtual board did not start: {ev.get('detail') or ev.get('reason') or 'no answer'}",
                                      "check 'node --version' (>= 18); re-run with FWTOOL_DEBUG=1")
                self._listening.wait(0.05)
        return self

    @property
    def url(self) -> str:
        """pyserial URL of the serial stream (``fwtool monitor --port <url>``)."""
        if self.serial != "tcp" or not self.port:
            raise FwtoolError("this virtual board has no TCP serial port", None)
        return f"socket://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def wait(self, timeout: float | None = None) -> dict | None:
        """Block until the runner exits (or ``timeout``); return its exit event (None if still running)."""
        if self._proc is None:
            return self.exit_event
        try:
            self._proc.wait(timeout=timeout)
        except Exception:  # subprocess.TimeoutExpired
            return None
        for t in self._threads:
            t.join(timeout=5)
        return self._final_event()

    def stop(self) -> dict | None:
        """End the run (idempotent): SIGTERM/SIGKILL the process group, reap it, remove the temporary files."""
        if self._guard:
            self._guard.cancel()
        if self._proc is not None:
            runner.stop(self._proc, grace=2.0)
            for t in self._threads:
                t.join(timeout=5)
        _live.discard(self)
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        return self._final_event()

    def __enter__(self) -> "Rp2040jsProcess":
        return self if self._proc is not None else self.start()  # emulator.start() already started it

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- results -----------------------------------------------------------------------------------------------
    def _final_event(self) -> dict | None:
        if self.exit_event is None and self._proc is not None and self._proc.poll() is not None:
            rc = self._proc.returncode
            self.exit_event = {"event": "exit", "reason": "killed" if self._killed else "exited",
                               "detail": f"node exit status {rc}" + (
                                   f"; {self._stderr_tail()}" if self._stderr_tail() else ""),
                               "emulated_us": None, "wall_s": round(time.monotonic() - self._started_at, 3)}
        return self.exit_event

    def _stderr_tail(self) -> str:
        texts = [e.get("text", "") for e in self.events if e.get("event") == "log" and e.get("level") == "stderr"]
        return texts[-1][:200] if texts else ""

    def result(self) -> RunResult:
        ev = self._final_event() or {"reason": "running"}
        if self.firmware_error is not None:  # the firmware said why it stopped: that is the reason, not the kill
            ev = {**ev, "reason": "firmware-error", "detail": self.firmware_error}
        return RunResult(list(self.lines), ev.get("reason", "?"), ev.get("detail"), int(ev.get("emulated_us") or 0),
                         float(ev.get("wall_s") or 0.0), list(self.events), str(self.image_path))

    # -- threads -----------------------------------------------------------------------------------------------
    def _spawn_thread(self, fn) -> None:
        t = threading.Thread(target=fn, daemon=True)
        t.start()
        self._threads.append(t)

    def _kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._killed = True
            runner.kill_group(self._proc, grace=1.0)

    def _read_events(self) -> None:
        assert self._proc and self._proc.stderr
        for raw in self._proc.stderr:
            text = raw.decode("utf-8", errors="replace").rstrip("\n")
            try:
                ev = json.loads(text) if text.startswith("{") else None
            except ValueError:
                ev = None
            if not isinstance(ev, dict) or "event" not in ev:
                ev = {"event": "log", "level": "stderr", "text": text}
            self.events.append(ev)
            if ev["event"] == "listening":
                self.port = int(ev["port"])
                self._listening.set()
            elif ev["event"] == "exit":
                self.exit_event = ev
            if self.on_event:
                self.on_event(ev)
        self._exited.set()

    def _read_serial(self) -> None:
        assert self._proc and self._proc.stdout
        splitter = LineSplitter()
        while True:
            chunk = self._proc.stdout.read1(65536) if hasattr(self._proc.stdout, "read1") else self._proc.stdout.read(1)
            if not chunk:
                break
            for piece in splitter.feed(chunk, time.time()):
                self._line(piece.text)
        for piece in splitter.flush(time.time()):
            self._line(piece.text)

    def _line(self, line: str) -> None:
        self.lines.append(line)
        if self.on_line:
            self.on_line(line)
        if self.firmware_error is None:
            parsed = protocol.parse_line(line)
            if isinstance(parsed, protocol.FirmwareError):
                self.firmware_error = parsed.text or "FWT:ERROR without a cause"
                if isinstance(parsed, protocol.FirmwareFault):  # pc/lr as function (file:line): the build's ELF
                    try:
                        self.firmware_error = decode_fault(line, self.image_path.with_suffix(".elf"))
                    except FwtoolError:  # an unreadable ELF beside the image: the line as it came
                        self.firmware_error = line
                if self.stop_on_error:
                    self._kill()  # it halts and repeats the line every second: waiting would only time out

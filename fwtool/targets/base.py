"""The target interface: a place where an image runs and prints ``FWT:`` lines.

Modelled on Zephyr's runners (an emulator is a runner too, configured like a board) and pyOCD's session → probe +
board → target composition: a command asks the registry for a target, hands it an image, starts it, reads its
lines (cut by fwtool.core.lines), may feed it (an audio stream), and stops it. What the command needs to know to
interpret the figures (virtual or physical, cycle-accurate or not, cores, clock) is declared in
:class:`TargetInfo`, so no command tests "is this the emulator" itself.

Lifecycle (``Target.run`` does all of it, ``stop`` always)::

    t = registry.for_board("pico", "emulator")
    t.load(image)                 # flash it / lay it out in emulated flash (None: the board already runs it)
    t.start()
    lines = t.read(until="FWT:DONE", count=1, timeout=300, on_line=print)
    t.stop()

    # a target that takes bytes (info.feeds): a live link instead of start(), e.g. an audio stream
    port = t.open_link(image)     # pyserial-like (fwtool/targets/link.py); t.feed(data) writes to it
    capture(port, pcm, ...)       # fwtool/audio/capture.py, exactly as on a board's serial port
    t.stop()
    t.details()                   # what the run recorded (port, wall_s, emulated_us, ...)
"""
from __future__ import annotations

from abc import ABC, abstractmethod
import time
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from fwtool.core.errors import Exit, FwtoolError
from fwtool.core.lines import PortLines

PHYSICAL, VIRTUAL = "physical", "virtual"


@dataclass(frozen=True)
class TargetInfo:
    """What a target is (data: the registry, commands and reports read it)."""

    name: str  # registry name: "rp2040js", "qemu-mps2-an386", "board", "labgrid"
    title: str  # for people: "the virtual RP2040 (rp2040js)"
    kind: str  # PHYSICAL | VIRTUAL
    cycle_accurate: bool  # are its times the real chip's (a board) or an estimate (an emulator)
    cores: int  # CPU cores the firmware may use (TFLM's default --tflm-cores)
    clock_hz: float | None  # what one tick of the firmware's timer counts at (None: the board file's clock_hz)
    cycle: str = "cycle"  # what clock_hz counts: "cycle" or "instruction" (QEMU -icount)
    timing_note: str | None = None  # how far its times are from a real board's (None: they are a real board's)
    feeds: frozenset[str] = field(default_factory=frozenset)  # what it can be fed while running: {"bytes"}
    serves: bool = False  # serve(): its serial stream can be opened by the monitor (a port or socket:// URL)

    @property
    def virtual(self) -> bool:
        return self.kind == VIRTUAL

    def to_dict(self) -> dict:
        d = asdict(self)
        d["feeds"] = sorted(self.feeds)
        return d


@dataclass
class TargetConfig:
    """How to reach a target (Zephyr's RunnerConfig): every target takes one, and reads the fields it needs."""

    board: str = "pico"  # the board file the image was built for
    port: str | None = None  # physical: a serial device or pyserial URL (default: where the flashed board shows up)
    serial: str | None = None  # physical: the board's USB serial number
    flash: bool = True  # physical: flash the image first (False: the board already runs it)
    method: str = "auto"  # physical: the flash method (fwtool flash --method)
    verify: bool = True  # read the flash back after writing it
    max_emulated_s: float | None = None  # virtual: stop after this much emulated time
    max_wall_s: float | None = 3600.0  # virtual, serve(): stop a served run after this many wall-clock seconds
    through_bootloader: bool = False  # virtual: start it through the emulated bootrom like a chip (read(): power
    # on, boot2 reads the emulated flash chip; serve(): flashed over PICOBOOT first, like a board)


class Unsupported(FwtoolError):
    """A target was asked for something its TargetInfo does not declare."""


_readers: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # port -> (its line reader, lines not taken)


def _reader_of(ser) -> tuple[PortLines, list]:
    """One line reader per open port, so lines after the one a read stopped at wait for the next read (a
    request/reply exchange such as validate's input vectors reads the same port many times)."""
    try:
        got = _readers.get(ser)
        if got is None:
            got = _readers[ser] = (PortLines(ser), [])
        return got
    except TypeError:  # not weak-referenceable: a reader for this call only
        return PortLines(ser), []


def read_lines(ser, until: str | None, count: int, timeout: float, on_line: Callable[[str], None]) -> list[str]:
    """Lines from an open port until the ``count``-th starting with ``until`` or ``timeout`` seconds."""
    lines: list[str] = []
    (reader, pending), seen = _reader_of(ser), 0
    deadline = time.monotonic() + timeout
    while pending or time.monotonic() < deadline:
        if not pending:
            try:
                pending.extend(reader.poll())
            except (OSError, ValueError, TypeError, AttributeError) as e:  # pyserial's SerialException is an OSError
                raise FwtoolError(f"the board went away while it ran: {e}", "reconnect it and re-run",
                                  Exit.LOST_DEVICE) from e
        while pending:
            piece = pending.pop(0)
            lines.append(piece.text)
            on_line(piece.text)
            if until and piece.text.startswith(until):
                seen += 1
                if seen >= count:
                    return lines
    return lines


class Target(ABC):
    """One target instance = one run. Implementations set ``info`` and the four abstract calls."""

    info: TargetInfo

    def __init__(self, config: TargetConfig | None = None) -> None:
        self.config = config or TargetConfig()
        self.image: Path | None = None
        self._details: dict = {}

    # -- the lifecycle ---------------------------------------------------------------------------------------
    def load(self, image: Path | None) -> None:
        """Give the target ``image`` to run (None: keep what it runs now, if the target can)."""
        self.image = Path(image) if image is not None else None

    @abstractmethod
    def start(self) -> None:
        """Start running the loaded image (or connect to the board running it)."""

    @abstractmethod
    def read(self, until: str | None, count: int = 1, timeout: float = 300.0,
             on_line: Callable[[str], None] = lambda s: None) -> list[str]:
        """Lines until the ``count``-th starting with ``until`` (None: until ``timeout``/the firmware's end).
        A virtual target whose run ends any other way (firmware error, crash, timeout with ``until``) raises its
        FwtoolError; a port (a board) gives the lines it read by the timeout, for the caller to judge."""

    link = None  # the live byte link open_link() returned (fwtool/targets/link.py); stop() closes it

    def open_link(self, image: Path | None):
        """Load and start ``image`` with a live byte link into its console — if ``"bytes"`` in info.feeds — and
        return it: a pyserial-like port (``write``, ``read(n)`` waiting at most ``timeout``, ``in_waiting``,
        ``close``; fwtool/targets/link.py) carrying what the firmware prints and what it reads (the bytes a board's
        USB CDC or UART RX would get: the audio stream of fwtool/audio/stream.py). Also kept as ``self.link``:
        ``feed`` writes to it, ``read`` reads its lines, ``stop()`` ends the run and closes it."""
        raise Unsupported(f"{self.info.title} cannot be fed while it runs",
                          "stream to a target whose info.feeds has 'bytes' (docs/audio-validate.md lists them)")

    def feed(self, data: bytes) -> None:
        """Send bytes to the running firmware (an audio stream, input vectors) — if ``"bytes"`` in info.feeds;
        after ``open_link``."""
        if self.link is None:
            raise Unsupported(f"{self.info.title} cannot be fed while it runs" if "bytes" not in self.info.feeds
                              else f"{self.info.title} is not running with a link: call open_link() first", None)
        self.link.write(data)

    @abstractmethod
    def stop(self) -> None:
        """End the run (idempotent; no process, port or temporary file left behind)."""

    def serve(self, image: Path | None) -> dict:
        """Load and start ``image`` for the monitor (if ``info.serves``): the MonitorOptions fields that reach its
        serial stream (``port``, or ``board``/``serial`` to follow a board; ``reconnect``, ``wait``). ``stop()``
        ends it. ``self.flash_result`` is the flash result when it was flashed."""
        raise Unsupported(f"{self.info.title} has no serial port to monitor", "read its lines (fwtool run prints "
                          "them)")

    def end_error(self) -> FwtoolError | None:
        """After ``stop()`` of a served run: why the target ended by itself, if not because it was stopped."""
        return None

    def summary(self, lines: list[str]) -> list[str]:
        """Lines to print after a run of ``lines`` (latency and how far its times are from a board's)."""
        return [f"note: {self.info.timing_note}"] if self.info.timing_note else []

    flash_result: dict | None = None

    # -- what was recorded -----------------------------------------------------------------------------------
    def details(self) -> dict:
        """The report's ``target`` block: what it is plus what this run recorded."""
        info = self.info
        out = {"kind": "emulator" if info.virtual else "board", "name": info.title, "target": info.name,
               "virtual": info.virtual, "cycle_accurate": info.cycle_accurate, "cores": info.cores,
               "clock_hz": info.clock_hz, "cycle": info.cycle}
        if info.timing_note:
            out["timing_note"] = info.timing_note
        return {**out, **self._details}

    # -- all of it -------------------------------------------------------------------------------------------
    def run(self, image: Path | None, until: str | None, count: int = 1, timeout: float = 300.0,
            on_line: Callable[[str], None] = lambda s: None,
            on_step: Callable[[str], None] = lambda s: None) -> tuple[list[str], dict]:
        """load, start, read, stop (always): the lines and ``details()``."""
        self.on_step = on_step
        self.load(image)
        try:
            self.start()
            lines = self.read(until, count, timeout, on_line)
        finally:
            self.stop()
        return lines, self.details()

    def __enter__(self) -> "Target":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    on_step: Callable[[str], None] = staticmethod(lambda s: None)

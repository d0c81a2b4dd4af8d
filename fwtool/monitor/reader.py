"""Reading the board's output without losing a line: a port reader that reconnects (lines are cut by
:mod:`fwtool.core.lines`).

* :class:`PortReader` owns the open port. ``poll()`` returns events (:class:`Data`, :class:`Connected`,
  :class:`Disconnected`, :class:`OpenFailed`). After a disconnect it looks for the same board (same USB serial
  number, any device name) every ``poll_s`` seconds and opens it the moment it is listed, so a boot banner printed
  right after re-enumeration is read.
* With a ``gate`` (a :class:`fwtool.devices.board_lock.Yieldable`, the monitor's hold on its board) it lets go of the
  board for a flash it did not start: on the poll after the flash asks, it closes the port and releases the board
  (:class:`Yielded`); once the flash is over it takes the board back and reopens the port like after a reset.

Ports are opened by the serial layer's one opener (fwtool.devices.serial.open_serial) and read by its one read
loop (fwtool.core.lines.read_waiting).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import serial

from fwtool.core.errors import NoDevice
from fwtool.devices.ports import Discovery, FollowedPort, PortInfo
from fwtool.devices.serial import PORT_ERRORS as _ERRORS
from fwtool.devices.serial import open_fix, open_serial, read_waiting, short_reason


@dataclass
class Data:
    data: bytes
    t: float


@dataclass
class Connected:
    port: PortInfo
    t: float
    again: bool  # a reconnect (not the first open)


@dataclass
class Disconnected:
    reason: str
    t: float


@dataclass
class Yielded:
    to: str  # the holder record of the process it let go for ("fwtool flash pid 1234")
    t: float


@dataclass
class Reclaimed:
    t: float


@dataclass
class OpenFailed:
    port: PortInfo
    error: str
    t: float


class PortReader:
    def __init__(self, target: FollowedPort, discovery: Discovery, baud: int = 115200, *,
                 opener: Callable[[str, int, float], serial.SerialBase] = open_serial,
                 reconnect: bool = True, poll_s: float = 0.05, read_timeout: float = 0.05,
                 clock: Callable[[], float] = time.monotonic, gate=None):
        self.target = target
        self.gate = gate
        self.discovery = discovery
        self.baud = baud
        self.opener = opener
        self.reconnect = reconnect
        self.poll_s = poll_s
        self.read_timeout = read_timeout
        self.clock = clock
        self.ser: serial.SerialBase | None = None
        self.port: PortInfo | None = None
        self.disconnected_at: float | None = None  # clock() of the last disconnect while not reconnected
        self.connects = 0
        self.bytes_read = 0
        self._next_scan = 0.0
        self._last_open_error = ""

    # ---- opening ----------------------------------------------------------------------------------------------
    def _open(self, port: PortInfo) -> None:
        self.ser = self.opener(port.device, self.baud, self.read_timeout)
        self.port = port
        self.disconnected_at = None
        self._last_open_error = ""
        self.connects += 1

    def open_first(self, port: PortInfo, retry_s: float = 1.5) -> Connected:
        """Open the chosen port; retries briefly (udev may still be setting permissions). Raises NoDevice."""
        deadline = self.clock() + retry_s
        while True:
            try:
                self._open(port)
                return Connected(port, time.time(), again=False)
            except _ERRORS as e:
                if self.clock() >= deadline:
                    msg = str(e) or type(e).__name__
                    raise NoDevice(f"cannot open {port.device}: {msg}", open_fix(msg)) from e
            time.sleep(self.poll_s)

    @property
    def connected(self) -> bool:
        return self.ser is not None

    # ---- the loop's one call ------------------------------------------------------------------------------------
    def poll(self) -> list:
        """Read what is there (waiting up to ``read_timeout``), or look for the board if it is gone."""
        if self.ser is None:
            return self._look_for_board()
        if self.gate is not None:
            to = self.gate.wanted()
            if to is not None:  # a flash this monitor did not start asks for the board
                self.close()
                self.gate.release(to)
                self.disconnected_at = self.clock() if not self.reconnect else None  # no lost-timeout meanwhile
                return [Yielded(to, time.time())]
        buf = bytearray()
        try:
            read_waiting(self.ser, buf)  # blocks up to read_timeout for the first byte
        except _ERRORS as e:
            events: list = [Data(bytes(buf), time.time())] if buf else []
            self.bytes_read += len(buf)
            events.append(self._lost(e))
            return events
        if not buf:
            return []
        self.bytes_read += len(buf)
        return [Data(bytes(buf), time.time())]

    def _lost(self, e: BaseException | str) -> Disconnected:
        reason = e if isinstance(e, str) else short_reason(e)
        self.close()
        self.disconnected_at = self.clock()
        self._next_scan = 0.0
        return Disconnected(reason, time.time())

    def _look_for_board(self) -> list:
        if not self.reconnect:
            time.sleep(self.read_timeout)
            return []
        events: list = []
        if self.gate is not None and not self.gate.held:
            if not self.gate.try_reacquire():  # the flash still has the board
                time.sleep(self.read_timeout)
                return []
            self.disconnected_at = self.clock()  # the reconnect timeout counts from the end of the flash
            self._next_scan = 0.0
            events.append(Reclaimed(time.time()))
        return events + self._scan()

    def _scan(self) -> list:
        now = self.clock()
        if now < self._next_scan:
            time.sleep(min(self.read_timeout, self._next_scan - now))
            return []
        self._next_scan = now + self.poll_s
        port = self.discovery.find(self.target)
        if port is None or not port.device:
            time.sleep(min(self.read_timeout, self.poll_s))
            return []
        try:
            self._open(port)
        except _ERRORS as e:
            msg = str(e) or type(e).__name__
            if msg != self._last_open_error and self.target.serial_number:  # listed but cannot be opened: say so
                self._last_open_error = msg
                return [OpenFailed(port, msg, time.time())]
            self._last_open_error = msg
            return []
        return [Connected(port, time.time(), again=True)]

    # ---- to the board ---------------------------------------------------------------------------------------------
    def write(self, data: bytes) -> bool:
        if self.ser is None:
            return False
        try:
            self.ser.write(data)
            self.ser.flush()
            return True
        except _ERRORS:
            return False

    def touch_1200(self) -> bool:
        """pico-sdk's reset-to-BOOTSEL "magic": set 1200 baud on the open CDC port (rp2040-flashing.md §3.4)."""
        if self.ser is None:
            return False
        try:
            self.ser.baudrate = 1200
        except _ERRORS:
            pass  # the device vanishing mid-request is the expected outcome
        return True

    def close(self) -> None:
        ser, self.ser = self.ser, None
        if ser is not None:
            try:
                ser.close()
            except _ERRORS:
                pass

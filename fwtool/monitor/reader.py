"""Reading the board's output without losing a line: a port reader that reconnects (lines are cut by
:mod:`fwtool.core.lines`).

* :class:`PortReader` owns the open port. ``poll()`` returns events (:class:`Data`, :class:`Connected`,
  :class:`Disconnected`, :class:`OpenFailed`). After a disconnect it looks for the same board (same USB serial
  number, any device name) every ``poll_s`` seconds and opens it the moment it is listed, so a boot banner printed
  right after re-enumeration is read.

Reads never ask pyserial for more bytes than are waiting: pyserial's ``read(n)`` raises on a disconnect and
throws away what it had already read in that call.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Callable

import serial

from fwtool.core.errors import NoDevice
from fwtool.core.lines import MAX_LINE
from fwtool.devices.ports import Discovery, FollowedPort, PortInfo, is_url, serial_open_args

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
class OpenFailed:
    port: PortInfo
    error: str
    t: float


def _socket_of(ser) -> socket.socket | None:
    """The TCP socket behind a ``socket://`` port (pyserial's protocol_socket keeps it in ``_socket``)."""
    if type(ser).__module__.endswith("protocol_socket") and hasattr(socket, "MSG_DONTWAIT"):
        sock = getattr(ser, "_socket", None)
        return sock if isinstance(sock, socket.socket) else None
    return None


def _open_keeping_first_bytes(ser: serial.SerialBase) -> None:
    """Open without the input flush pyserial does at open (posix: after raising DTR; socket://: after connecting).
    A pico-sdk app starts printing its banner as soon as it sees DTR, and an emulator as soon as the socket
    connects, so those bytes were thrown away. Drivers only read while a port is open: nothing stale to flush."""
    noop = lambda *a, **k: None  # noqa: E731
    for name in ("_reset_input_buffer", "reset_input_buffer"):
        setattr(ser, name, noop)  # instance attributes shadow the class methods during open()
    try:
        ser.open()
    finally:
        for name in ("_reset_input_buffer", "reset_input_buffer"):
            try:
                delattr(ser, name)
            except AttributeError:
                pass


def open_serial(device: str, baud: int, timeout: float) -> serial.SerialBase:
    """Open a device path or pyserial URL. DTR is asserted (pico-sdk only sends once the host sets it)."""
    kwargs = {"exclusive": True} if (os.name == "posix" and not is_url(device)) else {}
    if is_url(device):
        check_url(device)
    try:
        url, extra = serial_open_args(device, write_timeout=1.0)  # rfc2217: no write timeout, ign_set_control
        ser = serial.serial_for_url(url, do_not_open=True, baudrate=baud, timeout=timeout, **extra, **kwargs)
    except (KeyError, ValueError) as e:  # pyserial's URL options parser raises these for unknown values
        raise serial.SerialException(f"port URL {device!r} is not valid ({e})") from e
    try:
        _open_keeping_first_bytes(ser)
    except KeyError as e:  # URL handlers (loop://, socket://) look options up in dicts when opening
        raise serial.SerialException(f"port URL {device!r} has an unknown option value {e}") from e
    return ser


def check_url(device: str) -> None:
    """socket:// and rfc2217:// URLs need host:port with a port in 1..65535 (pyserial's own message for a bad
    one is an unrelated 'debug|info|warning|error')."""
    scheme, _, rest = device.partition("://")
    if scheme.lower() not in ("socket", "rfc2217"):
        return
    hostport = rest.split("?", 1)[0].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise serial.SerialException(f"port URL {device!r} needs {scheme}://HOST:PORT with PORT 1-65535")


_ERRORS = (serial.SerialException, OSError, ValueError, TypeError, AttributeError)


def short_reason(e: BaseException) -> str:
    """pyserial's disconnect messages are long and say the same thing: the port went away."""
    msg = str(e) or type(e).__name__
    if "returned no data" in msg or "Errno 5]" in msg or "Input/output error" in msg:
        return "port gone"
    if "socket disconnected" in msg or "Connection reset" in msg:
        return "connection closed"
    return msg


class PortReader:
    def __init__(self, target: FollowedPort, discovery: Discovery, baud: int = 115200, *,
                 opener: Callable[[str, int, float], serial.SerialBase] = open_serial,
                 reconnect: bool = True, poll_s: float = 0.05, read_timeout: float = 0.05,
                 clock: Callable[[], float] = time.monotonic):
        self.target = target
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
                    fix = ("add yourself to the 'dialout' group (sudo usermod -aG dialout $USER, then log in "
                           "again) or install a udev rule for the board" if "ermission" in msg
                           else "pass a valid --port (a device path, or socket://HOST:PORT)" if "port URL" in msg
                           else "close other programs using the port (serial terminals, another fwtool monitor, "
                                "ModemManager) or pass another --port")
                    raise NoDevice(f"cannot open {port.device}: {msg}", fix) from e
            time.sleep(self.poll_s)

    @property
    def connected(self) -> bool:
        return self.ser is not None

    # ---- the loop's one call ------------------------------------------------------------------------------------
    def poll(self) -> list:
        """Read what is there (waiting up to ``read_timeout``), or look for the board if it is gone."""
        if self.ser is None:
            return self._look_for_board()
        buf = bytearray()
        try:
            first = self.ser.read(1)  # blocks up to read_timeout
            if first:
                buf += first
                sock = _socket_of(self.ser)
                while len(buf) < MAX_LINE:
                    if sock is not None:  # socket://: in_waiting is only ever 0 or 1, read what is there
                        try:
                            more = sock.recv(MAX_LINE, socket.MSG_DONTWAIT)
                        except (BlockingIOError, InterruptedError):
                            break
                        if not more:
                            raise serial.SerialException("socket disconnected")
                        buf += more
                        continue
                    n = self.ser.in_waiting
                    if not n:
                        break
                    buf += self.ser.read(n)
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

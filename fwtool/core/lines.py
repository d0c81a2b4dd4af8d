"""The one line splitter: a byte stream from a board (serial port, TCP, emulator pipe) -> text lines.

Used by the monitor, validate and the virtual board alike (and ``PortLines``/``read_available`` below are the
one read loop over an open port), so every consumer cuts, decodes and escapes lines the
same way (invalid UTF-8 and control characters shown as ``\\xNN``, never passed to the terminal).
"""
from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass

MAX_LINE = 64 * 1024  # longer lines are handed out in pieces of this size
_CTRL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def decode_line(raw: bytes) -> str:
    """Bytes of one line -> printable text: invalid UTF-8 and control characters (except tab) as ``\\xNN``."""
    text = raw.decode("utf-8", errors="backslashreplace")
    return _CTRL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


@dataclass
class Line:
    raw: bytes  # without the line ending
    t: float  # host time (time.time()) when the line was complete
    partial: bool = False  # the port went away before the newline came
    split: bool = False  # cut at MAX_LINE; the line continues in the next piece

    @property
    def text(self) -> str:
        return decode_line(self.raw)

    @property
    def complete(self) -> bool:
        return not (self.partial or self.split)


class LineSplitter:
    def __init__(self, max_line: int = MAX_LINE):
        self.max_line = max_line
        self._buf = bytearray()

    def feed(self, data: bytes, t: float) -> list[Line]:
        out: list[Line] = []
        buf = self._buf
        buf += data
        start = 0
        while True:
            i = buf.find(b"\n", start)
            if i < 0:
                break
            raw = bytes(buf[start:i])
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            while len(raw) > self.max_line:  # a long line whose end came in this chunk
                out.append(Line(raw[:self.max_line], t, split=True))
                raw = raw[self.max_line:]
            out.append(Line(raw, t))
            start = i + 1
        if start:
            del buf[:start]
        while len(buf) > self.max_line:
            out.append(Line(bytes(buf[:self.max_line]), t, split=True))
            del buf[:self.max_line]
        return out

    def flush(self, t: float) -> list[Line]:
        """The partial line (if any) when the stream ends; it is not continued by later data."""
        if not self._buf:
            return []
        raw = bytes(self._buf)
        self._buf.clear()
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        return [Line(raw, t, partial=True)]

    @property
    def pending(self) -> int:
        return len(self._buf)


# ---- reading a port ------------------------------------------------------------------------------------------------
# The one read loop over a pyserial-like port (``read(n)`` with a timeout, optional ``in_waiting``): the monitor,
# validate/profile on a board, ``fwtool record``, audio streaming and the emulator's audio link all read through it.
# Ports are opened by fwtool.devices.serial (the one opener); this part only reads, so the audio layer (below
# devices) can use it on whatever port it is handed.

def _socket_of(port) -> socket.socket | None:
    """The TCP socket behind a pyserial ``socket://`` port (its protocol_socket keeps it in ``_socket``)."""
    if type(port).__module__.endswith("protocol_socket") and hasattr(socket, "MSG_DONTWAIT"):
        sock = getattr(port, "_socket", None)
        return sock if isinstance(sock, socket.socket) else None
    return None


class PortClosed(OSError):
    """The far end of a socket:// port closed the connection."""


def read_waiting(port, buf: bytearray, limit: int = MAX_LINE) -> None:
    """Append what ``port`` has to ``buf``: wait up to the port's timeout for the first byte, then take what is
    waiting (at most ``limit`` bytes). Never asks pyserial for more bytes than are waiting: its ``read(n)``
    raises on a disconnect and throws away what it had already read in that call. The port's errors propagate;
    the bytes read before one stay in ``buf``."""
    first = port.read(getattr(port, "in_waiting", 0) or 1)
    if not first:
        return
    buf += first
    sock = _socket_of(port)
    while len(buf) < limit:
        if sock is not None:  # socket://: in_waiting is only ever 0 or 1, read what is there
            try:
                more = sock.recv(limit, socket.MSG_DONTWAIT)
            except (BlockingIOError, InterruptedError):
                break
            if not more:
                raise PortClosed("socket disconnected")
            buf += more
            continue
        n = getattr(port, "in_waiting", 0)
        if not n:
            break
        buf += port.read(n)


def read_available(port, limit: int = MAX_LINE) -> bytes:
    """The bytes ``port`` has now (b"" when nothing came within its timeout); see :func:`read_waiting`."""
    buf = bytearray()
    read_waiting(port, buf, limit)
    return bytes(buf)


class PortLines:
    """Text lines from an open port, cut by :class:`LineSplitter`. ``poll()`` waits up to the port's timeout."""

    def __init__(self, port, max_line: int = MAX_LINE, clock=time.time):
        self.port = port
        self.splitter = LineSplitter(max_line)
        self.clock = clock

    def poll(self) -> list[Line]:
        data = read_available(self.port)
        return self.splitter.feed(data, self.clock()) if data else []

    def texts(self) -> list[str]:
        return [line.text for line in self.poll()]

    def flush(self) -> list[Line]:
        return self.splitter.flush(self.clock())

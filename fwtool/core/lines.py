"""The one line splitter: a byte stream from a board (serial port, TCP, emulator pipe) -> text lines.

Used by the monitor, validate and the virtual board alike, so every consumer cuts, decodes and escapes lines the
same way (invalid UTF-8 and control characters shown as ``\\xNN``, never passed to the terminal).
"""
from __future__ import annotations

import re
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

"""The audio stream path's reader with ``--on-detect``: a pyserial-like port whose reads hand the capture's FWR
frames to a :class:`fwtool.monitor.handoff.Handoff` (used by ``fwtool run --audio`` / ``--emulator --audio``)."""
from __future__ import annotations

import time
from typing import Callable

from fwtool.audio.framing import REC_MAGIC, SplitReader
from fwtool.core.lines import read_available
from fwtool.monitor.handoff import Handoff


class FramePort:
    """A pyserial-like port whose reads hand the FWR frames to ``handoff`` and return only the text around them:
    lets a reader that cuts lines (the audio stream path, fwtool/audio/stream.py and capture.py) run with
    ``--on-detect`` unchanged. Writes and the timeout go to the wrapped port."""

    def __init__(self, port, handoff: Handoff, on_event: Callable[[dict], None] = lambda ev: None):
        self.port = port
        self.handoff = handoff
        self.on_event = on_event  # each finished handoff, as the reader goes
        self._text = bytearray()

    @property
    def timeout(self):
        return self.port.timeout

    @timeout.setter
    def timeout(self, value) -> None:
        self.port.timeout = value

    @property
    def in_waiting(self) -> int:
        return len(self._text)

    def pump(self) -> None:
        """Read what the port has (waiting up to its timeout) through the handoff."""
        self._text += self.handoff.feed(read_available(self.port))
        self.handoff.tick()
        for ev in self.handoff.poll():
            self.on_event(ev)

    def drain(self, wait_s: float) -> None:
        """Keep reading until no capture is open and no handler is in flight (at most ``wait_s``), then close the
        handoff (a handler still running is reported by the caller from ``handoff.in_flight``)."""
        deadline = time.monotonic() + wait_s
        while (self.handoff.capture is not None or self.handoff.in_flight) and time.monotonic() < deadline:
            self.pump()
            self._text.clear()  # the stream is over: lines now are only the tail
        for ev in self.handoff.close():
            self.on_event(ev)

    def read(self, n: int = 1) -> bytes:
        if not self._text:
            self.pump()
        out = bytes(self._text[:n])
        del self._text[:n]
        return out

    def write(self, data: bytes) -> int:
        return self.port.write(data)

    def close(self) -> None:
        self.port.close()


class FrameStripper:
    """``fwtool monitor`` without ``--on-detect`` on a ``--capture`` firmware (seen by its FWT:CAPCFG line): the
    capture's FWR frames are taken out of the byte stream instead of shown as escaped bytes; ``feed`` returns the
    text and ``take_summary()`` one line per capture the user did not hand off (None while none finished)."""

    def __init__(self):
        self.split = SplitReader(REC_MAGIC)
        self.samples = 0
        self.ended = False

    def feed(self, data: bytes) -> bytes:
        if REC_MAGIC[:1] not in data and not self.split.buf:
            return data
        text = bytearray()
        for it in self.split.feed(data):
            if isinstance(it, str):
                text += it.encode("utf-8") + b"\n"
            else:
                self.samples += len(it[1])
                self.ended = len(it[1]) == 0
        return bytes(text)

    def take_summary(self) -> str | None:
        if not self.ended:
            return None
        self.ended, n, self.samples = False, self.samples, 0
        return (f"capture of {n / 16000:.2f} s after the detection not handed off (add --on-detect LABEL and a "
                "handler; see docs/detect-then-act.md)")

"""Live byte links into a running target: what ``Target.open_link`` returns and ``Target.feed`` writes to.

A link is a duplex byte stream shaped like a pyserial port, so everything that reads a board's port reads it
unchanged (fwtool.core.lines.PortLines, the audio stream's credit flow in fwtool.audio.stream/capture):

* ``write(data)`` — bytes to the firmware's console input (UART RX, USB CDC OUT, a program's stdin);
* ``read(n)`` — up to ``n`` bytes of its output, waiting at most ``timeout`` seconds (b"" when none came);
* ``in_waiting`` — non-zero when bytes are readable now; ``timeout`` — settable; ``close()`` — idempotent.

Two implementations, for the two ways an emulator talks to fwtool:

* :class:`FdLink` over file descriptors: a socket (QEMU's ``-chardev socket``), or a child's stdout/stdin pipes
  (a Linux program). Back-pressure is the kernel's: a write blocks while the far end does not read.
* :class:`QueueLink` for an emulator that runs inside this Python process (in a thread): the emulator calls
  ``emit(data)`` with what the firmware transmits and ``take(n)`` (or ``has_input``) to feed its UART RX model;
  ``finish()`` when the run ends. The host side uses ``read``/``write`` as on any port.

Imports fwtool.core only (layer of fwtool.targets.base), so every target can use it.
"""
from __future__ import annotations

import os
import select
import socket
import threading
import time

CHUNK = 4096  # what in_waiting promises when anything is readable (read(n) returns what is there, up to n)

class FdLink:
    """A link over a readable and a writable file descriptor (the same one for a socket)."""

    def __init__(self, read_fd: int, write_fd: int | None = None, timeout: float = 0.05,
                 owner: object | None = None) -> None:
        self.read_fd, self.write_fd = read_fd, read_fd if write_fd is None else write_fd
        self.timeout = timeout
        self.owner = owner  # the socket / file objects to close with it
        self.closed = False
        self.eof = False  # the far end closed its output (the emulator or program ended)

    def _readable(self, wait: float) -> bool:
        return bool(select.select([self.read_fd], [], [], max(0.0, wait))[0])

    @property
    def in_waiting(self) -> int:
        if self.closed or self.eof:
            return 0
        # a hint, as pyserial's socket:// gives one: some bytes are there, read(n) returns the ones that are
        return CHUNK if self._readable(0) else 0

    def read(self, n: int = 1) -> bytes:
        if self.closed:
            raise OSError("the link is closed")
        if self.eof:  # nothing will come: behave like a port that stays quiet for its timeout
            time.sleep(self.timeout or 0)
            return b""
        if not self._readable(self.timeout or 0):
            return b""
        try:
            data = os.read(self.read_fd, max(1, n))
        except (BlockingIOError, InterruptedError):
            return b""
        except OSError:  # e.g. a connection reset when the emulator was killed
            data = b""
        if not data:
            self.eof = True
        return data

    def write(self, data: bytes) -> int:
        if self.closed:
            raise OSError("the link is closed")
        view = memoryview(bytes(data))
        while view:
            try:
                n = os.write(self.write_fd, view)
            except (BlockingIOError, InterruptedError):
                select.select([], [self.write_fd], [], 0.05)
                continue
            view = view[n:]
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        owner = self.owner
        for obj in owner if isinstance(owner, (list, tuple)) else [owner]:
            try:
                if obj is not None:
                    obj.close()
            except OSError:
                pass


def connect_unix(path: str, timeout: float, alive=lambda: True) -> FdLink:
    """A link on the Unix socket a server (QEMU ``-chardev socket,path=...,server=on``) listens on at ``path``,
    retried until it accepts, ``timeout`` s pass or ``alive()`` turns false. Raises OSError when it cannot."""
    deadline = time.monotonic() + timeout
    last: OSError | None = None
    while time.monotonic() < deadline and alive():
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(path)
            return FdLink(sock.fileno(), owner=sock)
        except OSError as e:  # not listening yet
            sock.close()
            last = e
            time.sleep(0.02)
    raise OSError(f"nothing accepted a connection on {path} within {timeout:g} s" + (f" ({last})" if last else ""))


class QueueLink:
    """A link to an emulator running in this process: host ``write``/``read``; emulator ``take``/``emit``."""

    def __init__(self, timeout: float = 0.05) -> None:
        self.timeout = timeout
        self._cond = threading.Condition()
        self._to_host = bytearray()
        self._to_device = bytearray()
        self.closed = False
        self.finished = False  # the emulator's run ended (no more output will come)

    # -- the host's side (a pyserial-like port) -----------------------------------------------------------------
    @property
    def in_waiting(self) -> int:
        with self._cond:
            return len(self._to_host)

    def read(self, n: int = 1) -> bytes:
        with self._cond:
            if self.closed:
                raise OSError("the link is closed")
            if not self._to_host and not self.finished:
                self._cond.wait(self.timeout or 0)
            elif not self._to_host:
                self._cond.wait(self.timeout or 0)  # finished: stay quiet for the timeout, like a silent port
            data = bytes(self._to_host[:max(1, n)])
            del self._to_host[:len(data)]
            return data

    def write(self, data: bytes) -> int:
        with self._cond:
            if self.closed:
                raise OSError("the link is closed")
            self._to_device += data
            self._cond.notify_all()
        return len(data)

    def flush(self) -> None:
        return None

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()

    # -- the emulator's side ------------------------------------------------------------------------------------
    def emit(self, data: bytes) -> None:
        """What the firmware transmitted (its UART TX): readable by the host."""
        with self._cond:
            self._to_host += data
            self._cond.notify_all()

    @property
    def has_input(self) -> bool:
        """Whether the host has written bytes the firmware has not taken (a UART RX model's 'RX not empty')."""
        with self._cond:
            return bool(self._to_device)

    def take(self, n: int = 1, wait: float = 0.0) -> bytes:
        """Up to ``n`` bytes the host wrote (for the UART RX model), waiting at most ``wait`` s for the first."""
        with self._cond:
            if not self._to_device and wait > 0 and not self.closed:
                self._cond.wait(wait)
            data = bytes(self._to_device[:n])
            del self._to_device[:len(data)]
            return data

    def finish(self) -> None:
        """The run ended: the host reads what is left, then silence."""
        with self._cond:
            self.finished = True
            self._cond.notify_all()

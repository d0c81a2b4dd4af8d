"""Fake boards for the monitor tests: the far end of a pty (or a TCP socket) that talks like fwtool firmware.

``PtyBoard`` behaves like a pico-sdk app with USB stdio, at the level the monitor sees:

* it *appears* in a fake port list (``FakePorts.comports``, injected as ``Discovery(list_ports=...)``) as a
  ``/dev/pts/N`` with VID:PID 2E8A:000A and a fixed USB serial number;
* output written while no host has the port open is dropped (pico-sdk's ``stdio_usb_connected()``); "host open" is
  read from the pty master (POLLHUP clears when the monitor opens the slave);
* ``reset()`` waits until the host has read everything, vanishes (master closed: the monitor's read fails with EIO,
  like an unplugged ttyACM) and re-appears as a *new* pty under the same serial number (re-enumeration).

It records every complete line it delivered so tests can check the monitor reported each exactly once.
``SocketBoard`` does the same over TCP for ``socket://`` URLs. Line formats come from fwtool.core.protocol.
"""
from __future__ import annotations

import errno
import fcntl
import os
import select
import socket
import struct
import termios
import threading
import time
import tty
from dataclasses import dataclass

from fwtool.core.protocol import c_formats

PICO_VID, PICO_PID = 0x2E8A, 0x000A


@dataclass
class FakeListPortInfo:
    device: str
    vid: int | None = PICO_VID
    pid: int | None = PICO_PID
    serial_number: str | None = None
    description: str = "Pico - Board CDC"
    location: str | None = "1-1:1.0"


class FakePorts:
    """A thread-safe stand-in for serial.tools.list_ports.comports()."""

    def __init__(self):
        self._lock = threading.Lock()
        self._ports: dict[object, FakeListPortInfo] = {}

    def add(self, key, info: FakeListPortInfo) -> None:
        with self._lock:
            self._ports[key] = info

    def remove(self, key) -> None:
        with self._lock:
            self._ports.pop(key, None)

    def comports(self):
        with self._lock:
            return list(self._ports.values())


# ---- the firmware's lines, formatted exactly as the firmware's printf formats (fwtool.core.protocol.c_formats) ----
def banner_line(model="fire_alarm", sha="4d5f2cd1842e", board="pico", arena=12345, arena_used=11872, ops=6,
                inp="int8:1x124x129x1", out="int8:1x1", labels=("fire_alarm",), version="0.1.0", cores=2,
                clock_mhz=125, opt="size") -> str:
    return c_formats()["banner"] % (model, sha, board, arena, arena_used, ops, inp, out, ",".join(labels), version,
                                    cores, clock_mhz, opt)


def infer_line(n: int, us: int, labels, scores, q=None) -> str:
    f = c_formats()
    top = max(range(len(scores)), key=lambda i: scores[i])
    q = q if q is not None else [int(round(s * 256)) - 128 for s in scores]
    vec_s, vec_q = f["vectors"]
    line = f["infer"] % (n, us, labels[top], scores[top])
    line += f" {vec_s['name']}=" + ",".join(vec_s["conv"] % s for s in scores)
    line += f" {vec_q['name']}=" + ",".join(vec_q["conv"] % v for v in q)
    return line


def _inq(path: str) -> int | None:
    """Bytes the host side of a pty has not read yet (None if the pty is gone).

    Written bytes first land in the kernel's flip buffer and reach the line discipline (where FIONREAD counts
    them) only when a kworker runs, which can take tens of ms on a loaded machine. Polling the slave makes
    n_tty_poll() flush that work first, so the count includes everything written so far."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        select.select([fd], [], [], 0)  # flush_work(flip buffer) inside n_tty_poll
        return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]
    finally:
        os.close(fd)


class PtyBoard:
    def __init__(self, ports: FakePorts, serial_number="E6614C311B7A6B2A", vid=PICO_VID, pid=PICO_PID,
                 listed: bool = True, drain_quiet_s: float = 0.01):
        self.ports = ports
        self.serial_number = serial_number
        self.vid, self.pid = vid, pid
        self.listed = listed  # False: not in the port list (a board named by --port path)
        self.master: int | None = None
        self.path: str | None = None
        self.appeared_at = 0.0
        self.delivered: list[bytes] = []  # complete lines delivered (without line ending)
        self.partials: list[bytes] = []  # unterminated tails delivered just before a reset
        self.dropped = 0  # writes dropped because no host had the port open
        self.lost_in_transit = 0  # bytes still unread when the board vanished (must stay 0)
        self.received = bytearray()  # what the host sent to the board
        self.bytes_delivered = 0  # bytes written while a host had the port open
        self._tail = b""
        self.appearances = 0
        self.drain_quiet_s = drain_quiet_s  # wait_drained: the host's input queue must stay empty this long

    # ---- enumeration ----------------------------------------------------------------------------------------
    def appear(self) -> str:
        m, s = os.openpty()
        tty.setraw(s)
        self.path = os.ttyname(s)
        os.close(s)  # nobody has the "host" end open: POLLHUP on the master until the monitor opens it
        self.master = m
        self.appearances += 1
        self.appeared_at = time.monotonic()
        if self.listed:
            self.ports.add(self, FakeListPortInfo(self.path, self.vid, self.pid, self.serial_number))
        return self.path

    def vanish(self, drain: bool = True, drain_timeout: float = 2.0) -> None:
        if self.master is None:
            return
        if drain:
            self.wait_drained(drain_timeout)
        left = _inq(self.path) or 0
        self.lost_in_transit += left
        self.ports.remove(self)
        self._pull_input()
        os.close(self.master)
        self.master = None
        if self._tail:
            self.partials.append(self._tail)
            self._tail = b""

    def reset(self, **kw) -> str:
        self.vanish(**kw)
        return self.appear()

    # ---- host side state -------------------------------------------------------------------------------------
    def host_open(self) -> bool:
        if self.master is None:
            return False
        p = select.poll()
        p.register(self.master, select.POLLHUP)
        return not any(ev & select.POLLHUP for _, ev in p.poll(0))

    def wait_host(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.host_open():
                return True
            time.sleep(0.001)
        return self.host_open()

    def wait_drained(self, timeout: float) -> bool:
        """The host has read everything: its input queue stayed empty for ``drain_quiet_s``."""
        deadline = time.monotonic() + timeout
        zero_since = None
        while time.monotonic() < deadline:
            n = _inq(self.path)
            if n in (0, None):
                zero_since = zero_since or time.monotonic()
                if time.monotonic() - zero_since >= self.drain_quiet_s:
                    return True
            else:
                zero_since = None
            time.sleep(0.002)
        return False

    def _pull_input(self) -> None:
        while self.master is not None:
            r, _, _ = select.select([self.master], [], [], 0)
            if not r:
                return
            try:
                chunk = os.read(self.master, 4096)
            except OSError:
                return
            if not chunk:
                return
            self.received += chunk

    def read_input(self, timeout: float = 1.0, until: bytes = b"\n") -> bytes:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and until not in self.received:
            self._pull_input()
            time.sleep(0.005)
        return bytes(self.received)

    # ---- output ----------------------------------------------------------------------------------------------
    def write(self, data: bytes) -> bool:
        """Like pico-sdk printf over USB: dropped unless a host has the port open."""
        if self.master is None or not self.host_open():
            self.dropped += 1
            return False
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except OSError as e:
                if e.errno == errno.EAGAIN:
                    time.sleep(0.001)
                    continue
                raise
            view = view[n:]
        self.bytes_delivered += len(data)
        self._pull_input()
        buf = self._tail + data
        *lines, self._tail = buf.split(b"\n")
        self.delivered.extend(ln[:-1] if ln.endswith(b"\r") else ln for ln in lines)
        return True

    def write_line(self, text: str | bytes) -> bool:
        return self.write((text.encode() if isinstance(text, str) else text) + b"\r\n")


class SocketBoard:
    """The same board behind a TCP port (for socket:// URLs). A reset closes the connection and the listener."""

    def __init__(self, port: int = 0):
        self.srv: socket.socket | None = None
        self.conn: socket.socket | None = None
        self.port = port
        self.delivered: list[bytes] = []
        self.received = bytearray()
        self._tail = b""
        self._listen()

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def _listen(self) -> None:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(1)
        self.port = s.getsockname()[1]
        self.srv = s

    def wait_host(self, timeout: float) -> bool:
        if self.conn is not None:
            return True
        self.srv.settimeout(timeout)
        try:
            self.conn, _ = self.srv.accept()
        except OSError:
            return False
        return True

    def write(self, data: bytes) -> bool:
        if self.conn is None:
            return False
        try:
            self.conn.sendall(data)
        except OSError:  # the host closed the port: output is dropped, like pico-sdk's
            self.conn.close()
            self.conn = None
            return False
        buf = self._tail + data
        *lines, self._tail = buf.split(b"\n")
        self.delivered.extend(ln[:-1] if ln.endswith(b"\r") else ln for ln in lines)
        return True

    def write_line(self, text: str) -> bool:
        return self.write(text.encode() + b"\r\n")

    def read_input(self, timeout: float = 1.0, until: bytes = b"\n") -> bytes:
        deadline = time.monotonic() + timeout
        while self.conn is None and time.monotonic() < deadline:  # the accepting thread may not have run yet
            time.sleep(0.005)
        while self.conn is not None and time.monotonic() < deadline and until not in self.received:
            r, _, _ = select.select([self.conn], [], [], 0.01)
            if r:
                chunk = self.conn.recv(4096)
                if not chunk:
                    break
                self.received += chunk
        return bytes(self.received)

    def reset(self, down_s: float = 0.1) -> None:
        self.close()
        time.sleep(down_s)
        self._listen()

    def close(self) -> None:
        for s in (self.conn, self.srv):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        self.conn = self.srv = None


def run_firmware(board, cycles: int, infers_per_boot: int = 3, labels=("fire_alarm", "no_fire"),
                 connect_wait: float = 2.5, partial: bool = True, garbage: bool = True, end_marker: str = "END",
                 scores_for=None, stop: threading.Event | None = None, linger=None) -> None:
    """A fake board's life: per boot, wait (up to connect_wait) for the host like the fwtool firmware, print the
    banner, inferences, a garbage line and a partial line, then reset. After the last cycle it boots once more and
    prints ``end_marker`` (tests stop the monitor with --expect '^END$'). ``linger()`` (if given) returns how
    long the board keeps running after its last line before it resets (default: at once, the worst case)."""
    scores_for = scores_for or (lambda boot, n: [0.9961, 0.0039] if len(labels) == 2 else
                                [1.0 / len(labels)] * len(labels))
    if board.master is None:
        board.appear()
    for boot in range(cycles + 1):
        if stop is not None and stop.is_set():
            return
        board.wait_host(connect_wait)  # like the firmware: then print, dropped if nobody listens
        board.write_line(banner_line(labels=labels))
        if boot == cycles:
            board.write_line(end_marker)
            return
        for n in range(1, infers_per_boot + 1):
            board.write_line(infer_line(n, 24000 + 10 * n + boot, labels, scores_for(boot, n)))
        board.write_line(f"free text {boot}: hello")
        if garbage:
            board.write_line(b"garbage \xff\xfe\x80 \x1b[31m end")
        if partial:
            board.write(f"FWT:INFER n=99 us=1{boot}".encode())
        if linger is not None:
            time.sleep(linger())
        board.reset()

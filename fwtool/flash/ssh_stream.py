"""A Linux board's program output over SSH, opened like a serial port for fwtool's monitor (``opener``).

:class:`SshFollow` is what the monitor's reader opens again after every disconnect (a reboot of the Pi, a
dropped network, the remote program ending); each open is one :class:`SshStream` (one ``ssh`` process):

* **plain** (no ``--service``): the stream runs the deployed program (an audio app behind arecord, on the device
  ``--capture-device`` names or the deploy recorded in ``<program>.capture``) and ends it
  with the connection (the remote wrapper waits on the channel's stdin: EOF there kills the program). A reconnect
  starts the program again — a new session, banner first.
* **service** (``--service NAME``): the stream follows the unit's journal (``journalctl --user -f -o json``) and
  keeps the ``__CURSOR`` of the last entry it handed on; a reconnect asks for ``--after-cursor=`` that entry, so the
  lines the program printed while the connection was down (or before the Pi rebooted, with a persistent journal)
  arrive after it and none twice.

An open only counts once the remote side answered (a marker line the wrapper prints first, never shown): while the
board is down, each attempt fails quietly and the next comes after ``retry_s``; the first attempt's failure
(authentication, host key) is the usual one-line ssh error.
"""
from __future__ import annotations

import json
import os
import select
import shlex
import subprocess
import time

from fwtool.core import runner
from fwtool.core.errors import FwtoolError, NoDevice
from fwtool.flash.ssh import CAPTURE_SUFFIX, SshHost, check_ssh, ssh_error
from fwtool.flash.ssh_service import check_unit_name, program_command

READY = b"fwtool-ssh-ready"
OPEN_TIMEOUT_S = 25.0  # ssh's ConnectTimeout (10 s) plus authentication and the remote shell's start


class SshFollow:
    """What ``--host`` follows: ``program`` (relative to the remote home) or ``service``'s journal."""

    def __init__(self, host: SshHost, program: str, service: str | None = None, capture: str | None = None,
                 retry_s: float = 1.0, clock=time.monotonic):
        check_ssh()
        self.host, self.program, self.capture, self.retry_s, self.clock = host, program, capture, retry_s, clock
        self.unit = check_unit_name(service) if service else None
        self.cursor: str | None = None  # the journal entry last handed on (service mode)
        self.opens = 0
        self._last_try = -1e9

    def remote_command(self) -> str:
        q = shlex.quote
        if self.unit:
            where = f"--after-cursor={q(self.cursor)} --no-tail" if self.cursor else "-n 0"
            inner = f"journalctl --user -f -o json -u {q(self.unit)} {where}"
            start = f"{inner} &"
        elif self.capture:
            start = f"{program_command(q(self.program), self.capture)} &"
        else:  # the capture device the deploy recorded beside the program (an audio app), else none
            start = (f"c=$(cat {q(self.program + CAPTURE_SUFFIX)} 2>/dev/null); if [ -n \"$c\" ]; then "
                     f"arecord -q -D \"$c\" -f S16_LE -r 16000 -c 1 -t raw | exec {q(self.program)} & "
                     f"else exec {q(self.program)} & fi;")
        # the marker first; the job in the background ($! of a pipeline: its last command, the program; arecord
        # ends on the broken pipe). EOF on the channel's stdin ends the job (nothing left running); the job
        # ending ends the session (the monitor sees the channel close and reconnects).
        # (fd 3: a background list's stdin is /dev/null in sh, so the watcher reads the channel through a copy;
        # the watcher holds no output of the channel, which closes when the job's output does)
        return (f"echo {READY.decode()}; exec 3<&0; {start} p=$!; "
                "{ cat <&3 >/dev/null 2>&1; kill $p 2>/dev/null; } 2>/dev/null & "
                "w=$!; exec 3<&-; wait $p; s=$?; kill $w 2>/dev/null; exit $s")

    def open(self, device: str = "", baud: int = 0, timeout: float = 0.05) -> "SshStream":
        """The monitor's opener. OSError while the board cannot be reached (the reader retries)."""
        now = self.clock()
        if now - self._last_try < self.retry_s:
            raise OSError(f"waiting to reconnect to {self.host.spec}")
        self._last_try = now
        try:
            stream = SshStream(self, timeout)
        except OSError as e:
            if self.opens == 0:  # the first connection: say it as an SSH failure, not a port one
                raise NoDevice(f"cannot follow {self.host.spec}: {e}",
                               f"check that 'ssh {self.host.spec}' works by hand and the board is on") from None
            raise
        self.opens += 1
        return stream


class SshStream:
    """One ssh connection's output, read like a serial port (``read``, ``in_waiting``, ``close``)."""

    def __init__(self, follow: SshFollow, timeout: float = 0.05):
        self.follow, self.timeout = follow, timeout
        self.proc = runner.spawn(follow.host.command(follow.remote_command()))
        self.is_open = True
        self._raw = bytearray()  # bytes not yet cut into lines (service mode) or not yet past the marker
        self._buf = bytearray()
        self._ready = False
        self._error: FwtoolError | None = None
        os.set_blocking(self.proc.stdout.fileno(), False)
        deadline = time.monotonic() + OPEN_TIMEOUT_S
        while not self._ready:
            try:
                self._fill(max(0.0, min(0.2, deadline - time.monotonic())))
            except OSError:
                if follow.opens == 0 and self._error is not None:
                    raise self._error from None  # the first connection: the one-line ssh error itself
                raise
            if not self._ready and time.monotonic() >= deadline:
                self.close()
                raise OSError(f"{follow.host.spec} did not answer in {OPEN_TIMEOUT_S:g} s")

    @property
    def in_waiting(self) -> int:
        return len(self._buf)

    def _fill(self, wait: float) -> None:
        r, _, _ = select.select([self.proc.stdout], [], [], wait)
        if not r:
            return
        chunk = self.proc.stdout.read(65536)
        if chunk:
            self._take(chunk)
            return
        if chunk == b"":  # EOF: the connection (or the remote job) ended
            err = (self.proc.stderr.read() or b"").decode(errors="replace").strip()
            self.close()
            if self.proc.returncode == 255 and err:
                self._error = ssh_error(self.follow.host, err, 255)
                raise OSError(self._error.cause)
            raise OSError(f"the SSH connection to {self.follow.host.spec} ended")

    def _take(self, chunk: bytes) -> None:
        self._raw += chunk
        if not self._ready:
            i = self._raw.find(READY + b"\n")
            if i < 0:
                return
            del self._raw[:i + len(READY) + 1]
            self._ready = True
        if self.follow.unit is None:
            self._buf += self._raw
            self._raw.clear()
            return
        *lines, rest = bytes(self._raw).split(b"\n")
        self._raw = bytearray(rest)
        for ln in lines:
            self._entry(ln)

    def _entry(self, line: bytes) -> None:
        """One journal entry (journalctl -o json): its MESSAGE on, its cursor kept."""
        try:
            e = json.loads(line)
        except ValueError:
            return
        msg = e.get("MESSAGE")
        if isinstance(msg, list):  # a message that is not UTF-8: journalctl gives its bytes
            msg = bytes(x & 0xFF for x in msg if isinstance(x, int)).decode(errors="replace")
        if isinstance(msg, str):
            self._buf += msg.encode() + b"\n"
        if isinstance(e.get("__CURSOR"), str):
            self.follow.cursor = e["__CURSOR"]

    def read(self, n: int = 1) -> bytes:
        if not self.is_open:
            raise OSError("closed")
        if not self._buf:
            self._fill(self.timeout)
        out, self._buf = bytes(self._buf[:n]), self._buf[n:]
        return out

    def write(self, data: bytes) -> int:
        return len(data)  # the program's stdin is not forwarded by the monitor

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # EOF: the remote wrapper ends the job
                self.proc.wait(timeout=3)
            except (OSError, subprocess.TimeoutExpired):
                runner.kill_group(self.proc)
        self.is_open = False

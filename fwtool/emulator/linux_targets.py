"""The linux family's virtual targets (fwtool/targets/base.py): its static program run on this machine, natively
(``linux-native``, when built for this machine's architecture: real times) or under user-mode QEMU
(``qemu-aarch64``: a Raspberry Pi's program anywhere). Both read stdin: what is given to ``set_stdin`` before
``read`` is written to it at the start (e.g. raw S16LE PCM for the audio apps, as ``arecord ... | program``
delivers it), or ``open_link`` makes stdin/stdout a live link (``info.feeds``: fwtool's audio stream with its
credit flow control; the pipe's own back-pressure besides). Their clock is declared as 1 MHz "cycles": the
program's timer counts microseconds.
"""
from __future__ import annotations

import platform
from pathlib import Path
from typing import Callable

from fwtool.core import protocol
from fwtool.emulator import linux_user, process
from fwtool.emulator.latency import latency_stats
from fwtool.emulator.result import RunResult
from fwtool.emulator.targets import VirtualTarget
from fwtool.targets.base import VIRTUAL, TargetConfig, TargetInfo
from fwtool.targets.link import FdLink


class LinuxUserTarget(VirtualTarget):
    arch: str | None = None  # the qemu-user guest architecture (None: native)

    def __init__(self, config: TargetConfig | None = None) -> None:
        super().__init__(config)
        self.stdin = bytearray()

    def set_stdin(self, data: bytes) -> None:
        """Bytes for the program's stdin in a ``read`` run (written when it starts, then stdin is closed); a live
        feed is ``open_link`` + ``feed``."""
        self.stdin += data

    def open_link(self, image: Path | None):
        """The program with stdin and stdout as the link (pipes: a write waits while the program does not read)."""
        self.load(image)
        self.start()
        self.child = process.Child(linux_user.command(self.image, self.arch), self.on_step)
        proc = self.child.proc
        self.link = FdLink(proc.stdout.fileno(), proc.stdin.fileno())
        self._details.update({"program": str(self.image), "link": "stdin/stdout",
                              "runner": "native" if self.arch is None else linux_user.QEMU_USER.get(self.arch)})
        return self.link

    def load(self, image: Path | None) -> None:
        super().load(image)
        if self.image is not None:
            self.hint = "raise --timeout, or run it by hand: " + " ".join(
                linux_user.command(self.image, self.arch))

    def capture(self, until, count, timeout, on_line: Callable[[str], None] | None = None,
                on_event=None) -> RunResult:
        result = linux_user.run(linux_user.command(self.image, self.arch), count=count or None, until=until,
                                timeout=timeout, stdin=bytes(self.stdin) if self.stdin else None,
                                on_line=on_line or (lambda s: None))
        us = result.invoke_us
        self._details.update({"program": str(self.image), "invoke_us": us[:1] and us[0],
                              "runner": "native" if self.arch is None else linux_user.QEMU_USER.get(self.arch)})
        return result

    def summary(self, lines: list[str]) -> list[str]:
        us = [r.us for r in (protocol.parse_line(ln) for ln in lines) if isinstance(r, protocol.Inference)]
        stats = latency_stats(us, None, "real" if self.arch is None else "qemu-user wall time")
        return ([stats.summary()] if stats else []) + [f"note      {self.info.timing_note}"]


class LinuxNative(LinuxUserTarget):
    # not cycle-accurate for the board: this machine's real times (the timer ticks in microseconds: clock 1 MHz)
    info = TargetInfo("linux-native", f"this machine ({platform.machine()}, native)", VIRTUAL,
                      cycle_accurate=False, cores=1, clock_hz=1e6, cycle="cycle",
                      timing_note=linux_user.NATIVE_NOTE, feeds=frozenset({"bytes"}))


class QemuAarch64(LinuxUserTarget):
    arch = "aarch64"
    info = TargetInfo("qemu-aarch64", "the virtual aarch64 Linux (qemu-aarch64-static)", VIRTUAL,
                      cycle_accurate=False, cores=1, clock_hz=1e6, cycle="cycle",
                      timing_note=linux_user.QEMU_NOTE, feeds=frozenset({"bytes"}))


LINUX_TARGETS = (LinuxNative, QemuAarch64)

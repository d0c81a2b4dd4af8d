"""The virtual targets (fwtool/targets/base.py): the virtual RP2040 on rp2040js and the virtual Cortex-M4 on QEMU
mps2-an386. Both return the one :class:`~fwtool.emulator.result.RunResult` and raise the one ``failure()``.

:func:`run_capture` is the one capture call for any virtual target (``target=`` a registry name).
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

from fwtool.core import protocol
from fwtool.core.errors import FwtoolError
from fwtool.devices.serial import open_serial
from fwtool.emulator import node, process, qemu, virtual_flash
from fwtool.emulator.latency import latency_stats
from fwtool.emulator.result import RunResult, failure
from fwtool.emulator.session import CLOCK_MHZ, TIMING_NOTE, Rp2040jsProcess
from fwtool.targets import link as link_mod
from fwtool.targets.base import VIRTUAL, Target, TargetConfig, TargetInfo, read_lines


START_WAIT_S = 10.0


class VirtualTarget(Target):
    """A virtual target runs in an emulator process fwtool owns; its runs end with a :class:`RunResult`."""

    hint: str | None = None  # the fix for a run that ran out of time

    def __init__(self, config: TargetConfig | None = None) -> None:
        super().__init__(config)
        self.max_emulated_s = self.config.max_emulated_s
        self.result: RunResult | None = None
        self.child: process.Child | None = None  # open_link's emulator or program (QEMU, a Linux program)

    def start(self) -> None:
        if self.image is None:
            raise FwtoolError(f"{self.info.title} needs an image to run", "build one first ('fwtool build')")

    def stop(self) -> None:
        """Close open_link's link and its process (each capture owns its own process from start to kill)."""
        if self.link is not None:
            self.link.close()
            self.link = None
        if self.child is not None:
            self.child.stop()
            self.child = None

    def capture(self, until: str | None, count: int, timeout: float,
                on_line: Callable[[str], None] | None = None) -> RunResult:
        """Run the loaded image; never raises for how the run ended (see ``result.reason``)."""
        raise NotImplementedError

    def read(self, until: str | None, count: int = 1, timeout: float = 300.0,
             on_line: Callable[[str], None] = lambda s: None) -> list[str]:
        """Linked: lines from the link (the caller judges them, as on a board's port); else a run of its own."""
        if self.link is not None:
            return read_lines(self.link, until, count, timeout, on_line)
        result = self.capture(until, count if until else 0, timeout, on_line)
        self.result = result
        self._details.update({"wall_s": result.wall_s, "emulated_us": result.emulated_us})
        if not result.ok and not (until is None and result.reason in ("wall-limit", "emulated-limit")):
            title = self.info.title
            raise failure(result.reason, result.detail, title if title.startswith("the ") else f"the {title}",
                          self.hint)
        return result.lines


    def summary(self, lines: list[str]) -> list[str]:
        us = [r.us for r in (protocol.parse_line(ln) for ln in lines) if isinstance(r, protocol.Inference)]
        stats = latency_stats(us, None, "emulated")
        return ([stats.summary()] if stats else []) + super().summary(lines)


class Rp2040js(VirtualTarget):
    """The virtual RP2040: rp2040js on Node.js (fwtool/emulator/session.py). ``read`` loads the image straight
    into emulated flash and starts at boot2; ``serve`` serves its serial stream on socket://127.0.0.1:PORT for the
    monitor, flashed through the real bootrom over PICOBOOT when ``config.through_bootloader``
    (fwtool/emulator/virtual_flash.py, the chip with a USB port: virtual_usb.py)."""

    info = TargetInfo("rp2040js", "the virtual board (rp2040js)", VIRTUAL, cycle_accurate=False, cores=2,
                      clock_hz=CLOCK_MHZ * 1e6, cycle="cycle", timing_note=TIMING_NOTE, feeds=frozenset({"bytes"}),
                      serves=True)

    def __init__(self, config: TargetConfig | None = None) -> None:
        super().__init__(config)
        self.served = None  # the running Rp2040jsProcess / Rp2040jsUsbProcess of serve()
        self.process: Rp2040jsProcess | None = None  # the last capture's process (its result() after a Ctrl-C)
        self.exit_event: dict | None = None
        self.port = None

    def serve(self, image: Path | None) -> dict:
        self.load(image)
        self.start()
        node.find_node()  # what it needs (Node, the pinned npm package) before anything starts
        node.ensure_rp2040js()
        if self.config.through_bootloader:  # PICOBOOT through the real bootrom, then it boots from its flash
            self.flash_result, self.served = virtual_flash.flash_virtual(self.image, self.config.board,
                                                                         verify=self.config.verify)
        else:  # execution starts when the monitor attaches: the banner is never missed
            self.served = Rp2040jsProcess(self.image, serial="tcp", start="on-connect", port=int(self.config.port or 0),
                                       max_emulated_s=self.max_emulated_s, max_wall_s=self.config.max_wall_s).start()
        return {"port": self.served.url, "reconnect": False, "wait": 10.0, "send_input": False}

    def _port(self):
        """The target's own connection to the served serial stream (instead of a monitor's)."""
        if self.served is None:
            raise FwtoolError("the virtual board is not served: call serve() before feed()", None)
        if self.port is None:
            self.port = open_serial(self.served.url, timeout=0.05)
            deadline = time.monotonic() + START_WAIT_S  # it starts when a client attaches: bytes sent before are lost
            while time.monotonic() < deadline and not any(e.get("event") == "started" for e in self.served.events):
                time.sleep(0.02)
        return self.port

    def feed(self, data: bytes) -> None:
        """Bytes into the served board's serial stream (UART0 RX / its USB CDC)."""
        self._port().write(data)

    def open_link(self, image: Path | None):
        """The image loaded straight into emulated flash (never through the bootrom: the stream needs no flashing),
        served on a TCP port, execution starting when the link connects; the link is that serial stream: its
        bytes reach the firmware's USB CDC OUT (or UART0 RX before USB is up), as a board's port carries them."""
        self.load(image)
        self.start()
        self.served = Rp2040jsProcess(self.image, serial="tcp", start="on-connect", port=0,
                                      max_emulated_s=self.max_emulated_s, max_wall_s=self.config.max_wall_s).start()
        self.link = self._port()
        return self.link

    def read(self, until, count=1, timeout=300.0, on_line=lambda s: None) -> list[str]:
        """Served: lines from its socket (what it echoes to what was fed); else a run of its own (capture)."""
        if self.served is not None:
            return read_lines(self._port(), until, count, timeout, on_line)
        lines = super().read(until, count, timeout, on_line)
        self._record_exit(next((e for e in reversed(self.result.events) if e.get("event") == "exit"), {}))
        return lines

    def _record_exit(self, ev: dict) -> None:
        hz = ev.get("clk_sys_hz") or CLOCK_MHZ * 1e6  # the clk_sys the firmware programmed (core1.mjs)
        self._details.update({"clock_mhz": hz / 1e6, "core_cycles": ev.get("core_cycles"),
                              "core1_launches": ev.get("core1_resets")})

    def stop(self) -> None:
        self.link = None  # the served port below
        if self.port is not None:
            self.port.close()
            self.port = None
        if self.served is not None:
            self.exit_event = self.served.stop() or {}
            self.served = None
            self._record_exit(self.exit_event)

    def end_error(self) -> FwtoolError | None:
        ev = self.exit_event or {}
        reason = ev.get("reason")
        return None if reason in (None, "stopped", "killed") else failure(reason, ev.get("detail"), self.info.title)

    def capture(self, until, count, timeout, on_line=None, on_event=None) -> RunResult:
        board = self.process = Rp2040jsProcess(
            self.image, serial="stdout", start="now", max_emulated_s=self.max_emulated_s, max_wall_s=timeout,
            until=until if count > 0 else None, count=count, on_line=on_line, on_event=on_event,
            extra_args=["--boot", "bootrom"] if self.config.through_bootloader else None)
        try:
            board.start()
            board.wait()
        finally:
            board.stop()
        return board.result()


class QemuM4(VirtualTarget):
    """The virtual Cortex-M4: QEMU mps2-an386 running the family's ELF linked for it (fwtool/emulator/qemu.py).
    Not cycle-accurate: -icount shift=0 makes one instruction one ns, so its clock counts instructions."""

    info = TargetInfo("qemu-mps2-an386", qemu.TITLE, VIRTUAL, cycle_accurate=False, cores=1,
                      clock_hz=1e9 / qemu.NS_PER_INSTRUCTION, cycle="instruction", timing_note=qemu.TIMING_NOTE,
                      feeds=frozenset({"bytes"}))
    machine = qemu.MACHINE

    def __init__(self, config: TargetConfig | None = None) -> None:
        super().__init__(config)
        self._dir: str | None = None  # its socket's folder

    def load(self, image: Path | None) -> None:
        super().load(image)
        self.hint = qemu.hint(self.image, self.machine) if self.image else None

    def open_link(self, image: Path | None):
        """QEMU with the machine's UART0 on a Unix socket (qemu.command ``serial_socket``): the link carries the
        firmware's lines and writes into the CMSDK UART's RX (the vm*_platform's fwt_read_bytes polls it)."""
        self.load(image)
        self.start()
        qemu.check()
        self._dir = tempfile.mkdtemp(prefix="fwtool-qemu-")
        sock = str(Path(self._dir) / "uart0.sock")
        self.child = process.Child(qemu.command(self.image, self.machine, serial_socket=sock), self.on_step)
        t0 = time.monotonic()
        try:
            self.link = link_mod.connect_unix(sock, START_WAIT_S, alive=self.child.alive)
        except OSError as e:
            time.sleep(0.2)  # its last words on stderr
            why = self.child.stderr_tail() or str(e)
            self.stop()
            raise FwtoolError(f"{self.info.title} did not start: {why}", self.hint) from None
        self._details.update({"elf": str(self.image), "link": "uart0 (unix socket)",
                              "start_s": round(time.monotonic() - t0, 3)})
        return self.link

    def stop(self) -> None:
        super().stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def capture(self, until, count, timeout, on_line=None, on_event=None) -> RunResult:
        result = qemu.run(self.image, count=count or None, until=until, timeout=timeout,
                          on_line=on_line or (lambda s: None), machine=self.machine)
        us = result.invoke_us
        self._details.update({"elf": str(self.image), "invoke_us": us[:1] and us[0],
                              "invoke_instructions": us[:1] and qemu.instructions(us)[0]})
        return result

    def summary(self, lines: list[str]) -> list[str]:
        ins = qemu.instructions(RunResult(lines, "count", None).invoke_us)
        head = [f"invoke    {ins[0]:,} instructions (QEMU -icount; {len(ins)} inference(s), min {min(ins):,}, "
                f"max {max(ins):,})"] if ins else []
        return head + [f"note      {self.info.timing_note}"]


class QemuM33(QemuM4):
    """The virtual Cortex-M33 (with DSP and FPU): QEMU mps2-an505 running the rp2350 family's ELF linked for it.
    The same runner and instruction counting as the M4 machine; only the machine and the labels differ."""

    info = TargetInfo("qemu-mps2-an505", qemu.TITLE_M33, VIRTUAL, cycle_accurate=False, cores=1,
                      clock_hz=1e9 / qemu.NS_PER_INSTRUCTION, cycle="instruction", timing_note=qemu.TIMING_NOTE_M33,
                      feeds=frozenset({"bytes"}))
    machine = qemu.MACHINE_M33


VIRTUAL_TARGETS: dict[str, type[VirtualTarget]] = {t.info.name: t for t in (Rp2040js, QemuM4, QemuM33)}


def run_capture(image: Path, count: int = 3, until: str = protocol.PREFIX_INFER, timeout: float = 120.0,
                max_emulated_s: float | None = 60.0, on_line: Callable[[str], None] | None = None,
                on_event: Callable[[dict], None] | None = None, target: str = "rp2040js") -> RunResult:
    """Run ``image`` on the virtual target ``target`` until the ``count``-th serial line containing ``until`` (or a
    limit); return what it printed. ``timeout`` is wall-clock seconds; ``count=0`` runs until a limit. Never
    raises for how the run ended: see ``result.reason`` and :func:`~fwtool.emulator.result.failure`."""
    t = VIRTUAL_TARGETS[target](TargetConfig(max_emulated_s=max_emulated_s))
    t.load(image)
    return t.capture(until if count > 0 else None, count, timeout, on_line, on_event)

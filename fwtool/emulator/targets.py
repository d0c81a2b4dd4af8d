"""The virtual targets (fwtool/targets/base.py): the virtual RP2040 on rp2040js and the virtual Cortex-M4 on QEMU
mps2-an386. Both return the one :class:`~fwtool.emulator.result.RunResult` and raise the one ``failure()``.

:func:`run_capture` is the one capture call for any virtual target (``target=`` a registry name).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from fwtool.core import protocol
from fwtool.core.errors import FwtoolError
from fwtool.emulator import qemu
from fwtool.emulator.result import RunResult, failure
from fwtool.emulator.session import CLOCK_MHZ, TIMING_NOTE, VirtualBoard
from fwtool.targets.base import VIRTUAL, Target, TargetConfig, TargetInfo


class VirtualTarget(Target):
    """A virtual target runs in an emulator process fwtool owns; its runs end with a :class:`RunResult`."""

    hint: str | None = None  # the fix for a run that ran out of time

    def __init__(self, config: TargetConfig | None = None) -> None:
        super().__init__(config)
        self.max_emulated_s = self.config.max_emulated_s
        self.result: RunResult | None = None

    def start(self) -> None:
        if self.image is None:
            raise FwtoolError(f"{self.info.title} needs an image to run", "build one first ('fwtool build')")

    def stop(self) -> None:  # each capture owns its process from start to kill
        return None

    def capture(self, until: str | None, count: int, timeout: float,
                on_line: Callable[[str], None] | None = None) -> RunResult:
        """Run the loaded image; never raises for how the run ended (see ``result.reason``)."""
        raise NotImplementedError

    def read(self, until: str | None, count: int = 1, timeout: float = 300.0,
             on_line: Callable[[str], None] = lambda s: None) -> list[str]:
        result = self.capture(until, count if until else 0, timeout, on_line)
        self.result = result
        self._details.update({"wall_s": result.wall_s, "emulated_us": result.emulated_us})
        if not result.ok and not (until is None and result.reason in ("wall-limit", "emulated-limit")):
            raise failure(result.reason, result.detail, self.info.title, self.hint)
        return result.lines


class Rp2040js(VirtualTarget):
    """The virtual RP2040: rp2040js on Node.js, booting the image at boot2 (fwtool/emulator/session.py)."""

    info = TargetInfo("rp2040js", "the virtual board (rp2040js)", VIRTUAL, cycle_accurate=False, cores=1,
                      clock_hz=CLOCK_MHZ * 1e6, cycle="cycle", timing_note=TIMING_NOTE)

    def capture(self, until, count, timeout, on_line=None, on_event=None) -> RunResult:
        board = VirtualBoard(self.image, serial="stdout", start="now", max_emulated_s=self.max_emulated_s,
                             max_wall_s=timeout, until=until if count > 0 else None, count=count, on_line=on_line,
                             on_event=on_event)
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
                      clock_hz=1e9 / qemu.NS_PER_INSTRUCTION, cycle="instruction", timing_note=qemu.TIMING_NOTE)

    def load(self, image: Path | None) -> None:
        super().load(image)
        self.hint = qemu.hint(self.image) if self.image else None

    def capture(self, until, count, timeout, on_line=None, on_event=None) -> RunResult:
        result = qemu.run(self.image, count=count or None, until=until, timeout=timeout,
                          on_line=on_line or (lambda s: None))
        us = result.invoke_us
        self._details.update({"elf": str(self.image), "invoke_us": us[:1] and us[0],
                              "invoke_instructions": qemu.instructions(us[:1])[:1] and qemu.instructions(us)[0]})
        return result


VIRTUAL_TARGETS: dict[str, type[VirtualTarget]] = {t.info.name: t for t in (Rp2040js, QemuM4)}


def run_capture(image: Path, count: int = 3, until: str = protocol.PREFIX_INFER, timeout: float = 120.0,
                max_emulated_s: float | None = 60.0, on_line: Callable[[str], None] | None = None,
                on_event: Callable[[dict], None] | None = None, target: str = "rp2040js") -> RunResult:
    """Run ``image`` on the virtual target ``target`` until the ``count``-th serial line containing ``until`` (or a
    limit); return what it printed. ``timeout`` is wall-clock seconds; ``count=0`` runs until a limit. Never
    raises for how the run ended: see ``result.reason`` and :func:`~fwtool.emulator.result.failure`."""
    t = VIRTUAL_TARGETS[target](TargetConfig(max_emulated_s=max_emulated_s))
    t.load(image)
    return t.capture(until if count > 0 else None, count, timeout, on_line, on_event)

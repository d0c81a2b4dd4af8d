"""The virtual PSoC 6 as a target (fwtool/targets/base.py): runs a kit's real ``firmware.hex`` on :class:`Machine`.

``capture`` boots the image from reset, collects the UART lines until the asked-for marker, and then checks the
chip set-up against the board file and the kit (checks.py): a mismatch fails the run (exit 8) with one sentence
per problem. ``start_late`` (tests, ``fwtool emulate --late``) drops the first ``late_s`` emulated seconds of
UART output, as a monitor that opens the KitProg3 port after the boot would see it.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from fwtool.core import protocol, vendor
from fwtool.core.boards import Board, get_board
from fwtool.core.errors import Exit, FwtoolError, MissingTool
from fwtool.core.lines import LineSplitter
from fwtool.emulator.psoc6 import checks, kit as kit_mod
from fwtool.emulator.psoc6.serial_port import MachinePort
from fwtool.emulator.psoc6.regdefs import Device
from fwtool.emulator.result import RunResult
from fwtool.emulator.targets import VirtualTarget
from fwtool.image.symbols import decode_fault
from fwtool.targets.base import VIRTUAL, TargetInfo

try:  # the unicorn package (fwtool[psoc6]) is needed only to run the machine, not to list the target
    from fwtool.emulator.psoc6.machine import Machine, load_image
except ImportError:  # pragma: no cover - exercised where unicorn is not installed
    Machine = load_image = None

NAME = "psoc6-unicorn"
TITLE = "the virtual PSoC 6 (Unicorn)"
TIMING_NOTE = ("virtual PSoC 6 (Unicorn): no cycle timing; the CM4's DWT CYCCNT counts executed instructions, so "
               "'us' = instructions / (clock_hz / 1e6): a lower bound of the kit's time (no wait states or stalls)")
MAX_INSTRUCTIONS = 20_000_000_000  # a run that goes on this long without the asked-for line is stuck


def series(board: Board) -> str:
    """The PDL series of the board's BSP ('01', '02'), from the BSP's startup file name."""
    bsp = vendor.require(vendor.manifest()[board.sdk.bsp])
    found = sorted((bsp / "COMPONENT_CM4" / "TOOLCHAIN_GCC_ARM").glob("startup_psoc6_*_cm4.S"))
    if len(found) != 1:
        raise FwtoolError(f"the BSP {board.sdk.bsp} has {len(found)} CM4 startup files (expected one)",
                          "run 'fwtool vendor sync'")
    return found[0].name.split("_")[2]


def machine_for(image: Path, board: Board, fll_locks: bool = True, on_byte=lambda b: None, mic_pcm=None):
    """A :class:`Machine` for ``board`` with ``image`` in its flash (the register map from the pinned PDL, the
    wiring from the pinned BSP)."""
    if Machine is None:
        raise MissingTool("the virtual PSoC 6 needs the unicorn package (its CPU engine)",
                          "pip install 'fwtool[psoc6]'  (or: pip install unicorn)")
    pdl = vendor.require(vendor.manifest()["mtb-pdl-cat1"])
    dev = Device.load(pdl, board.sdk.device, series(board))
    kit = kit_mod.from_bsp(vendor.require(vendor.manifest()[board.sdk.bsp]), board.sdk.bsp)
    return Machine(load_image(image), dev, kit, fll_locks=fll_locks, on_byte=on_byte, clock_hz=board.clock_hz,
                   mic_pcm=mic_pcm)


def run(image: Path, board: Board, until: str | None = protocol.PREFIX_INFER, count: int = 3,
        timeout: float = 120.0, on_line: Callable[[str], None] = lambda s: None, fll_locks: bool = True,
        late_s: float = 0.0, check: bool = True, max_emulated_s: float | None = None,
        host_bytes: bytes = b"", mic_pcm=None) -> tuple[RunResult, dict]:
    """Run until the ``count``-th line starting with ``until`` (None: until ``timeout``); (result, details).
    ``host_bytes`` go to the UART's RX FIFO once the firmware has set the bridge's SCB up; ``mic_pcm`` (int16 at
    the rate the firmware's PDM clocks give) is what the kit's microphone hears (pdm.py)."""
    splitter, lines = LineSplitter(), []
    state = {"hits": 0, "reason": ""}
    clock = board.clock_hz

    def on_byte(b: int) -> None:
        if late_s and m.cm4.instructions < late_s * clock:
            return  # the monitor is not listening yet
        for piece in splitter.feed(bytes([b]), time.time()):
            line = piece.text
            lines.append(line)
            if line.startswith(protocol.PREFIX_BANNER) and "boot" not in state:
                state["boot"] = m.cm4.instructions
            on_line(line)
            if line.startswith((protocol.PREFIX_ERROR, protocol.PREFIX_FAULT)) and not state["reason"]:
                state["reason"] = "firmware-error"
                state["detail"] = decode_fault(line, Path(image).with_suffix(".elf"))
            elif until and line.startswith(until):
                state["hits"] += 1
                if state["hits"] >= count and not state["reason"]:
                    state["reason"] = "count"

    m = machine_for(image, board, fll_locks, on_byte, mic_pcm)
    t0 = time.monotonic()
    steps = 0
    pending = bytes(host_bytes)
    while not state["reason"]:
        if pending and m.feed(pending):
            pending = b""
        m.step()
        steps += 1
        if steps % 64 == 0 and time.monotonic() - t0 > timeout:
            state["reason"] = "wall-limit"
        cm4 = m.cm4
        if cm4.halted or m.cores[0].halted:
            state["reason"], state["detail"] = "breakpoint", cm4.halted or m.cores[0].halted
        elif m.reset_requested:
            state["reason"], state["detail"] = "ended-early", "the firmware requested a system reset"
        elif cm4.instructions > (max_emulated_s * clock if max_emulated_s else MAX_INSTRUCTIONS):
            state["reason"] = "emulated-limit"
    wall = round(time.monotonic() - t0, 3)
    st = m.state()
    result = RunResult(lines, state["reason"], state.get("detail"), emulated_us=int(m.cm4.instructions * 1e6 / clock),
                       wall_s=wall, image=str(image))
    us = result.invoke_us
    details = {"image": str(image), "image_kind": "hex", "target": NAME, "wall_s": wall,
               "cm4_instructions": m.cm4.instructions, "cm0p_instructions": m.cores[0].instructions,
               "cm4_started_after_cm0p_instructions": m.cm4_started_at, "core_clock_hz": st["hf0_hz"],
               "fll_locked": st["fll_locked"], "invoke_us": us[:1] and us[0],
               "invoke_instructions": us[:1] and int(us[0] * clock / 1e6), "led_changes": m.led_changes,
               "boot_instructions": state.get("boot"), "hf1_hz": st["hf1_hz"], "pdm_rate_hz": st["pdm_rate_hz"],
               "led_pwm_duty": st["led_pwm_duty"],
               "pdm": ({"samples_read": m.pdm.reads, "fifo_overflows": m.pdm.overflows}
                       if m.pdm is not None and m.pdm.started_at is not None else None)}
    if check and m.cm4.running:
        details["board_check"] = checks.problems(m, board)
    return result, details


def board_check_error(problems: list[str], board: Board) -> FwtoolError:
    return FwtoolError(f"the firmware set up {board.name} differently from its board file or kit: " +
                       "; ".join(problems), "fix the board file (boards/<name>.toml) or the PSoC 6 board layer "
                       "(templates/psoc6/fwt_platform.cpp.j2)", Exit.MISMATCH)


class Psoc6Unicorn(VirtualTarget):
    """The virtual PSoC 6: both cores of the kit's real image on Unicorn (fwtool/emulator/psoc6/)."""

    info = TargetInfo(NAME, TITLE, VIRTUAL, cycle_accurate=False, cores=1, clock_hz=None, cycle="instruction",
                      timing_note=TIMING_NOTE, feeds=frozenset({"bytes"}))

    def open_link(self, image: Path | None):
        """Boot ``image`` (the kit's firmware.hex) from reset on a fresh machine and return its UART as a
        pyserial-like link (serial_port.MachinePort: the machine runs while the host reads; host bytes reach the
        bridge's RX FIFO once the firmware has set the SCB up). ``stop()`` ends it and checks the chip set-up."""
        self.load(image)
        self.start()
        board = get_board(self.config.board)
        port = MachinePort(board)
        port.attach(machine_for(self.image, board, on_byte=port.on_byte))
        self.link = port
        return port

    def stop(self) -> None:
        """End a linked run: its figures into details(), then the board check (a mismatch raises, exit 8)."""
        port, self.link = self.link, None
        if port is None or port.machine is None:
            return
        port.close()
        board = get_board(self.config.board)
        m, clock = port.machine, board.clock_hz
        self._details.update({"image": str(self.image), "image_kind": "hex", "target": NAME,
                              "cm4_instructions": m.cm4.instructions, "emulated_us": int(m.cm4.instructions * 1e6 / clock),
                              "uart_bytes_in": port.fed, "core_clock_hz": m.state()["hf0_hz"]})
        problems = checks.problems(m, board) if m.cm4.running else []
        self._details["board_check"] = problems
        if problems:
            raise board_check_error(problems, board)

    def capture(self, until, count, timeout, on_line=None, on_event=None) -> RunResult:
        board = get_board(self.config.board)
        result, details = run(self.image, board, until=until, count=count or 1, timeout=timeout,
                              on_line=on_line or (lambda s: None))
        self._details.update(details)
        if result.ok and details.get("board_check"):
            raise board_check_error(details["board_check"], board)
        return result

    def summary(self, lines: list[str]) -> list[str]:
        """The run's figures for ``fwtool run --emulator`` (after the lines)."""
        d, board = self._details, get_board(self.config.board)
        out = [f"image     {d.get('image')} (the kit's real image, both cores from reset)"]
        if d.get("boot_instructions"):
            out.append(f"boot      {d['boot_instructions']:,} CM4 instructions to FWT:BOOT ({d['wall_s']:.2f} s wall "
                       "for the whole run)")
        if d.get("invoke_instructions"):
            out.append(f"invoke    {d['invoke_instructions']:,} CM4 instructions ({d['invoke_us']:,} us at "
                       f"{board.clock_hz / 1e6:g} MHz, 1 instruction = 1 cycle)")
        out.append(f"clock     CLK_HF0 {d.get('core_clock_hz', 0):,} Hz, FLL locked: {d.get('fll_locked')}; clock, UART "
                   "divider and pin mux match the board file and the kit's design.modus")
        out.append(f"note      {TIMING_NOTE}")
        return out

"""Validate's target runs: the serial lines of one validation run, from the virtual board or a real board.

The virtual board comes from fwtool.emulator (run until ``FWT:DONE``); a real board is flashed by fwtool.flash,
found by the devices layer, and read over its serial port, cut into lines by fwtool.core.lines.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import serial

from fwtool import emulator
from fwtool.emulator import qemu
from fwtool.core import protocol
from fwtool.core.errors import Exit, FwtoolError
from fwtool.core.lines import LineSplitter
from fwtool.devices import find_serial_port
from fwtool.devices.ports import serial_open_args
from fwtool.flash import flash_image

BAUD = 115200
PORT_WAIT_S = 5.0


def run_on_emulator(image: Path, timeout: float, on_line: Callable[[str], None]) -> tuple[list[str], dict]:
    """Run the validation image on the virtual board until ``FWT:DONE``; (lines, target info)."""
    result = emulator.run_capture(image, count=1, until=protocol.PREFIX_DONE, timeout=timeout,
                                  max_emulated_s=None, on_line=on_line)
    if not result.ok:
        raise emulator.failure(result.reason, result.detail)
    ev = next((e for e in reversed(result.events) if e.get("event") == "exit"), {})
    hz = ev.get("clk_sys_hz") or emulator.CLOCK_MHZ * 1e6  # the clk_sys the firmware programmed (core1.mjs)
    return result.lines, {"kind": "emulator", "emulated_us": result.emulated_us, "wall_s": result.wall_s,
                          "clock_mhz": hz / 1e6, "core_cycles": ev.get("core_cycles"),
                          "core1_launches": ev.get("core1_resets")}


def run_on_virtual_m4(elf: Path, timeout: float, on_line: Callable[[str], None]) -> tuple[list[str], dict]:
    """Run the validation image linked for QEMU's Cortex-M4 (the psoc6 family's virtual target) until ``FWT:DONE``."""
    result = qemu.run_capture(elf, until=protocol.PREFIX_DONE, timeout=timeout, on_line=on_line)
    if not result.ok:
        raise qemu.failure(result, timeout)
    us = result.invoke_us
    return result.lines, {"kind": "emulator", "name": "virtual Cortex-M4 (QEMU mps2-an386)", "elf": str(elf),
                          "wall_s": result.wall_s, "invoke_instructions": result.invoke_instructions[:1] and
                          result.invoke_instructions[0], "invoke_us": us[:1] and us[0],
                          "timing_note": qemu.TIMING_NOTE}


def read_port_until_done(port: str, timeout: float, on_line: Callable[[str], None], baud: int = BAUD) -> list[str]:
    """Open ``port`` (a device or pyserial URL; opening raises DTR, which starts a validation run over USB) and
    read lines until ``FWT:DONE`` or ``timeout`` seconds."""
    try:
        url, extra = serial_open_args(port)  # rfc2217 (ser2net, labgrid): see serial_open_args
        ser = serial.serial_for_url(url, baudrate=baud, timeout=0.2, **extra)
    except (serial.SerialException, OSError, ValueError) as e:
        raise FwtoolError(f"cannot open {port}: {e}", "check the port ('fwtool flash --list'), or pass --port",
                          Exit.NO_DEVICE) from e
    lines: list[str] = []
    splitter = LineSplitter()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                chunk = ser.read(ser.in_waiting or 1)
            except (serial.SerialException, OSError) as e:
                raise FwtoolError(f"the board went away while validating: {e}", "reconnect it and re-run",
                                  Exit.LOST_DEVICE) from e
            if not chunk:
                continue
            for piece in splitter.feed(chunk, time.time()):
                line = piece.text
                lines.append(line)
                on_line(line)
                if isinstance(protocol.parse_line(line), protocol.Done):
                    return lines
    finally:
        ser.close()
    return lines


def run_on_board(image: Path | None, board: str, *, port: str | None = None, serial: str | None = None,
                 flash: bool = True, timeout: float = 300.0, on_line: Callable[[str], None] = lambda s: None,
                 on_step: Callable[[str], None] = lambda s: None) -> tuple[list[str], dict]:
    """Flash ``image`` (unless ``flash`` is False), then read the validation run from the board's port."""
    info: dict = {"kind": "board"}
    if flash:
        on_step("flashing the validation firmware")
        res = flash_image(image, board=board, serial=serial)
        info.update({"flash_method": res.get("method"), "serial": res.get("serial")})
        port = port or res.get("port")
    if not port:
        port = find_serial_port(board, serial=serial, wait_s=PORT_WAIT_S)
    info["port"] = port
    on_step(f"reading results from {port}")
    t0 = time.monotonic()
    lines = read_port_until_done(port, timeout, on_line)
    info["wall_s"] = round(time.monotonic() - t0, 3)
    return lines, info

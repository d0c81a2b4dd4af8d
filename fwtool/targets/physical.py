"""A physical board behind its serial port: flashed by fwtool.flash, found by the devices layer, read over the
port with the serial layer's one opener (fwtool.devices.serial: exclusive lock, first bytes kept, rfc2217
``ign_set_control``), read by the one read loop in fwtool.core.lines."""
from __future__ import annotations

import contextlib
import time
from typing import Callable

from fwtool.core import protocol
from fwtool.devices import board_lock, find_serial_port
from fwtool import flash
from fwtool.devices import serial as serial_layer
from fwtool.targets.base import PHYSICAL, Target, TargetInfo, read_lines

BAUD = 115200
PORT_WAIT_S = 5.0


def open_port(port: str, baud: int = BAUD):
    """Open ``port`` (a device or pyserial URL; opening raises DTR, which starts a run over USB)."""
    return serial_layer.open_port(port, baud, 0.2, fix="check the port ('fwtool flash --list'), or pass --port")


def read_port_until_done(port: str, timeout: float, on_line: Callable[[str], None], baud: int = BAUD) -> list[str]:
    """Open ``port`` and read lines until ``FWT:DONE`` or ``timeout`` seconds."""
    ser = open_port(port, baud)
    try:
        return read_lines(ser, protocol.PREFIX_DONE, 1, timeout, on_line)
    finally:
        ser.close()


class PortTarget(Target):
    """A target read through a serial port it opened in ``start()`` (``self.ser``): a board on USB or a labgrid
    place's exported port. Reading, feeding and closing are the same for both."""

    ser = None
    _t0 = 0.0

    def read(self, until, count=1, timeout=300.0, on_line=lambda s: None) -> list[str]:
        lines = read_lines(self.ser, until, count, timeout, on_line)
        self._details["wall_s"] = round(time.monotonic() - self._t0, 3)
        return lines

    def feed(self, data: bytes) -> None:
        self.ser.write(data)

    def stop(self) -> None:
        if self.ser is not None:
            self.ser.close()
            self.ser = None


class BoardTarget(PortTarget):
    """A real board: ``load`` flashes (unless config.flash is False), ``start`` opens its port."""

    info = TargetInfo("board", "the board", PHYSICAL, cycle_accurate=True, cores=2, clock_hz=None,
                      feeds=frozenset({"bytes"}), serves=True)

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self.port: str | None = self.config.port
        self.ser = None
        self._board = contextlib.ExitStack()  # the board's lock, from the flash to stop() (devices/board_lock)
        self._keeping = False

    def _keep_board(self) -> None:
        if not self._keeping:
            self._board.enter_context(board_lock.keep())
            self._keeping = True

    def stop(self) -> None:
        super().stop()
        self._keeping = False
        self._board.close()

    def load(self, image) -> None:
        super().load(image)
        self._keep_board()  # the flash's claim on the board lasts until the last result line is read
        if self.config.flash and self.image is not None:
            self.on_step("flashing the firmware")
            try:
                res = flash.flash_image(self.image, board=self.config.board, serial=self.config.serial,
                                        method=self.config.method, verify=self.config.verify, on_step=self.on_step)
            except BaseException:
                self.stop()  # a failed flash lets go of the board (Target.run stops only after a load)
                raise
            self.flash_result = res
            self._details.update({"flash_method": res.get("method"), "serial": res.get("serial")})
            self.port = self.port or res.get("port")

    def resolve_port(self, wait_s: float = PORT_WAIT_S) -> str:
        """The board's serial port: given, where the flash left it, or looked up (by its serial number)."""
        if not self.port:
            serial_no = self._details.get("serial") or self.config.serial
            self.port = find_serial_port(self.config.board, serial=serial_no, wait_s=wait_s)
        return self.port

    def serve(self, image) -> dict:
        """Flash it; the monitor follows the board by its serial number (it re-enumerates), else opens its port."""
        self.load(image)
        serial_no = self._details.get("serial") or self.config.serial
        return {"board": self.config.board, "serial": serial_no, "port": self.port if not serial_no else None}

    def start(self) -> None:
        self._details["port"] = self.resolve_port()
        self._keep_board()
        with board_lock.claim(board_lock.identities(self._details.get("serial") or self.config.serial,
                                                    port=self.port)):
            pass  # held until stop() (keep): a run without a flash is one user of the board too
        self.on_step(f"reading results from {self.port}")
        self.ser = open_port(self.port)
        self._t0 = time.monotonic()


"""A serial port on the virtual PSoC 6: the KitProg3 USB-UART bridge as the host sees it, for code written against
pyserial (fwtool/audio/stream.py, core/lines.PortLines): ``read``/``write``/``in_waiting``/``timeout``/``close``.

The machine runs in this process and only while the host waits on ``read``: each read runs slices of both cores
until the firmware has sent something or the port's ``timeout`` (wall seconds) is over. Bytes the host writes are
queued and handed to the SCB muxed onto the bridge's RX pin (scb_uart.py: RX FIFO) as soon as the firmware has
set that SCB up in UART mode; before that they wait (a real bridge would drop them, but the stream protocol resends
its start magic anyway). Like scb_uart.py, the link has no baud timing: a byte takes no emulated time, so a
115,200-baud stream that a kit takes 2.8x real time for (fwtool/audio/stream.py figures, docs/psoc6-audio.md)
goes as fast as the emulated firmware grants credit.
"""
from __future__ import annotations

import time

from fwtool.core.boards import Board
from fwtool.core.errors import FwtoolError

MAX_INSTRUCTIONS = 20_000_000_000  # as target.py's: a run that goes on this long is stuck


class MachinePort:
    """``port = MachinePort(board)``, then ``port.attach(machine)`` — a fresh machine built with
    ``on_byte=port.on_byte`` (target.machine_for), so the firmware's UART output reaches the port."""

    def __init__(self, board: Board, timeout: float = 0.02, max_emulated_s: float | None = None) -> None:
        self.timeout = timeout
        self._out = bytearray()
        self._pending = bytearray()
        self.machine = None
        self.clock_hz = board.clock_hz
        self._limit = int(max_emulated_s * board.clock_hz) if max_emulated_s else MAX_INSTRUCTIONS
        self.fed = 0  # bytes handed to the firmware's UART
        self.is_open = True

    def on_byte(self, b: int) -> None:
        self._out.append(b)

    def attach(self, machine) -> "MachinePort":
        self.machine = machine
        return self

    @property
    def in_waiting(self) -> int:
        return len(self._out)

    @property
    def emulated_s(self) -> float:
        return self.machine.cm4.instructions / self.clock_hz

    def write(self, data: bytes) -> int:
        self._pending += data
        self._deliver()
        return len(data)

    def _deliver(self) -> None:
        if self._pending and self.machine.feed(bytes(self._pending)):
            self.fed += len(self._pending)
            self._pending.clear()

    def _run(self) -> None:
        m = self.machine
        self._deliver()
        m.step()
        halted = m.cm4.halted or m.cores[0].halted
        if halted:
            raise FwtoolError(f"the virtual PSoC 6 stopped: {halted}", "see the firmware's last lines")
        if m.reset_requested:
            raise FwtoolError("the firmware on the virtual PSoC 6 requested a system reset", "see its last lines")
        if m.cm4.instructions > self._limit:
            raise FwtoolError(f"the virtual PSoC 6 ran {self._limit / self.clock_hz:g} emulated s without finishing",
                              "use a shorter clip")

    def read(self, n: int = 1) -> bytes:
        deadline = time.monotonic() + (self.timeout or 0.0)
        while not self._out:
            self._run()
            if time.monotonic() >= deadline:
                break
        got = bytes(self._out[:n])
        del self._out[:n]
        return got

    def reset_input_buffer(self) -> None:
        self._out.clear()

    def close(self) -> None:
        self.is_open = False

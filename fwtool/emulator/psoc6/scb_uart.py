"""SCB in UART mode: the debug UART on the KitProg3 USB-UART bridge.

Modelled: CTRL (ENABLED, MODE, OVS stored), UART_CTRL / UART_TX_CTRL / UART_RX_CTRL (stored), TX_FIFO_WR (a byte
written while the SCB is enabled in UART mode is transmitted at once: the FIFO never fills, TX_FIFO_STATUS.USED
reads 0 and INTR_TX reads NOT_FULL|EMPTY|UART_DONE), RX_FIFO_RD / RX_FIFO_STATUS.USED / INTR_RX.NOT_EMPTY over
the bytes the host sent. Where a transmitted byte goes is the machine's business (it reaches the host only when
the SCB's TX is muxed to the pin the kit's bridge listens on: gpio.py). Not modelled: baud timing (bytes take no
time), parity/stop bits, SPI/I2C modes, interrupts, flow control, break detection."""
from __future__ import annotations

from collections import deque
from typing import Callable

from fwtool.emulator.psoc6.bus import Bus
from fwtool.emulator.psoc6.regdefs import Device

MODE_UART = 2  # SCB_CTRL.MODE (PDL cy_scb_common.h: CY_SCB_CTRL_MODE_UART)


class ScbUart:
    def __init__(self, bus: Bus, dev: Device, n: int, on_tx: Callable[[int, int], None]) -> None:
        self.bus, self.dev, self.n, self.on_tx = bus, dev, n, on_tx
        block = f"SCB{n}"
        r = lambda name: dev.reg(block, name, "CySCB_Type")  # noqa: E731
        self.ctrl = r("CTRL")
        self.rx: deque[int] = deque()
        bus.on_write(r("TX_FIFO_WR"), lambda core, v: self._tx(v))
        bus.on_read(r("TX_FIFO_STATUS"), lambda core: 0)
        txm = sum(dev.field("SCB_INTR_TX", f)[1] for f in ("NOT_FULL", "EMPTY", "UART_DONE"))
        bus.on_read(r("INTR_TX"), lambda core: txm)
        bus.on_write(r("INTR_TX"), lambda core, v: None)
        bus.on_read(r("RX_FIFO_STATUS"), lambda core: min(len(self.rx), 0x1FF))
        bus.on_read(r("RX_FIFO_RD"), lambda core: self.rx.popleft() if self.rx else 0)
        rxm = dev.field("SCB_INTR_RX", "NOT_EMPTY")[1]
        bus.on_read(r("INTR_RX"), lambda core: rxm if self.rx else 0)
        bus.on_write(r("INTR_RX"), lambda core, v: None)

    def enabled(self) -> bool:
        value = self.bus.get(self.ctrl)
        mode_pos, mode_m = self.dev.field("SCB_CTRL", "MODE")
        return bool(value & self.dev.field("SCB_CTRL", "ENABLED")[1]) and (value & mode_m) >> mode_pos == MODE_UART

    def oversample(self) -> int:
        pos, mask = self.dev.field("SCB_CTRL", "OVS")
        return ((self.bus.get(self.ctrl) & mask) >> pos) + 1

    def _tx(self, value: int) -> None:
        if self.enabled():
            self.on_tx(self.n, value & 0xFF)

    def feed(self, data: bytes) -> None:
        self.rx.extend(data)

"""GPIO and HSIOM: pin drive modes, output levels and the pin mux (which peripheral signal drives a pin).

Modelled: per port, OUT and its OUT_CLR / OUT_SET / OUT_INV write-actions (PDL Cy_GPIO_Write/Inv), IN (an output
pin reads its OUT level; an input reads 1: the bridge's idle UART line and the kits' pulled-up buttons), CFG /
CFG_IN / CFG_OUT (stored: the drive mode of pin p is CFG bits [4p+2:4p], input buffer bit 4p+3), HSIOM
PORT_SEL0/1 (stored: pin p's function is byte p of the pair). ``function(port, pin)`` and ``drive_mode`` let the
machine route the UART and check the mux; ``level`` gives the LED. Not modelled: slew/drive strength, interrupts,
analog, Smart I/O."""
from __future__ import annotations

from typing import Callable

from fwtool.emulator.psoc6.bus import Bus
from fwtool.emulator.psoc6.regdefs import Device

DM_STRONG_IN_OFF = 6  # PDL CY_GPIO_DM_STRONG_IN_OFF (drive mode 6, input buffer off)


class Gpio:
    def __init__(self, bus: Bus, dev: Device, ports: int, on_change: Callable[[int, int, int], None]) -> None:
        self.bus, self.dev, self.on_change = bus, dev, on_change
        self.ports = ports
        for p in range(ports):
            out = dev.reg("GPIO", f"PRT[{p}].OUT")
            for name, op in (("OUT_CLR", lambda o, v: o & ~v), ("OUT_SET", lambda o, v: o | v),
                             ("OUT_INV", lambda o, v: o ^ v)):
                bus.on_write(dev.reg("GPIO", f"PRT[{p}].{name}"),
                             lambda core, v, p=p, out=out, op=op: self._out(p, out, op(bus.get(out), v)))
            bus.on_write(out, lambda core, v, p=p, out=out: self._out(p, out, v))
            bus.on_read(dev.reg("GPIO", f"PRT[{p}].IN"), lambda core, p=p: self._in(p))

    def _out(self, port: int, addr: int, value: int) -> None:
        old = self.bus.get(addr)
        self.bus.set(addr, value & 0xFF)
        for pin in range(8):
            if (old ^ value) >> pin & 1:
                self.on_change(port, pin, value >> pin & 1)

    def _in(self, port: int) -> int:
        out = self.bus.get(self.dev.reg("GPIO", f"PRT[{port}].OUT"))
        value = 0
        for pin in range(8):
            value |= (out >> pin & 1 if self.drive_mode(port, pin) >= DM_STRONG_IN_OFF - 4 and
                      self.function(port, pin) == 0 and self.drive_mode(port, pin) != 0 else 1) << pin
        return value

    def level(self, port: int, pin: int) -> int:
        return self.bus.get(self.dev.reg("GPIO", f"PRT[{port}].OUT")) >> pin & 1

    def drive_mode(self, port: int, pin: int) -> int:
        return self.bus.get(self.dev.reg("GPIO", f"PRT[{port}].CFG")) >> (4 * pin) & 7

    def function(self, port: int, pin: int) -> int:
        reg = "PORT_SEL0" if pin < 4 else "PORT_SEL1"
        return self.bus.get(self.dev.reg("HSIOM", f"PRT[{port}].{reg}")) >> (8 * (pin % 4)) & 0x1F

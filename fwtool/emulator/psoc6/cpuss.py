"""CPUSS: the CM4's power and start control, the CPUs' clock dividers, identity; and PERI's peripheral clock
dividers.

Modelled: CM4_PWR_CTL (writes with the 0x05FA key; PWR_MODE ENABLED (3) releases the CM4 from reset into the
vector table in CM4_VECTOR_TABLE_BASE, RESET (1) / OFF (0) stop it), CM4_STATUS (PWR_DONE once enabled),
CM4_CLOCK_CTL / CM0_CLOCK_CTL (stored: CLK_FAST / CLK_PERI / CLK_SLOW dividers feed ``peri_hz``),
CM0_VECTOR_TABLE_BASE (the CM0+ starts from it: the flash base out of reset, as the boot ROM leaves it).
PERI: DIV_CMD (ENABLE/DISABLE act on the selected divider's EN bit at once, and the command bits read back
clear), DIV_8/16/16_5/24_5_CTL and CLOCK_CTL stored. Not modelled: the boot ROM, CM0+ power control, protection
units (PROT/SMPU/MPU writes are stored and enforce nothing), the crypto block, DMA (DW), the fault structures."""
from __future__ import annotations

from typing import Callable

from fwtool.emulator.psoc6.bus import Bus
from fwtool.emulator.psoc6.regdefs import Device

PWR_KEY = 0x05FA


class Cpuss:
    def __init__(self, bus: Bus, dev: Device, flash_base: int,
                 cm4_power: Callable[[bool, int], None]) -> None:
        self.bus, self.dev, self.cm4_power = bus, dev, cm4_power
        self.pwr = dev.reg("CPUSS", "CM4_PWR_CTL")
        self.status = dev.reg("CPUSS", "CM4_STATUS")
        self.vt4 = dev.reg("CPUSS", "CM4_VECTOR_TABLE_BASE")
        self.vt0 = dev.reg("CPUSS", "CM0_VECTOR_TABLE_BASE")
        self.cm4_clock, self.cm0_clock = dev.reg("CPUSS", "CM4_CLOCK_CTL"), dev.reg("CPUSS", "CM0_CLOCK_CTL")
        bus.set(self.vt0, flash_base)
        bus.set(self.pwr, PWR_KEY << 16 | 1)  # the CM4 is held in reset out of power-on
        bus.on_write(self.pwr, self._pwr)
        bus.on_read(self.status, lambda core: self.dev.field("CPUSS_CM4_STATUS", "PWR_DONE")[1]
                    if self.bus.get(self.pwr) & 3 == 3 else 0)
        self.div_cmd = dev.reg("PERI", "DIV_CMD")
        bus.on_write(self.div_cmd, self._div_cmd)

    def _pwr(self, core: int, value: int) -> None:
        if value >> 16 != PWR_KEY:
            return  # the hardware ignores writes without the key
        self.bus.set(self.pwr, value)
        mode = value & 3
        self.cm4_power(mode == 3, self.bus.get(self.vt4))

    def _div_cmd(self, core: int, value: int) -> None:
        _, sel_m = self.dev.field("PERI_DIV_CMD", "DIV_SEL")
        type_pos, type_m = self.dev.field("PERI_DIV_CMD", "TYPE_SEL")
        _, en_m = self.dev.field("PERI_DIV_CMD", "ENABLE")
        _, dis_m = self.dev.field("PERI_DIV_CMD", "DISABLE")
        kind, num = (value & type_m) >> type_pos, value & sel_m
        name = ("DIV_8_CTL", "DIV_16_CTL", "DIV_16_5_CTL", "DIV_24_5_CTL")[kind]
        try:
            ctl = self.dev.reg("PERI", f"{name}[{num}]")
        except Exception:  # noqa: BLE001 - a divider type this device lacks: the command does nothing
            ctl = None
        if ctl is not None and value & en_m:
            self.bus.set(ctl, self.bus.get(ctl) | 1)
        if ctl is not None and value & dis_m:
            self.bus.set(ctl, self.bus.get(ctl) & ~1)
        self.bus.set(self.div_cmd, value & ~(en_m | dis_m))

    def divider(self, reg: str, field: str) -> int:
        pos, mask = self.dev.field(f"CPUSS_{reg}", field)
        addr = self.cm4_clock if reg == "CM4_CLOCK_CTL" else self.cm0_clock
        return ((self.bus.get(addr) & mask) >> pos) + 1

    def peri_hz(self, hf0_hz: int) -> int:
        return hf0_hz // self.divider("CM0_CLOCK_CTL", "PERI_INT_DIV")

    def fast_hz(self, hf0_hz: int) -> int:
        return hf0_hz // self.divider("CM4_CLOCK_CTL", "FAST_INT_DIV")

"""The virtual PSoC 6 machine: memory, both CPUs, the block models, the kit's wiring, and the scheduler.

Out of reset the CM0+ runs from the flash base (the image's CM0+ part: Infineon's prebuilt CM0+ image, which
starts the CM4 through CPUSS CM4_PWR_CTL); the CM4 then runs the application from CM4_VECTOR_TABLE_BASE. The cores
take turns of ``core.SLICE`` instructions. Bytes the firmware sends on an SCB reach the host (``on_byte``) only
when that SCB is enabled in UART mode and its TX signal is muxed (HSIOM) onto the pin the kit's KitProg3 bridge
listens on (kit.py: from the BSP's design.modus); host bytes go to the SCB muxed onto the bridge's RX pin.

``Cy_SysLib_DelayCycles`` (the PDL's calibrated busy loop, cy_syslib_ext.S: ``adds r0,#1; subs r0,#2; bne``) is
recognised by its three instructions when a slice ends inside it and skipped, its iterations counted at the 4
cycles each the PDL calibrates them for, so a 1 s ``Cy_SysLib_Delay`` is 1 s of virtual time and costs no host time.
"""
from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Callable

import unicorn
from unicorn import arm_const as A

from fwtool.emulator.psoc6 import core as cpu
from fwtool.emulator.psoc6.bus import CM0P, CM4, Bus
from fwtool.emulator.psoc6.cpuss import Cpuss
from fwtool.emulator.psoc6.gpio import Gpio
from fwtool.emulator.psoc6.ipc import Ipc
from fwtool.emulator.psoc6.kit import Kit
from fwtool.emulator.psoc6.pdm import Pdm
from fwtool.emulator.psoc6.regdefs import Device
from fwtool.emulator.psoc6.scb_uart import ScbUart
from fwtool.emulator.psoc6.srss import Srss
from fwtool.emulator.psoc6.tcpwm import led_duty
from fwtool.image import firmware
from fwtool.image.firmware import FirmwareImage

PERIPH_BASE, PERIPH_SIZE = 0x40000000, 0x02000000
DELAY_LOOP = (0x3001, 0x3802, 0xD1FC)  # Cy_DelayCycles_loop: adds r0,#1 / subs r0,#2 / bne.n loop
DELAY_CYCLES_PER_LOOP = 4  # the loop's cycles on a Cortex-M (1 + 1 + 2, cy_syslib_ext.S), which PDL divides by
RWX = unicorn.UC_PROT_ALL


class Machine:
    def __init__(self, image: FirmwareImage, dev: Device, kit: Kit, *, fll_locks: bool = True,
                 on_byte: Callable[[int], None] = lambda b: None, clock_hz: int = 100_000_000,
                 mic_pcm=None) -> None:
        self.dev, self.kit, self.on_byte = dev, kit, on_byte
        self.bus = Bus()
        flash_base, flash_size = dev.define("CY_FLASH_BASE"), dev.define("CY_FLASH_SIZE")
        self.flash_base = flash_base
        self.memory = {}
        for name in ("ROM", "SRAM", "FLASH", "EM_EEPROM", "SFLASH"):
            base, size = dev.define(f"CY_{name}_BASE"), dev.define(f"CY_{name}_SIZE")
            self.memory[name] = (base, (ctypes.c_ubyte * size)())
        flash = self.memory["FLASH"][1]
        for addr, data in image.segments:  # erased PSoC 6 flash reads 0x00 (the buffers start zeroed)
            off = addr - flash_base
            if off < 0 or off + len(data) > flash_size:
                raise ValueError(f"image data at 0x{addr:08X} is outside the device's flash")
            ctypes.memmove(ctypes.addressof(flash) + off, data, len(data))
        regions = [(base, buf, RWX) for base, buf in self.memory.values()]
        self.reset_requested = False
        self.cores = [cpu.Core(which, self.bus, regions, [(PERIPH_BASE, PERIPH_SIZE)], self._reset_request,
                               count_exact=which == CM4) for which in (CM0P, CM4)]
        self.srss = Srss(self.bus, dev, fll_locks)
        self.cpuss = Cpuss(self.bus, dev, flash_base, self._cm4_power)
        self.ipc = Ipc(self.bus, dev)
        ports = dev.defines.get("IOSS_GPIO_GPIO_PORT_NR", 15)
        self.led_changes = 0
        self.gpio = Gpio(self.bus, dev, ports, self._pin_changed)
        self.scbs = {n: ScbUart(self.bus, dev, n, self._tx) for n in range(16) if f"SCB{n}_BASE" in dev.defines}
        self.cm4_started_at: int | None = None  # CM0+ instructions when it released the CM4
        # the PDM-PCM block (pdm.py) with ``mic_pcm`` as what its microphone hears; its interrupt goes to the CM4
        block = next((b for b in ("PDM0", "PDM") if f"{b}_BASE" in dev.defines), None)
        irq = next((dev.defines[n] for n in ("audioss_0_interrupt_pdm_IRQn", "audioss_interrupt_pdm_IRQn")
                    if n in dev.defines), None)
        self.pdm = Pdm(self.bus, dev, block, lambda: self.cm4.instructions, clock_hz, lambda: self.srss.hf_hz(1),
                       mic_pcm) if block and irq is not None else None
        self.pdm_irq = irq
        self.cores[CM0P].start(self.bus.get(self.cpuss.vt0))

    # ---- the kit's wiring ----
    def _uart_function(self, n: int, port_pin: tuple[int, int], signal: str) -> int | None:
        return self.dev.defines.get(f"P{port_pin[0]}_{port_pin[1]}_SCB{n}_UART_{signal}")

    def _tx(self, n: int, byte: int) -> None:
        want = self._uart_function(n, self.kit.uart_tx, "TX")
        if want is not None and self.gpio.function(*self.kit.uart_tx) == want:
            self.on_byte(byte)

    def feed(self, data: bytes) -> bool:
        """Host -> the SCB muxed onto the bridge's RX pin (False when none is: the bytes are lost)."""
        for n, scb in self.scbs.items():
            want = self._uart_function(n, self.kit.uart_rx, "RX")
            if want is not None and self.gpio.function(*self.kit.uart_rx) == want and scb.enabled():
                scb.feed(data)
                return True
        return False

    def _pin_changed(self, port: int, pin: int, level: int) -> None:
        if self.kit.led is not None and (port, pin) == self.kit.led:
            self.led_changes += 1

    # ---- CPUs ----
    def _cm4_power(self, on: bool, table: int) -> None:
        cm4 = self.cores[CM4]
        if on and not cm4.running:
            cm4.start(table)
            self.cm4_started_at = self.cores[CM0P].instructions
        elif not on:
            cm4.running = False

    def _reset_request(self) -> None:
        self.reset_requested = True

    @property
    def cm4(self) -> cpu.Core:
        return self.cores[CM4]

    def _skip_delay(self, core: cpu.Core) -> None:
        uc = core.uc
        pc = core.pc & ~1
        for start in (pc, pc - 2, pc - 4):
            try:
                words = uc.mem_read(start, 6)
            except unicorn.UcError:
                return
            if tuple(int.from_bytes(words[i:i + 2], "little") for i in (0, 2, 4)) == DELAY_LOOP:
                break
        else:
            return
        r0 = uc.reg_read(A.UC_ARM_REG_R0)
        if pc == start and r0 > 1:  # about to run 'adds': r0 iterations left
            uc.reg_write(A.UC_ARM_REG_R0, 1)
            core.instructions += DELAY_CYCLES_PER_LOOP * (r0 - 1)

    def step(self) -> None:
        """One turn of every running core."""
        for c in self.cores:
            if c.running and not c.sleeping and not c.halted:
                # once the CM4 runs, the CM0+ (idle in Infineon's image) gets a tenth of the turns' length
                c.step(cpu.SLICE // 10 if c.which == CM0P and self.cm4.running else cpu.SLICE)
                self._skip_delay(c)
        if self.pdm is not None and self.pdm.streaming() and self.pdm.pending():
            self.cm4.take_irq(self.pdm_irq)
        if all(c.sleeping or not c.running or c.halted for c in self.cores):
            for c in self.cores:  # no interrupt model: a sleeping core wakes at the next turn
                c.wake()

    def state(self) -> dict:
        """What the firmware programmed, in numbers (checks.py compares them with the board and the kit)."""
        hf0 = self.srss.hf0_hz()
        return {"fll_enabled": self.srss.fll_enabled(), "fll_locked": self.srss.fll_locked(),
                "fll_target_hz": self.srss.fll_target_hz(), "hf0_hz": hf0, "hf1_hz": self.srss.hf_hz(1),
                "pdm_rate_hz": self.pdm.sample_rate() if self.pdm is not None and self.pdm.streaming() else None,
                "led_pwm_duty": led_duty(self.bus, self.dev, self.gpio, *self.kit.led) if self.kit.led else None,
                "fast_hz": self.cpuss.fast_hz(hf0), "peri_hz": self.cpuss.peri_hz(hf0)}


def load_image(path: Path) -> FirmwareImage:
    return firmware.read(path)

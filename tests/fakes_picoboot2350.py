"""Protocol-level doubles for RP2350 boards (Pico 2) on USB (tests only; product code never imports this).

What differs from the RP2040 doubles in fakes_picoboot.py, as pico-sdk 2.2.0's boot headers and the RP2350
datasheet give it (docs/pico2.md):

* ``FakePicoboot2350``: BOOTSEL USB id 2E8A:000F; the same 32-byte commands, status and control requests; plus
  REBOOT2 (0x0a, bCmdSize 16: dFlags, dDelayMS, dParam0, dParam1; no data phase; boot/picoboot.h), recorded with
  its flags; SRAM 0x20000000-0x20082000 and XIP SRAM 0x13ffc000-0x14000000 (addressmap.h); 4 MB flash,
  4 KB sector erases; EXCLUSIVE_ACCESS as on RP2040. GET_INFO / OTP_* are not modelled (UNKNOWN_CMD here).
* ``FakeApp2350``: a pico-sdk USB-stdio app on RP2350 (2E8A:0009), reset interface as on RP2040.
* ``FakeBoard2350``: the board; its drive says ``Board-ID: RP2350``; it boots only an image whose first 4 KB hold
  an IMAGE_DEF block (fwtool/image/picobin.py markers), not an RP2040 boot2.
"""
from __future__ import annotations

import struct

from fakes_picoboot import MAGIC, OK, FakeApp, FakeBoard, FakePicoboot
from fwtool.image import picobin

SRAM_BASE, SRAM_END = 0x20000000, 0x20082000
XIP_SRAM_BASE, XIP_SRAM_END = 0x13FFC000, 0x14000000
INFO_TEXT_2350 = "UF2 Bootloader v1.0\nModel: Raspberry Pi RP2350\nBoard-ID: RP2350\n"
REBOOT2 = 0x0A
UF2_RP2350_ARM_S = 0xE48BFF59


class FakePicoboot2350(FakePicoboot):
    idProduct = 0x000F

    def __init__(self, board, msc: bool = True):
        super().__init__(board, msc)
        self.sram = bytearray(SRAM_END - SRAM_BASE)
        self.xip_sram = bytearray(XIP_SRAM_END - XIP_SRAM_BASE)
        self.reboot2 = []  # (flags, delay_ms, param0, param1) of every REBOOT2

    def _serial(self):
        return "7C9A2A58D1F0"

    @staticmethod
    def _is_ram(a):
        return SRAM_BASE <= a <= SRAM_END or XIP_SRAM_BASE <= a <= XIP_SRAM_END

    def _mem(self, addr):
        if SRAM_BASE <= addr < SRAM_END:
            return self.sram, addr - SRAM_BASE
        if XIP_SRAM_BASE <= addr < XIP_SRAM_END:
            return self.xip_sram, addr - XIP_SRAM_BASE
        return None, addr

    def _command(self, data):
        if len(data) == 32:
            magic, token, cmd, size, _unused, xfer, args = struct.unpack("<IIBBHI16s", data)
            if magic == MAGIC and cmd == REBOOT2:
                self.status = (token, OK, cmd, 0)
                if size != 16 or xfer != 0:  # INVALID_CMD_LENGTH / INVALID_TRANSFER_LENGTH, both EPs halted
                    self._set_status(2 if size != 16 else 3)
                    self._halt_both()
                    return 32
                self.n_commands += 1
                self.commands.append(("REBOOT2", token, args))
                flags, delay_ms, p0, p1 = struct.unpack("<IIII", args)
                self.reboot2.append((flags, delay_ms, p0, p1))
                self.pending_reboot = (0, 0, delay_ms)
                self._complete()
                return 32
        return super()._command(data)


class FakeApp2350(FakeApp):
    idProduct = 0x0009


class FakeBoard2350(FakeBoard):
    """One Pico 2: 4 MB flash, RP2350 bootrom devices and drive."""

    flash_bytes = 4 * 1024 * 1024
    info_text = INFO_TEXT_2350

    def bootsel_device(self):
        return FakePicoboot2350(self, self.msc)

    def app_device(self):
        return FakeApp2350(self)

    def boots(self) -> bool:
        return picobin.ok(bytes(self.flash[:picobin.SEARCH_BYTES]))


def make_firmware_2350(size: int, seed: int = 1) -> bytes:
    """Random code with an SDK-like IMAGE_DEF block at offset 0x110 (start marker, image-type item, end)."""
    import random
    rng = random.Random(seed)
    data = bytearray(rng.randrange(256) for _ in range(size))
    block = struct.pack("<IBBHII", picobin.MARKER_START, picobin.ITEM_IMAGE_TYPE, 1, 0x1021, 0x000001FF,
                        picobin.MARKER_END)
    data[0x110:0x110 + len(block)] = block
    return bytes(data)

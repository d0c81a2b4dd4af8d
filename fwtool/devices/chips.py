"""Which RP2 chip a USB device or a BOOTSEL drive is: "RP2040" (Pico) or "RP2350" (Pico 2), in every mode.

Raspberry Pi's USB ids (VID 0x2E8A): the bootrom in BOOTSEL mode (picotool picoboot_connection.h: 0x0003 RP2040,
0x000F RP2350) and pico-sdk's USB-stdio apps (pico-sdk 2.2.0 stdio_usb_descriptors.c USBD_PID: 0x000a on RP2040,
0x0009 otherwise). A drive tells by its INFO_UF2.TXT Board-ID (fwtool/devices/drives.py).
"""
from __future__ import annotations

BOOTSEL_PIDS = {0x0003: "RP2040", 0x000F: "RP2350"}
APP_PIDS = {0x000A: "RP2040", 0x0009: "RP2350"}
EXAMPLE_BOARD = {"RP2040": "pico", "RP2350": "pico2"}  # the --board a refusal suggests


def chip_of_usb(vid: int | None, pid: int | None) -> str | None:
    if vid != 0x2E8A:
        return None
    return BOOTSEL_PIDS.get(pid) or APP_PIDS.get(pid)

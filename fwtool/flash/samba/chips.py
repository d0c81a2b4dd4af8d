"""Chip facts for the SAM-BA extended bootloader, one ``Chip`` per ``I#`` answer.

nRF52840 (Arduino Nano 33 BLE / BLE Sense, Rev1 and Rev2), from:
* the bootloader occupies 0x0-0x10000 (no SoftDevice): TinyUSB 0.18.0 ``hw/bsp/nrf/boards/arduino_nano33_ble/
  arduino_nano33_ble.ld`` (``FLASH ORIGIN = 0x10000, LENGTH = 0xf0000``) and ArduinoCore-mbed ``boards.txt``
  (``nano33ble.upload.maximum_size=983040`` = 0xF0000);
* ``I#`` answers ``nRF52840-QIAA``; offsets in ``X``/``Y``/``Z`` count from the application start; the RAM buffer
  the ``S`` command fills is at 0x34 and is one 4 KiB flash page long (a published transcript of Arduino's BOSSA
  talking to this bootloader: ``S00000034,00001000#``, ``Y00000034,0#``, ``Y<offset>,00001000#``);
* the nRF52840's flash page is 4 KiB (nRF52840 Product Specification, NVMC: 256 pages of 4 kB).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Chip:
    ident: str  # what ``I#`` answers
    app_start: int  # absolute address of offset 0 (the first byte the bootloader lets us write)
    flash_end: int  # absolute end of flash
    page_bytes: int  # the unit of ``Y`` copies and ``Z`` checks
    buffer_addr: int  # where ``S`` puts the data (the bootloader's RAM buffer)
    erase_timeout_s: float  # ``X``: worst case erasing the whole application area
    page_timeout_s: float = 2.0  # ``Y`` copy of one page into flash

    def offset(self, address: int) -> int:
        return address - self.app_start

    @property
    def app_bytes(self) -> int:
        return self.flash_end - self.app_start


NRF52840 = Chip(ident="nRF52840-QIAA", app_start=0x10000, flash_end=0x100000, page_bytes=0x1000, buffer_addr=0x34,
                # 240 pages x 85 ms (nRF52840 PS, t_ERASEPAGE max) = 20.4 s, with a margin
                erase_timeout_s=30.0)

CHIPS: dict[str, Chip] = {c.ident: c for c in (NRF52840,)}


def chip_for(ident: str) -> Chip | None:
    """The chip whose ``I#`` answer is ``ident`` (leading/trailing blanks ignored), or None."""
    return CHIPS.get(ident.strip())

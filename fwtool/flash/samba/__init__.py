"""Arduino's "SAM-BA extended" bootloader (the Nano 33 BLE family's), split by layer as esptool splits its loader:

* ``protocol``: the wire format over the bootloader's CDC port (ASCII commands ending in ``#``, fixed-size
  answers) and the errors a port can end in;
* ``chips``: the facts about each chip the bootloader runs on (application start, flash end, page and buffer);
* ``commands``: the operations fwtool needs (hello/identify, erase, write one page, CRC of a range, reset) and
  ``program``, which writes a whole image with them.

The reference client is Arduino's BOSSA fork (``src/Samba.cpp``: ``N#``, ``V#``, ``I#``, ``X``, ``S``, ``Y``,
``Z``, ``K``); the runner is fwtool/flash/runners/samba.py; tests/fakes_samba.py speaks the bootloader's side.
"""
from __future__ import annotations

from fwtool.flash.samba.chips import CHIPS, Chip, chip_for
from fwtool.flash.samba.commands import SambaClient, program
from fwtool.flash.samba.protocol import SambaLink, SambaProtocolError

__all__ = ["CHIPS", "Chip", "SambaClient", "SambaLink", "SambaProtocolError", "chip_for", "program"]

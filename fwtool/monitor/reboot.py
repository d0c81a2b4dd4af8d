"""Rebooting the monitored board from the monitor (Ctrl-R: normal reboot, Ctrl-B: into BOOTSEL).

The reboot goes through ``fwtool.devices.reset.reboot_board(serial=..., bootsel=..., wait=False)``, with the
same reset strategies ``fwtool flash`` uses (fwtool/devices/reset.py, chosen by the board file; on RP2040
pico-sdk's vendor reset interface, rp2040-flashing.md §3.4); the monitor itself follows the board back. The
monitor does not import the flash layer. If that fails (no pyusb backend, no permission), BOOTSEL still works through pico-sdk's
1200-baud "magic" on the open CDC port; a normal reboot then is not available.

A reboot function has the signature ``reboot(kind, port, reader) -> str`` (kind is "app" or "bootsel"; it returns
a message for the user and raises FwtoolError when it cannot reboot). ``run_monitor(..., reboot=...)`` injects one.
"""
from __future__ import annotations

from typing import Callable

from fwtool.devices import reset
from fwtool.core.errors import FwtoolError
from fwtool.devices.ports import PortInfo

RebootFn = Callable[[str, PortInfo, object], str]


def default_reboot(kind: str, port: PortInfo, reader) -> str:
    bootsel = kind == "bootsel"
    try:
        # wait=False: the monitor itself follows the board back (or sees it leave for BOOTSEL)
        r = reset.reboot_board(serial=port.serial_number, bootsel=bootsel, wait=False)
        how = r.get("how", "") if isinstance(r, dict) else ""
        return ("rebooting into BOOTSEL" if bootsel else "rebooting") + (f" ({how})" if how else "")
    except FwtoolError as e:
        problem = e  # BOOTSEL can still go through the open CDC port
    if bootsel and port.vid is not None and reader.touch_1200():
        return "rebooting into BOOTSEL (1200-baud touch)"
    raise problem

"""Rebooting the monitored board from the monitor (Ctrl-R: normal reboot, Ctrl-B: into BOOTSEL).

The reboot goes through the same reset interface ``fwtool flash`` uses (pico-sdk's vendor reset interface,
rp2040-flashing.md §3.4) when ``fwtool.flash`` provides it. Without it, BOOTSEL still works through pico-sdk's
1200-baud "magic" on the open CDC port; a normal reboot then is not available.

A reboot function has the signature ``reboot(kind, port, reader) -> str`` (kind is "app" or "bootsel"; it returns
a message for the user and raises FwtoolError when it cannot reboot). ``run_monitor(..., reboot=...)`` injects one.
"""
from __future__ import annotations

from typing import Callable

from ..errors import FwtoolError
from .ports import PortInfo

RebootFn = Callable[[str, PortInfo, object], str]


def _flash_reboot() -> Callable | None:
    """fwtool.flash's reset-interface reboot, if that package provides one."""
    try:
        from .. import flash as flash_pkg  # noqa: F401  (written concurrently; may not exist)
    except Exception:  # noqa: BLE001 - any import problem means "not available"
        return None
    for modname in ("fwtool.flash.reset", "fwtool.flash"):
        try:
            mod = __import__(modname, fromlist=["x"])
        except Exception:  # noqa: BLE001
            continue
        for name in ("reboot_device", "reboot"):
            fn = getattr(mod, name, None)
            if callable(fn):
                return fn
    return None


def default_reboot(kind: str, port: PortInfo, reader) -> str:
    fn = _flash_reboot()
    if fn is not None:
        fn(serial=port.serial_number, bootsel=(kind == "bootsel"))
        return "rebooting into BOOTSEL" if kind == "bootsel" else "rebooting"
    if kind == "bootsel" and port.vid is not None:
        if reader.touch_1200():
            return "rebooting into BOOTSEL (1200-baud touch)"
    raise FwtoolError("this fwtool cannot reboot the board from the monitor (no reset-interface support found)",
                      "press the board's reset button, or use Ctrl-B (BOOTSEL) on a USB-stdio board")

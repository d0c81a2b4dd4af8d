"""The failures talking to a board can end in (used by discovery, reset, flashing and the monitor alike)."""
from __future__ import annotations

from fwtool.core.errors import Exit, FwtoolError, MissingTool, NoDevice


class FlashFailed(FwtoolError):
    """A device fault, a verify mismatch, a protocol error: the flash is not known to be good."""

    code = Exit.FAILED


class DeviceLost(FwtoolError):
    code = Exit.LOST_DEVICE


class WaitTimeout(FwtoolError):
    code = Exit.TIMEOUT


class UsbAccessDenied(MissingTool):
    """The OS refused to open the USB device (Linux: no udev rule / not in the group)."""


class NoUsbBackend(MissingTool):
    """pyusb is installed but found no libusb."""


__all__ = ["FlashFailed", "DeviceLost", "WaitTimeout", "UsbAccessDenied", "NoUsbBackend", "NoDevice"]

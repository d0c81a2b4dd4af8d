"""What every flash runner shares: the image to write, the result, the ``Runner`` interface.

Layering (after Zephyr's west runners and esptool): ``fwtool.devices`` finds boards (one ``Device`` per board),
``fwtool.image`` turns a UF2/ELF/HEX/BIN into one flash image, ``fwtool/devices/reset.py`` holds the reboot-to-bootloader
strategies, and one module per runner (``runners/picoboot.py``, ``runners/drive.py``) writes the image.
``runners/__init__.py`` is the registry; ``choose.py`` picks runners in the board file's order (``[flash] runners``).
"""
from __future__ import annotations

import logging
from typing import Callable, Sequence

from fwtool.core import runner as proc
from fwtool.core.errors import (BadInput, DeviceLost, FlashFailed, FwtoolError, NoDevice, NoUsbBackend,
    UsbAccessDenied, WaitTimeout)
from fwtool.devices.device import Device
from fwtool.image.firmware import Image  # the flat image the runners write (re-exported)
from fwtool.flash.request import Progress, WriteOptions, Written, no_progress

log = logging.getLogger("fwtool.flash")

__all__ = ["Progress", "no_progress", "FlashFailed", "DeviceLost", "WaitTimeout", "UsbAccessDenied",
           "NoUsbBackend", "NoDevice", "Image", "Device", "Runner"]


class Runner:
    """One way of getting an image into a board's flash. One module per runner (``fwtool/flash/runners/``); the
    board file lists the runners that apply to it, in order of preference.

    Declared capabilities (tests/test_runner_conformance.py checks them against behaviour):
    ``verifies`` reads the flash back; ``skips_unchanged`` leaves sectors that already hold the bytes alone;
    ``resets`` starts the new firmware afterwards; ``needs_bootloader``: the board must be in its bootloader
    (``ready_modes``: the device modes it writes to); ``image_kinds``: the image kinds it takes.
    """

    name = ""
    title = ""  # for listings
    label = ""  # how messages name it: "PICOBOOT", "the BOOTSEL drive"
    verifies = False
    skips_unchanged = False
    resets = False
    needs_bootloader = False
    needs_usb = False  # asked for explicitly without libusb: NoUsbBackend before anything else
    image_kinds: frozenset = frozenset()
    ready_modes: tuple = ()
    missing = "nothing to flash with"  # completes "no permission to open ... and <missing>"
    can_wait = False  # when not usable yet, ``wait_until_usable`` may make it so (a drive being mounted)

    def settings(self, board) -> dict:
        """This runner's table from the board file (``[flash.<name>]``)."""
        return dict(getattr(board, "runner_settings", {}).get(self.name, {}))

    def accepts(self, image: Image) -> None:
        """Refuse an image kind this runner does not take, before anything is written."""
        if image.kind not in self.image_kinds:
            raise BadInput(f"the {self.name} runner cannot flash a .{image.kind} image",
                           f"pass one of: {', '.join('.' + k for k in sorted(self.image_kinds))}")

    def usable(self, device: Device) -> tuple[bool, str]:
        """(usable now, why not) for a board already in its bootloader."""
        raise NotImplementedError

    def supports(self, board) -> tuple[bool, str]:
        """(can write this board's part with what is installed, why not): asked before any device is looked at
        (e.g. an OpenOCD without a driver for the part); ``auto`` skips runners that cannot."""
        return True, ""

    def refuse_board(self, board, why: str) -> FwtoolError:
        """The error when this runner was asked for explicitly and ``supports`` said no."""
        return BadInput(f"the {self.name} runner cannot flash {board.name}: {why}", "use --method auto")

    def refuse(self, device: Device, found, why: str) -> FwtoolError:
        """The error when this runner was asked for explicitly and ``usable`` said no."""
        return NoDevice(f"{self.label} is not available: {why}", "see 'fwtool devices'")

    def wait_until_usable(self, device: Device, boards, just_rebooted: bool, timeout: float,
                          error: FwtoolError | None = None) -> Device:
        raise error or NoDevice(f"{self.label} is not available for {device.describe()}", "see 'fwtool devices'")

    def flash(self, image: Image, device: Device, board, opts: WriteOptions) -> Written:
        """Write, check and (normally) start the image (``opts``: verify, skip-unchanged, reboot, timeout,
        progress; fwtool/flash/request.py). Returns the common core of the result and the runner's details."""
        raise NotImplementedError

    def doctor_rows(self) -> list[dict]:
        """Rows for 'fwtool doctor' (e.g. the external tool this runner starts)."""
        return []

    def run_tool(self, cmd: Sequence[str], on_step: Callable[[str], None] | None = None, **kw):
        """Run an external tool (pyOCD, OpenOCD, ...) through fwtool.core.runner with its command line logged
        (the ``fwtool.flash`` logger, and the step line ``-v``/build.log show). No runner starts a process
        another way."""
        def logged(line: str) -> None:
            log.info("%s: %s", self.name, line)
            if on_step is not None:
                on_step(f"run       {line}")

        return proc.capture(cmd, on_command=logged, **kw)

"""The ``samba`` runner: Arduino's "SAM-BA extended" 2.0 bootloader on the Nano 33 BLE boards, in Python on
pyserial (protocol, chip facts and commands: fwtool/flash/samba/).

Declared capabilities: it needs the bootloader (a running app is rebooted into it by the 1200-baud touch on its
CDC port, ``[flash.reset] strategies = ["touch_1200"]`` in the board file; the flow then waits for the
bootloader's port to appear, and after ``K#`` for the application's port to come back); it verifies every page
with the bootloader's own CRC (``Z``), not by reading back; it resets into the new firmware; it writes every page
(no skipping). Images that would touch the bootloader (below the application start) are refused before the port
is opened.
"""
from __future__ import annotations

from fwtool.core.errors import DeviceLost, FwtoolError, NoDevice, UsbAccessDenied
from fwtool.devices.device import Device
from fwtool.devices.permissions import serial_fix
from fwtool.devices.serial import PORT_ERRORS, open_serial
from fwtool.flash.base import Image, Runner
from fwtool.flash.request import ProbeDetails, WriteOptions, Written
from fwtool.flash.samba import SambaClient, SambaLink, program
from fwtool.flash.samba.chips import CHIPS
from fwtool.flash.samba.commands import check_range
from fwtool.flash.samba.protocol import LOST_FIX

BAUD = 921600  # BOSSA opens USB ports at 921600 first (the CDC bootloader ignores the rate)
ENTER_FIX = "double-tap the board's reset button to enter the bootloader (the LED pulses), then flash again"


class SambaRunner(Runner):
    name = "samba"
    title = "Arduino SAM-BA extended bootloader over USB CDC (verified by the bootloader's CRC)"
    label = "the SAM-BA bootloader"
    verifies = True  # Z: the bootloader's CRC-16 of every written page against the image's
    skips_unchanged = False
    resets = True  # K#
    needs_bootloader = True
    image_kinds = frozenset({"bin", "hex", "elf"})  # via the flattened image
    ready_modes = ("bootsel",)  # the board in its bootloader, with its CDC port
    missing = "no SAM-BA bootloader port"

    def chip_for_board(self, board):
        ident = self.settings(board).get("chip", "nRF52840-QIAA")
        return CHIPS[ident]

    def usable(self, device: Device) -> tuple[bool, str]:
        if device.mode != "bootsel" or not device.port or device.picoboot is not None:
            return False, "the board is not in its SAM-BA bootloader (no bootloader serial port)"
        return True, ""

    def refuse(self, device: Device, found, why: str) -> FwtoolError:
        return NoDevice(f"{self.label} is not available: {why}", ENTER_FIX)

    def flash(self, image: Image, device: Device, board, opts: WriteOptions = WriteOptions()) -> Written:
        self.accepts(image)
        chip = self.chip_for_board(board)
        check_range(chip, image.base, len(image.data))  # before the port is opened
        ok, why = self.usable(device)
        if not ok:
            raise self.refuse(device, None, why)
        link = SambaLink(self.open(device.port), f"the bootloader port {device.port}")
        try:
            client = SambaClient(link)
            found = client.hello()
            if found.ident != chip.ident:
                raise FwtoolError(f"the bootloader reports {found.ident}, the board file expects {chip.ident}",
                                  "pass the right --board")
            r = program(client, image.base, bytes(image.data), verify=opts.verify, reset=opts.reboot,
                        progress=opts.progress)
        finally:
            link.close()
        return Written(bytes_total=len(image.data), bytes_written=r["bytes_written"], bytes_skipped=0,
                       sectors_written=r["sectors_written"], sectors_skipped=0, verified=r["verified"],
                       rebooted=r["rebooted"], write_seconds=r["write_seconds"],
                       details=ProbeDetails(probe=None, segments=[f"0x{image.base:08X}+{len(image.data)}"],
                                            extra={"bootloader": r["bootloader"], "chip": r["chip"],
                                                   "port": device.port}))

    @staticmethod
    def open(port: str):
        try:
            return open_serial(port, BAUD, 0.5, write_timeout=5.0)
        except PORT_ERRORS as e:
            if isinstance(e.__context__, PermissionError) or "Permission denied" in str(e):
                raise UsbAccessDenied(f"no permission to open {port}", serial_fix()) from e
            raise DeviceLost(f"cannot open the bootloader port {port}: {e}", LOST_FIX) from e

"""The BOOTSEL drive runner: copy a UF2 to the mounted RPI-RP2 drive (helpers: fwtool/flash/drive.py).

Cannot read the flash back (``verifies = False``); the bootrom reboots by itself after the copy.
"""
from __future__ import annotations

from fwtool.core.errors import BadInput, FwtoolError, NoDevice, WaitTimeout
from fwtool.devices import usb as usbdevices
from fwtool.devices.device import Device
from fwtool.devices.reset import wait_for
from fwtool.flash.base import Image, Runner
from fwtool.flash.drive import check_uf2, copy, wait_gone
from fwtool.flash.request import DriveDetails, WriteOptions, Written
from fwtool.image import uf2


def _drives_near(found, device: Device) -> list[Device]:
    return [t for t in found.targets if t.drive is not None and
            (not device.location or t.location in (None, device.location))]


class DriveRunner(Runner):
    name = "drive"
    title = "copy the UF2 to the RPI-RP2 drive"
    label = "the BOOTSEL drive"
    verifies = False
    skips_unchanged = False
    resets = True  # the bootrom reboots after the last block
    needs_bootloader = True
    image_kinds = frozenset({"uf2", "bin", "elf"})  # a UF2 as it is; a BIN/ELF image is wrapped in UF2 blocks
    ready_modes = ("drive",)
    missing = "no RPI-RP2 drive is mounted"
    can_wait = True

    def usable(self, device: Device) -> tuple[bool, str]:
        if device.drive is None:
            return False, "no mounted RPI-RP2 drive"
        return True, ""

    def wait_until_usable(self, device: Device, boards, just_rebooted: bool, timeout: float,
                          error: FwtoolError | None = None) -> Device:
        """The device with its drive mounted (a board that just rebooted gets ``timeout`` s to mount it)."""
        if device.drive is not None:
            return device
        if not just_rebooted:  # a board sitting in BOOTSEL is mounted by now if it ever will be
            drives = _drives_near(usbdevices.scan(boards), device)
            if len(drives) == 1:
                return drives[0]
            raise error or NoDevice("no mounted RPI-RP2 drive for this board",
                                    "mount it (desktop automount does) and pass --drive PATH, or use PICOBOOT")

        def pred(found):
            d = _drives_near(found, device)
            return d[0] if len(d) == 1 else None

        try:
            return wait_for(boards, pred, timeout, "no RPI-RP2 drive was mounted",
                                  "mount it and pass --drive PATH, or allow PICOBOOT (udev rule)")
        except WaitTimeout:
            if error is not None:
                raise error
            raise

    def flash(self, image: Image, device: Device, board, opts: WriteOptions = WriteOptions()) -> Written:
        self.accepts(image)
        data = image.uf2 if image.uf2 is not None else uf2.from_bin(image.data, image.base, board.uf2_family_id)
        check_uf2(data, board)
        if not opts.reboot:
            raise BadInput("--no-reboot is not possible with the drive method (the bootrom reboots after the copy)",
                           "use --method picoboot")
        copy(device.drive, data, opts.progress, chip=uf2.chip_of(board.uf2_family_id))
        how = wait_gone(device.drive, opts.timeout, opts.app_seen)
        return Written(bytes_total=len(image.data), bytes_written=len(image.data), bytes_skipped=0,
                       sectors_written=None, sectors_skipped=None, verified=False, rebooted=True,
                       details=DriveDetails(uf2_bytes=len(data), confirmed_by=how))

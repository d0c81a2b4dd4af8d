"""The PICOBOOT runner: the RP2040 bootrom's vendor USB interface (the protocol client: fwtool/devices/picoboot.py;
the writing algorithm: fwtool/flash/picoboot.py).

Writes only the 4 KiB sectors that differ, reads everything back, then reboots into the new firmware.
"""
from __future__ import annotations

import time

from fwtool.core.errors import DeviceLost, FwtoolError, NoDevice, NoUsbBackend, UsbAccessDenied
from fwtool.devices import usb as usbdevices
from fwtool.devices.device import Device
from fwtool.devices.permissions import NO_BACKEND_MSG, no_backend_fix, udev_fix
from fwtool.flash.base import Image, Runner
from fwtool.devices.chips import chip_of_usb
from fwtool.devices.picoboot import EXCLUSIVE, NOT_EXCLUSIVE, PicobootClient
from fwtool.flash.picoboot import program
from fwtool.flash.request import WriteOptions, Written


class PicobootRunner(Runner):
    name = "picoboot"
    title = "PICOBOOT over USB (verified by read-back)"
    label = "PICOBOOT"
    verifies = True
    skips_unchanged = True
    resets = True
    needs_bootloader = True
    needs_usb = True
    image_kinds = frozenset({"uf2", "bin", "elf", "hex"})  # via the flattened image
    ready_modes = ("bootsel",)

    def usable(self, device: Device) -> tuple[bool, str]:
        if device.mode != "bootsel" or device.usb is None or device.picoboot is None:
            return False, "no PICOBOOT interface (board not on USB in BOOTSEL mode, or pyusb has no backend)"
        if device.access is False:
            return False, "no permission to open the USB device"
        return True, ""

    def refuse(self, device: Device, found, why: str) -> FwtoolError:
        if found is not None and not found.usb_ok:
            return NoUsbBackend(NO_BACKEND_MSG, no_backend_fix())
        if device.access is False:
            return UsbAccessDenied(f"no permission to open the RP2040 in BOOTSEL mode ({device.describe()})",
                                   udev_fix())
        return NoDevice(f"PICOBOOT is not available: {why}", "hold BOOTSEL while plugging the board in")

    def flash(self, image: Image, device: Device, board, opts: WriteOptions = WriteOptions()) -> Written:
        self.accepts(image)
        itf, out_ep, in_ep = device.picoboot
        transport = usbdevices.backend().open_picoboot(device.usb, itf)
        client = PicobootClient(transport, itf, out_ep, in_ep)
        flash = (board.flash_base, board.flash_base + board.flash_bytes)
        t0 = time.monotonic()
        try:
            client.reset()
            client.exclusive(EXCLUSIVE)
            result = program(client, image, flash, verify=opts.verify, skip_same=opts.skip_same,
                             progress=opts.progress)
            result.write_seconds = round(time.monotonic() - t0, 3)
            if opts.reboot:
                client.reboot_normal(chip_of_usb(device.vid, device.pid), 500)
            else:
                client.exclusive(NOT_EXCLUSIVE)
            result.rebooted = opts.reboot
        except BaseException as e:
            if not isinstance(e, DeviceLost):
                try:
                    client.reset()  # drop exclusive access so the RPI-RP2 drive works again; best effort
                except Exception:
                    pass
            raise
        finally:
            usbdevices.backend().close(transport)
        return result

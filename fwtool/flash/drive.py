"""The BOOTSEL mass-storage drive (RPI-RP2): copy a UF2 onto it, confirm by the drive going away.

Used with ``--method drive`` and automatically when PICOBOOT cannot be used (no libusb, no USB permission).
It writes only to a folder whose ``INFO_UF2.TXT`` says ``Board-ID: RPI-RP2`` and only a UF2 every block of which
the RP2040 bootrom would accept (it silently ignores the others). The drive cannot read the flash back, so the
result says ``verified: false``; success is confirmed by the bootrom rebooting (drive gone, app port back).
"""
from __future__ import annotations

import errno as errno_mod
import os
from pathlib import Path

from fwtool.image import firmware
from fwtool.image.check import check_for_board
from fwtool.devices import usb as usbdevices
from fwtool.devices.drives import is_rp2_drive, require_rp2_drive
from fwtool.core.errors import DeviceLost, FlashFailed, WaitTimeout
from fwtool.flash.base import Progress, no_progress

DEST_NAME = "FWTOOL.UF2"  # any name works; the bootrom never shows the file

def check_uf2(data: bytes, board) -> None:
    """Refuse a UF2 the bootrom would ignore (silently) in whole or in part: the one reader and board check."""
    check_for_board(firmware.parse(data, "the UF2 to copy", "uf2"), board, boot_check=False)


def copy(drive: Path, data: bytes, progress: Progress = no_progress, chunk: int = 64 * 1024,
         chip: str | None = None) -> Path:
    """Write the UF2 to the drive and force it out to the device (fsync). Re-checks the drive (and that it is
    ``chip``'s: "RP2040" / "RP2350") first."""
    require_rp2_drive(drive, chip)
    dest = Path(drive) / DEST_NAME
    done = 0
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o644)
        try:
            while done < len(data):
                n = os.write(fd, data[done:done + chunk])
                done += n
                progress("copying", done, len(data))
            os.fsync(fd)
        finally:
            try:
                os.close(fd)
            except OSError:
                pass  # the bootrom may already be rebooting once every block arrived
    except OSError as e:
        if done >= len(data) and e.errno in (errno_mod.EIO, errno_mod.ENODEV, errno_mod.ENOENT):
            return dest  # fsync raced the reboot: confirmation below decides
        if e.errno in (errno_mod.EIO, errno_mod.ENODEV, errno_mod.ENOENT):
            raise DeviceLost(f"the BOOTSEL drive went away after {done:,} of {len(data):,} bytes ({e.strerror})",
                             "replug the board holding BOOTSEL and run 'fwtool flash' again") from e
        if e.errno in (errno_mod.EACCES, errno_mod.EROFS, errno_mod.EPERM):
            raise FlashFailed(f"cannot write to {drive}: {e.strerror}",
                              "mount the drive writable for your user (desktop automount does)") from e
        if e.errno == errno_mod.ENOSPC:
            raise FlashFailed(f"{drive} reports no space for {len(data):,} bytes", "the image is too big") from e
        raise FlashFailed(f"writing {dest} failed: {e}", "replug the board holding BOOTSEL and try again") from e
    return dest


def wait_gone(drive: Path, timeout: float, app_seen=lambda: False) -> str:
    """Poll until the drive disappears (the bootrom reboots ~1 s after the last block) or the app shows up."""
    be = usbdevices.backend()
    deadline = be.monotonic() + timeout
    while True:
        if not is_rp2_drive(drive):
            return "drive ejected"
        if app_seen():
            return "app started"
        if be.monotonic() >= deadline:
            raise WaitTimeout(f"the BOOTSEL drive {drive} was still there {timeout:.0f} s after the copy: the "
                              "bootrom did not take the image", "check the UF2 ('fwtool flash --method picoboot' "
                              "reports the cause), replug holding BOOTSEL and try again")
        be.sleep(usbdevices.POLL_S)

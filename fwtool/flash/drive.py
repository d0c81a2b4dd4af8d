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

from fwtool.image import uf2
from fwtool.core.errors import BadInput
from fwtool.flash.base import (DeviceLost, FlashFailed, FlashMethod, Image, NoDevice, Progress, Target, WaitTimeout, no_progress)

INFO = "INFO_UF2.TXT"
BOARD_ID = "Board-ID: RPI-RP2"
DEST_NAME = "FWTOOL.UF2"  # any name works; the bootrom never shows the file

FAMILY_NAMES = {0xE48BFF56: "RP2040", 0xE48BFF59: "RP2350 ARM-S", 0xE48BFF5A: "RP2350 RISC-V",
                0xE48BFF5B: "RP2350 ARM-NS", 0xE48BFF57: "absolute", 0xE48BFF58: "data",
                0xE48BFF55: "CYW43 firmware", 0x68ED2B88: "SAMD21", 0x55114460: "SAMD51",
                0xADA52840: "nRF52840", 0x1C5F21B0: "ESP32", 0xBFDD4EEE: "ESP32-S2", 0xC47E5767: "ESP32-S3"}


def family_name(fid: int) -> str:
    return f"0x{fid:08X}" + (f" ({FAMILY_NAMES[fid]})" if fid in FAMILY_NAMES else "")


def read_info(path: Path) -> str | None:
    try:
        return (Path(path) / INFO).read_text(errors="replace")
    except OSError:
        return None


def is_rp2_drive(path: Path) -> bool:
    info = read_info(path)
    return info is not None and any(line.strip() == BOARD_ID for line in info.splitlines())


def require_rp2_drive(path: Path) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise NoDevice(f"{path} is not a folder, so not a mounted BOOTSEL drive",
                       "hold BOOTSEL while plugging the board in, then pass its mount point "
                       "(e.g. /media/$USER/RPI-RP2)")
    info = read_info(path)
    if info is None:
        raise NoDevice(f"{path} has no {INFO}: not a UF2 bootloader drive; nothing was written",
                       "pass the RPI-RP2 drive's mount point")
    if not any(line.strip() == BOARD_ID for line in info.splitlines()):
        found = next((ln.strip() for ln in info.splitlines() if ln.startswith("Board-ID:")), "no Board-ID line")
        raise NoDevice(f"{path} is a UF2 drive for another board ({found}), not an RP2040 (RPI-RP2); "
                       "nothing was written", "pass the RPI-RP2 drive of the RP2040 board")
    return path


def check_uf2(data: bytes, board) -> None:
    """Refuse a UF2 the RP2040 bootrom would ignore (silently) in whole or in part."""
    try:
        blocks = uf2.parse(data)
    except uf2.UF2Error as e:
        raise BadInput(f"not a valid UF2 file: {e}", "rebuild it with 'fwtool build'") from e
    fams = sorted({b.family_id for b in blocks if b.flags & uf2.FLAG_FAMILY_ID_PRESENT})
    if fams != [board.uf2_family_id] or any(not b.flags & uf2.FLAG_FAMILY_ID_PRESENT for b in blocks):
        got = ", ".join(family_name(f) for f in fams) or "no family id"
        raise BadInput(f"the UF2 is for family {got}, not {family_name(board.uf2_family_id)}: the RP2040 bootrom "
                       "would silently ignore it", f"build it for {board.name} ('fwtool build --board {board.name}')")
    try:
        uf2.validate(data, board.uf2_family_id, min(b.address for b in blocks))
    except uf2.UF2Error as e:
        raise BadInput(f"the RP2040 bootrom would not accept this UF2: {e}", "rebuild it with 'fwtool build'") from e
    bad = [b for b in blocks if not (board.flash_base <= b.address
                                     and b.address + b.payload_size <= board.flash_base + board.flash_bytes)]
    if bad:
        raise BadInput(f"UF2 block at 0x{bad[0].address:08X} is outside {board.name}'s flash",
                       f"build it for {board.name}")


def copy(drive: Path, data: bytes, progress: Progress = no_progress, chunk: int = 64 * 1024) -> Path:
    """Write the UF2 to the drive and force it out to the device (fsync). Re-checks the drive first."""
    require_rp2_drive(drive)
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
    from fwtool.devices import usb as usbdevices

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


class DriveMethod(FlashMethod):
    name = "drive"
    title = "copy the UF2 to the RPI-RP2 drive"
    verifies = False

    def usable(self, target: Target) -> tuple[bool, str]:
        if target.drive is None:
            return False, "no mounted RPI-RP2 drive"
        return True, ""

    def flash(self, image: Image, target: Target, board, *, verify: bool = True, skip_same: bool = True,
              reboot: bool = True, progress: Progress = no_progress, timeout: float = 15.0,
              app_seen=lambda: False) -> dict:
        data = image.uf2 if image.uf2 is not None else uf2.from_bin(image.data, image.base, board.uf2_family_id)
        check_uf2(data, board)
        if not reboot:
            raise BadInput("--no-reboot is not possible with the drive method (the bootrom reboots after the copy)",
                           "use --method picoboot")
        copy(target.drive, data, progress)
        how = wait_gone(target.drive, timeout, app_seen)
        return {"bytes_total": len(image.data), "bytes_written": len(image.data), "bytes_skipped": 0,
                "sectors_written": None, "sectors_skipped": None, "verified": False, "rebooted": True,
                "uf2_bytes": len(data), "confirmed_by": how}

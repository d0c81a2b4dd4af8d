"""What every flash method shares: the image to write, the board found on USB, the result, the errors.

Layering (after Zephyr's west runners and esptool): ``image.py`` turns a UF2/ELF/BIN into one flash image,
``usbdevices.py`` finds boards, ``reset.py`` gets a running board into BOOTSEL, and one module per method
(``picoboot.py``, ``drive.py``) writes the image. ``__init__.py`` holds the registry and picks the method.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from fwtool.core.errors import Exit, FwtoolError, MissingTool, NoDevice

# progress(phase, done_bytes, total_bytes): phase is a short verb ("checking", "writing", "verifying", "copying")
Progress = Callable[[str, int, int], None]


def no_progress(phase: str, done: int, total: int) -> None:
    pass


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


__all__ = ["Progress", "no_progress", "FlashFailed", "DeviceLost", "WaitTimeout", "UsbAccessDenied",
           "NoUsbBackend", "NoDevice", "Image", "Target", "FlashMethod"]


@dataclass
class Image:
    """Bytes to put in flash at ``base`` (already checked against the board)."""

    base: int
    data: bytes
    source: str  # the file it came from
    kind: str  # "uf2" | "elf" | "bin"
    uf2: Optional[bytes] = None  # the UF2 file itself when kind == "uf2" (the drive method copies it unchanged)
    notes: list = field(default_factory=list)

    @property
    def end(self) -> int:
        return self.base + len(self.data)

    def to_dict(self) -> dict:
        return {"path": self.source, "kind": self.kind, "base": f"0x{self.base:08X}", "bytes": len(self.data)}


@dataclass
class Target:
    """One physical board as found on this machine, in one mode.

    ``mode``: "bootsel" (bootrom on USB: PICOBOOT, maybe also a mounted drive), "app" (a running pico-sdk app with
    USB stdio: CDC port and/or reset interface) or "drive" (only a mounted RPI-RP2 drive was found).
    ``location`` is the USB port path ("1-1.3"): it survives the re-enumeration between app and BOOTSEL mode, which
    is how a board is tracked through a reboot. ``serial`` is the app's serial (the flash unique id, unique per
    board); the bootrom's serial is the same on every RP2040, so in BOOTSEL mode ``serial`` is None.
    """

    mode: str
    location: Optional[str] = None
    serial: Optional[str] = None
    vid: Optional[int] = None
    pid: Optional[int] = None
    usb: object = None  # the pyusb device (or the test double the discovery hook returns)
    port: Optional[str] = None  # the app's serial port (/dev/ttyACM0, COM5)
    drive: Optional[Path] = None  # a mounted, verified RPI-RP2 drive
    reset_interface: Optional[int] = None  # app: number of the 0xFF/0x00/0x01 reset interface
    picoboot: Optional[tuple] = None  # bootsel: (interface, out_ep, in_ep)
    access: Optional[bool] = None  # False: the OS refused to open it; None: not tried
    product: Optional[str] = None

    @property
    def usb_id(self) -> str:
        return "" if self.vid is None else f"{self.vid:04X}:{self.pid:04X}"

    def key(self) -> tuple:
        return (self.mode, self.location, self.serial, self.port, str(self.drive))

    def matches(self, wanted: str) -> bool:
        w = wanted.strip().lower()
        return any(v is not None and str(v).lower() == w
                   for v in (self.serial, self.location, self.port, self.drive))

    def describe(self) -> str:
        bits = [{"bootsel": "BOOTSEL", "app": "running app", "drive": "BOOTSEL drive"}[self.mode]]
        if self.serial:
            bits.append(f"serial {self.serial}")
        if self.port:
            bits.append(self.port)
        if self.location:
            bits.append(f"usb {self.location}")
        if self.usb_id:
            bits.append(self.usb_id)
        if self.drive:
            bits.append(f"drive {self.drive}")
        if self.access is False:
            bits.append("no USB permission")
        return ", ".join(bits)

    def to_dict(self) -> dict:
        return {"mode": self.mode, "serial": self.serial, "location": self.location, "usb_id": self.usb_id or None,
                "port": self.port, "drive": None if self.drive is None else str(self.drive),
                "picoboot": self.picoboot is not None, "reset_interface": self.reset_interface,
                "access": self.access, "product": self.product}


class FlashMethod:
    """One way of getting an image into flash. Subclasses register themselves in ``fwtool.flash.METHODS``."""

    name = ""
    title = ""
    verifies = False  # can read the flash back

    def usable(self, target: Target) -> tuple[bool, str]:
        """(usable now, why not) for a board already in BOOTSEL mode."""
        raise NotImplementedError

    def flash(self, image: Image, target: Target, board, *, verify: bool = True, skip_same: bool = True,
              reboot: bool = True, progress: Progress = no_progress, timeout: float = 15.0) -> dict:
        """Write, check and (normally) start the image. Returns the counters of the result dict."""
        raise NotImplementedError

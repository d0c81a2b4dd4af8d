"""One ``Device``: one physical board on this machine with all the interfaces it shows in its current mode.

A board is one Device whatever it exposes: in app mode its serial port(s) and the pico-sdk reset interface, in
BOOTSEL mode the PICOBOOT interface and the mounted drive; later a debug probe that is also the serial bridge of
the same board (a PSoC 6 KitProg3). Discovery (``fwtool.devices.discover``) merges interfaces per board.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


@dataclass
class Device:
    """One physical board as found on this machine, in one mode.

    ``mode``: "bootsel" (bootloader on USB: PICOBOOT, maybe also a mounted drive), "app" (a running app with USB
    stdio: CDC port and/or reset interface), "drive" (only a mounted bootloader drive was found), "probe" (a PSoC 6
    kit's KitProg3: CMSIS-DAP ``probe`` + its USB-UART ``port``; ``serial`` is the probe UID) or "wrong-mode" (a
    kit's programmer in a mode no runner can use, e.g. KitProg2 firmware; see fwtool/devices/probes.py).
    ``location`` is the USB port path ("1-1.3"): it survives the re-enumeration between app and BOOTSEL mode, which
    is how a board is tracked through a reboot. ``serial`` is the app's serial (the flash unique id, unique per
    board); the RP2040 bootrom's serial is the same on every chip, so in BOOTSEL mode ``serial`` is None.
    ``boards``: names of the fwtool boards whose USB ids this device matched.
    """

    mode: str
    location: Optional[str] = None
    serial: Optional[str] = None
    vid: Optional[int] = None
    pid: Optional[int] = None
    usb: object = None  # the pyusb device (or the test double the backend returns)
    port: Optional[str] = None  # the app's (first) serial port (/dev/ttyACM0, COM5)
    drive: Optional[Path] = None  # a mounted, verified bootloader drive
    reset_interface: Optional[int] = None  # app: number of the 0xFF/0x00/0x01 reset interface
    picoboot: Optional[tuple] = None  # bootsel: (interface, out_ep, in_ep)
    access: Optional[bool] = None  # False: the OS refused to open it; None: not tried
    product: Optional[str] = None
    boards: tuple = ()
    ports: list = field(default_factory=list)  # every serial port of this board (a probe may have two)
    probe: Optional[str] = None  # probe: the CMSIS-DAP interface it offers ("KitProg3 CMSIS-DAP bulk")

    @property
    def usb_id(self) -> str:
        return "" if self.vid is None else f"{self.vid:04X}:{self.pid:04X}"

    def interfaces(self) -> list[str]:
        """What this board offers now: "probe", "serial", "reset", "picoboot", "drive"."""
        have = (("probe", self.probe), ("serial", self.port), ("reset", self.reset_interface is not None),
                ("picoboot", self.picoboot is not None), ("drive", self.drive))
        return [name for name, v in have if v]

    def add_port(self, port: str) -> None:
        if port not in self.ports:
            self.ports.append(port)
        self.port = self.port or port

    def key(self) -> tuple:
        return (self.mode, self.location, self.serial, self.port, str(self.drive))

    def matches(self, wanted: str) -> bool:
        w = wanted.strip().lower()
        return any(v is not None and str(v).lower() == w
                   for v in (self.serial, self.location, self.port, self.drive, *self.ports))

    def describe(self) -> str:
        labels = {"bootsel": "BOOTSEL", "app": "running app", "drive": "BOOTSEL drive"}
        serial_boot = self.mode == "bootsel" and self.picoboot is None and self.product == "SAM-BA bootloader"
        bits = [self.product if serial_boot else labels.get(self.mode) or self.product or self.mode]
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
                "access": self.access, "product": self.product, "probe": self.probe, "ports": list(self.ports)}

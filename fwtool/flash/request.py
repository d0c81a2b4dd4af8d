"""The typed flash request and result (after Zephyr's ``RunnerConfig``): what ``flash_image`` is asked to do, what
every runner is handed, and what comes back.

* :class:`FlashRequest`: the image, the board, which attached board (``device``: app serial or USB location), the
  method, verify / skip-unchanged / reboot, the timeout, progress and step callbacks. ``checked()`` validates it
  once (``--drive`` implies the drive method and excludes any other).
* :class:`WriteOptions`: the part of the request every runner's ``flash()`` takes (one object, not eight keyword
  parameters).
* :class:`Written`: what a runner returns: the common core (bytes and sectors written and skipped, verified,
  rebooted, write time) and its own details in a typed field (:class:`PicobootDetails`, :class:`DriveDetails`,
  :class:`ProbeDetails`).
* :class:`FlashResult`: ``flash_image``'s answer: method, board, the device (serial, USB location, drive, port),
  the image, the written core, reset/started, duration, notes. ``to_dict()`` is the ``fwtool flash --json``
  object (the runner's details stay flat at the top level, as they always were). It reads as a mapping of that
  object too (``result["port"]``, ``result.get("serial")``), for callers that still take the dict.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Union

from fwtool.core.errors import BadInput
from fwtool.image.firmware import Image

# progress(phase, done_bytes, total_bytes): phase is a short verb ("checking", "writing", "verifying", "copying")
Progress = Callable[[str, int, int], None]


def no_progress(phase: str, done: int, total: int) -> None:
    pass


def _never() -> bool:
    return False


@dataclass(frozen=True)
class WriteOptions:
    """What every runner's ``flash(image, device, board, options)`` is given beside the image and the board."""

    verify: bool = True
    skip_same: bool = True
    reboot: bool = True
    timeout: float = 15.0
    progress: Progress = no_progress
    app_seen: Callable[[], bool] = _never  # the new app is on USB already (the drive runner stops waiting)


@dataclass(frozen=True)
class FlashRequest:
    """One flash, as asked for. ``image``: a path (read and checked for the board) or an already flat Image."""

    image: Union[Path, str, Image]
    board: object = None  # a Board, a board name, or None (told by a UF2's family)
    device: str | None = None  # which attached board: app serial or USB location (--serial)
    method: str = "auto"
    kind: str | None = None  # the image kind when the file name does not say
    drive: Path | None = None  # a mounted RPI-RP2 drive (implies method "drive")
    verify: bool = True
    skip_same: bool = True
    reboot: bool = True
    timeout: float = 10.0  # seconds to wait for the board after each reboot
    wait_app: float | None = None  # seconds to wait for the app's USB port afterwards (None: 5 on USB stdio)
    boot2_check: bool = True
    progress: Progress | None = None
    on_step: Callable[[str], None] | None = None

    def checked(self) -> "FlashRequest":
        """The request with ``--drive`` folded into the method; BadInput when they contradict each other."""
        if self.drive is None:
            return self
        if self.method not in ("auto", "drive"):
            raise BadInput(f"--drive and --method {self.method} exclude each other", "drop one of them")
        return replace(self, method="drive")

    def write_options(self, app_seen: Callable[[], bool] = _never) -> WriteOptions:
        return WriteOptions(verify=self.verify, skip_same=self.skip_same, reboot=self.reboot, timeout=self.timeout,
                            progress=self.progress or no_progress, app_seen=app_seen)

    def step(self, msg: str) -> None:
        if self.on_step is not None:
            self.on_step(msg)


# ---- what a runner returns ------------------------------------------------------------------------------------
@dataclass
class PicobootDetails:
    """PICOBOOT: the sectors the image covers (written + skipped)."""

    sectors_total: int

    def to_dict(self) -> dict:
        return {"sectors_total": self.sectors_total}


@dataclass
class DriveDetails:
    """The BOOTSEL drive: the UF2 bytes copied and what showed the copy was taken."""

    uf2_bytes: int
    confirmed_by: str

    def to_dict(self) -> dict:
        return {"uf2_bytes": self.uf2_bytes, "confirmed_by": self.confirmed_by}


@dataclass
class ProbeDetails:
    """A debug-probe runner (pyOCD, OpenOCD, make program): the probe and the segments written; ``extra`` holds
    the runner's own facts (pyOCD's target, OpenOCD's binary, the ModusToolbox project)."""

    probe: str | None
    segments: list[str]
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"segments": list(self.segments), "probe": self.probe, **self.extra}


Details = Union[PicobootDetails, DriveDetails, ProbeDetails]


@dataclass
class Written:
    """The common core of every runner's result."""

    bytes_total: int
    bytes_written: int
    bytes_skipped: int
    sectors_written: int | None  # None: the runner does not work in sectors
    sectors_skipped: int | None
    verified: bool
    rebooted: bool
    write_seconds: float | None = None
    details: Details | None = None

    def to_dict(self) -> dict:
        return {"bytes_total": self.bytes_total, "bytes_written": self.bytes_written,
                "bytes_skipped": self.bytes_skipped, "sectors_written": self.sectors_written,
                "sectors_skipped": self.sectors_skipped, "verified": self.verified, "rebooted": self.rebooted,
                "write_seconds": self.write_seconds, **(self.details.to_dict() if self.details else {})}


@dataclass
class VirtualFlash:
    """On the virtual board: what its bootrom and emulated flash chip saw (fwtool/emulator/virtual_flash.py)."""

    bootrom: str
    flash_chip: str
    sector_erases: int
    page_programs: int
    flash_state: str
    serial_url: str
    seconds: float

    def to_dict(self) -> dict:
        return {"bootrom": self.bootrom, "flash_chip": self.flash_chip, "sector_erases": self.sector_erases,
                "page_programs": self.page_programs, "flash_state": self.flash_state,
                "serial_url": self.serial_url, "seconds": self.seconds}


@dataclass
class FlashResult(Mapping):
    """``flash_image``'s result (see the module docstring)."""

    method: str
    board: str
    serial: str | None  # the app's serial (a KitProg3's UID for a PSoC 6 kit)
    location: str | None
    drive: str | None
    image: dict
    written: Written
    reset: str | None = None  # how a running app was rebooted into its bootloader
    started: bool | None = None  # the app came back on USB (None: not waited for)
    port: str | None = None  # the app's serial port, when it came back
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    virtual: VirtualFlash | None = None

    # the common core, named
    @property
    def bytes_written(self) -> int:
        return self.written.bytes_written

    @property
    def verified(self) -> bool:
        return self.written.verified

    @property
    def details(self) -> Details | None:
        return self.written.details

    @property
    def bytes_per_second(self) -> int | None:
        w = self.written.write_seconds
        return round(self.written.bytes_total / w) if w else None

    def to_dict(self) -> dict:
        out = {"ok": True, "method": self.method, "board": self.board, "serial": self.serial,
               "location": self.location, "drive": self.drive, "image": self.image, **self.written.to_dict(),
               "reset": self.reset, "started": self.started, "port": self.port, "seconds": round(self.seconds, 3),
               "bytes_per_second": self.bytes_per_second, "notes": list(self.notes)}
        if self.virtual is not None:
            out["virtual"] = self.virtual.to_dict()
            out["sectors_erased"] = self.virtual.sector_erases
        return out

    # a read-only mapping of to_dict(), for callers that take the dict
    def __getitem__(self, key: str):
        return self.to_dict()[key]

    def __iter__(self):
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

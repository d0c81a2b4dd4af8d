"""Serial ports: finding the board's port, and following it (by USB serial number) when it re-enumerates.

All port listing goes through :class:`Discovery`, whose ``list_ports`` callable defaults to pyserial's
``serial.tools.list_ports.comports``; tests inject a fake list, the rest of the code path is the same.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from dataclasses import dataclass, field
from typing import Callable, Iterable

from fwtool.core.boards import Board, all_boards, get_board
from fwtool.core.errors import FwtoolError, NoDevice
from fwtool.devices.last_flash import LAST_FLASH_FILE, read_last_flash
from fwtool.devices.probes import board_ids, probe_ids
from fwtool.devices.serial import BAUD, is_url
from fwtool.devices.usb import backend
from fwtool.firmware.result import last_build

# USB-UART bridges a --uart board's console is usually wired to (VID, PID) -> name.
USB_UART_BRIDGES: dict[tuple[int, int], str] = {
    (0x0403, 0x6001): "FTDI FT232R", (0x0403, 0x6010): "FTDI FT2232", (0x0403, 0x6011): "FTDI FT4232",
    (0x0403, 0x6014): "FTDI FT232H", (0x0403, 0x6015): "FTDI FT-X",
    (0x10C4, 0xEA60): "Silicon Labs CP210x", (0x10C4, 0xEA70): "Silicon Labs CP2105",
    (0x1A86, 0x7523): "WCH CH340", (0x1A86, 0x55D4): "WCH CH9102", (0x1A86, 0x7522): "WCH CH340K",
    (0x067B, 0x2303): "Prolific PL2303",
    (0x2E8A, 0x000C): "Raspberry Pi Debug Probe", (0x2E8A, 0x0004): "Raspberry Pi picoprobe",
    (0x0D28, 0x0204): "Arm DAPLink (CMSIS-DAP)", (0x04B4, 0xF155): "Cypress KitProg3",
}

def usb_id(vid: int | None, pid: int | None) -> str:
    return "" if vid is None or pid is None else f"{vid:04X}:{pid:04X}"


@dataclass(frozen=True)
class PortInfo:
    """What we know about one serial port (a copy of pyserial's ListPortInfo fields we use)."""

    device: str
    vid: int | None = None
    pid: int | None = None
    serial_number: str | None = None
    description: str = ""
    location: str | None = None

    @classmethod
    def from_listportinfo(cls, p) -> "PortInfo":
        return cls(device=p.device, vid=getattr(p, "vid", None), pid=getattr(p, "pid", None),
                   serial_number=getattr(p, "serial_number", None) or None,
                   description=getattr(p, "description", "") or "", location=getattr(p, "location", None))

    @property
    def usb_id(self) -> str:
        return usb_id(self.vid, self.pid)

    @property
    def interface(self) -> str | None:
        """USB interface part of the location ("1-1.2:1.0" -> "1.0"): tells apart ports of one multi-port chip."""
        if self.location and ":" in self.location:
            return self.location.rsplit(":", 1)[1]
        return None

    def describe(self, long: bool = True) -> str:
        bits = []
        if self.usb_id:
            bits.append(f"USB {self.usb_id}")
        if self.serial_number:
            bits.append(f"serial {self.serial_number}")
        if long and self.description and self.description not in ("n/a", self.device):
            bits.append(self.description)
        return self.device + (f" ({', '.join(bits)})" if bits else "")

    def to_dict(self) -> dict:
        return {"device": self.device, "usb_id": self.usb_id or None, "serial": self.serial_number,
                "description": self.description}


@dataclass(frozen=True)
class FollowedPort:
    """The board being followed: by USB serial number (survives re-enumeration) or by a fixed device/URL."""

    serial_number: str | None = None
    device: str | None = None  # fixed path or pyserial URL, used when there is no serial number
    interface: str | None = None
    label: str = ""

    def describe(self) -> str:
        if self.serial_number:
            return f"the board with USB serial {self.serial_number}"
        return self.device or "?"


class Discovery:
    """Lists serial ports. ``list_ports`` returns pyserial ListPortInfo-like objects; by default the one OS
    backend's port list (``fwtool.devices.usb.backend().serial_ports``), so tests replace both at one seam."""

    def __init__(self, list_ports: Callable[[], Iterable] | None = None):
        self._list_ports = list_ports or (lambda: backend().serial_ports())

    def ports(self) -> list[PortInfo]:
        try:
            return [PortInfo.from_listportinfo(p) for p in self._list_ports()]
        except OSError:  # a device vanishing mid-scan; the next poll sees a consistent list
            return []

    def find(self, target: FollowedPort) -> PortInfo | None:
        """Where the target is now, or None. Fixed devices/URLs are returned as-is (opening them is the test)."""
        if not target.serial_number:
            return PortInfo(device=target.device or "")
        matches = [p for p in self.ports() if p.serial_number == target.serial_number]
        if target.interface:
            same = [p for p in matches if p.interface == target.interface]
            matches = same or matches
        return matches[0] if matches else None


@dataclass
class Wanted:
    """What the initial search looks for."""

    usb_ids: dict[tuple[int, int], str] = field(default_factory=dict)  # (vid, pid) -> what it is
    serial: str | None = None  # must be this board (--serial, or fwtool run after flashing)
    prefer_serial: str | None = None  # the board flashed last, if several match
    prefer_recent: bool = False  # the last flash was seconds ago: give that board time to re-enumerate
    what: str = "board"  # for messages

    def matches(self, p: PortInfo) -> bool:
        if self.serial:
            return p.serial_number == self.serial
        return p.vid is not None and (p.vid, p.pid) in self.usb_ids


def wanted_for(board=None, uart: bool = False, serial: str | None = None, last_flash: dict | None = None) -> Wanted:
    """Build the search from a board (fwtool.boards.Board or None) and the last-flash record."""
    last_flash = last_flash or {}
    if board is not None and board_ids(board):  # a PSoC 6 kit: the USB-UART bridge is its KitProg3's own
        ids = {i: f"{board.title} KitProg3 USB-UART" for i in board_ids(board)}
        what = f"{board.name} (KitProg3 USB-UART)"
    elif uart or (board is not None and board.stdio == "uart"):
        ids = dict(USB_UART_BRIDGES)
        what = f"USB-UART bridge for {board.name}" if board is not None else "USB-UART bridge"
    elif board is not None and board.usb_app:
        ids = {tuple(board.usb_app): f"{board.title} (USB stdio)"}
        what = board.name
    else:
        ids = {tuple(b.usb_app): f"{b.title} (USB stdio)" for b in all_boards().values() if b.usb_app}
        ids.update({i: "PSoC 6 kit KitProg3 USB-UART" for i in probe_ids(all_boards().values())})
        what = "board"
    prefer = last_flash.get("serial")
    recent = bool(prefer) and last_flash.get("age_s", 1e9) < 15.0
    return Wanted(usb_ids=ids, serial=serial, prefer_serial=prefer, prefer_recent=recent, what=what)


def choose_port(wanted: Wanted, discovery: Discovery, wait_s: float = 0.0, poll_s: float = 0.05,
                clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                on_wait: Callable[[str], None] | None = None) -> PortInfo:
    """The one port to monitor; waits up to ``wait_s`` for it to appear. Raises NoDevice (exit 6) with the
    candidates listed when none or several match and nothing says which one to take."""
    deadline = clock() + max(0.0, wait_s)
    announced = False
    while True:
        ports = discovery.ports()
        cands = [p for p in ports if wanted.matches(p)]
        last_chance = clock() >= deadline
        if wanted.prefer_serial and not wanted.serial:
            pref = [p for p in cands if p.serial_number == wanted.prefer_serial]
            if pref:
                return pref[0]
            # The board flashed seconds ago may still be re-enumerating: don't grab another one at once.
            if cands and wanted.prefer_recent and not last_chance:
                cands = []
        cands = _first_uart_of_one_probe(cands)
        if len(cands) == 1:
            return cands[0]
        if len(cands) > 1:
            listing = "; ".join(p.describe() for p in cands)
            raise NoDevice(f"{len(cands)} ports match the {wanted.what}: {listing}",
                           "choose one with --port PORT or --serial SERIAL")
        if last_chance:
            break
        if on_wait and not announced:
            on_wait(f"waiting up to {wait_s:g} s for the {wanted.what} to appear…")
            announced = True
        sleep(poll_s)
    want = (f"USB serial {wanted.serial}" if wanted.serial
            else ("any fwtool board: " if wanted.what == "board" else "") + "USB " + ", ".join(sorted({usb_id(*k) for k in wanted.usb_ids})[:6])
            + ("…" if len(wanted.usb_ids) > 6 else ""))
    others = [p.describe() for p in ports if p.vid is not None]
    seen = f"; other USB serial ports: {'; '.join(others)}" if others else "; no USB serial ports at all"
    return _raise_none(wanted, want, seen)


def _first_uart_of_one_probe(cands: list[PortInfo]) -> list[PortInfo]:
    """A KitProg3 in dual-UART mode (04B4:F166) shows two CDC ports with one serial number: the kit's debug UART
    is its first one (lowest USB interface)."""
    if len(cands) > 1 and len({(p.vid, p.pid, p.serial_number) for p in cands}) == 1 and cands[0].serial_number \
            and (cands[0].vid, cands[0].pid) in probe_ids(all_boards().values()):
        def order(p: PortInfo):
            return [int(x) for x in (p.interface or "").split(".") if x.isdigit()], p.device
        return [min(cands, key=order)]
    return cands


def _raise_none(wanted: Wanted, want: str, seen: str):
    raise NoDevice(f"no {wanted.what} found ({want}){seen}",
                   "plug the board in and flash it ('fwtool flash'), or name the port with --port "
                   "(a device or a pyserial URL such as socket://host:port)")


def target_for(port: PortInfo) -> FollowedPort:
    """Follow ``port`` by serial number when it has one (so re-enumeration under a new name is followed)."""
    if port.serial_number:
        return FollowedPort(serial_number=port.serial_number, interface=port.interface, label=port.device)
    return FollowedPort(device=port.device, label=port.device)


def lookup_device(path: str, discovery: Discovery) -> PortInfo:
    """A --port device path: its listing entry (for the serial number) if pyserial lists it."""
    real = os.path.realpath(path)
    for p in discovery.ports():
        if p.device == path or os.path.realpath(p.device) == real:
            return p
    return PortInfo(device=path)


# ---- which board, on which port ---------------------------------------------------------------------------------
@dataclass
class Resolved:
    """The port to open and what is known about the board on it."""

    port: PortInfo
    board: Board | None
    uart: bool
    baud: int
    board_from: str  # "given", "last flash", "last build" or "" (any fwtool board)

    @property
    def device(self) -> str:
        return self.port.device


def _board_or_none(name: str | None) -> Board | None:
    if not name:
        return None
    try:
        return get_board(name)
    except FwtoolError:
        return None  # a board file that is gone since: look for any board


def board_to_use(board: Board | str | None, last_flash: dict, guess: bool = True) -> tuple[Board | None, str]:
    """The one rule for "which board": the one named, else the board flashed last, else the board built last
    (``guess=False``: only the one named)."""
    if isinstance(board, Board):
        return board, "given"
    if board:
        return get_board(board), "given"
    if not guess:
        return None, ""
    b = _board_or_none(last_flash.get("board"))
    if b is not None:
        return b, "last flash"
    try:
        last = last_build()  # the newest build under ./build
    except FwtoolError:
        last = None
    b = _board_or_none(last.board if last else None)
    return (b, "last build") if b is not None else (None, "")


def resolve_port(port: str | None = None, board: Board | str | None = None, serial: str | None = None, *,
                 uart: bool = False, baud: int | None = None, wait_s: float = 0.0, poll_s: float = 0.05,
                 discovery: Discovery | None = None, last_flash_file: Path = LAST_FLASH_FILE,
                 on_wait: Callable[[str], None] | None = None) -> Resolved:
    """Which board, on which port (see the module docstring). NoDevice (exit 6) with the candidates listed when
    none or several match; waits up to ``wait_s`` for the board to appear."""
    discovery = discovery or Discovery()
    guess = not (port or serial)  # a named port or serial number is the board: nothing to guess
    last = read_last_flash(last_flash_file) if guess else {}
    b, source = board_to_use(board, last, guess)
    use_uart = uart or (b is not None and b.stdio == "uart")
    rate = baud or (b.uart_baud if (b is not None and use_uart) else BAUD)
    if port:
        info = PortInfo(device=port) if is_url(port) else lookup_device(port, discovery)
    else:
        wanted = wanted_for(b, use_uart, serial, last)
        info = choose_port(wanted, discovery, wait_s=wait_s, poll_s=poll_s, on_wait=on_wait)
    return Resolved(info, b, use_uart, rate, source)

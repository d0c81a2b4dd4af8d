"""The device layer: every board attached to this machine, as one ``Device`` per board, found one way.

API (used by flash, monitor, validate and ``fwtool devices``):

* ``discover(boards=None) -> Scan``: every attached board (``Scan.targets``: Devices, merged per physical board:
  serial port + reset interface in app mode, PICOBOOT + drive in BOOTSEL) and ``Scan.problems``.
* ``select(found, wanted=None, modes=...) -> Device``: the one board (by serial, USB location, port or drive).
* ``find_serial_port(board=None, serial=None, uart=False, wait_s=0.0) -> str``: the board's serial port
  (``ports.resolve_port``: the one "which board" rule; ``serial.open_port``: the one opener).
* ``boards_for(board) -> list[Board]``: the boards whose USB ids discovery looks for.
* ``doctor_rows()``, ``udev_rule()``: USB permissions.

All OS access goes through one backend object (``fwtool.devices.usb.backend()``); tests replace it.
"""
from __future__ import annotations

from fwtool.core.boards import Board, all_boards, get_board
from fwtool.devices import ports
from fwtool.devices.device import Device
from fwtool.devices.permissions import doctor_rows, udev_rule
from fwtool.devices.usb import Scan, scan, select

__all__ = ["Device", "Scan", "discover", "select", "boards_for", "find_serial_port", "doctor_rows", "udev_rule"]


RP2_FAMILIES = ("rp2040", "rp2350")


def boards_for(board: Board | None) -> list[Board]:
    """Boards whose USB ids discovery should look for: the same family as ``board`` (all boards for None). The two
    RP2 families are looked for together, so a Pico found when a Pico 2 was named (or the reverse) is refused by
    name (fwtool/flash: wrong chip) instead of "no board found"."""
    if board is None:
        return list(all_boards().values())
    group = RP2_FAMILIES if board.family in RP2_FAMILIES else (board.family,)
    return [b for b in all_boards().values() if b.family in group] or [board]


def discover(boards=None) -> Scan:
    """Every board attached (of ``boards``, a Board, a board name or None for all), one Device each."""
    if boards is None or isinstance(boards, (Board, str)):
        b = get_board(boards) if isinstance(boards, str) else boards
        boards = boards_for(b)
    return scan(list(boards))


def find_serial_port(board=None, serial: str | None = None, uart: bool = False, wait_s: float = 0.0,
                     on_wait=None) -> str:
    """The serial port of ``board`` (a Board, a name or None: any fwtool board), preferring the board flashed
    last; waits up to ``wait_s`` for it to appear. NoDevice (with the candidates) when none or several match."""
    return ports.resolve_port(None, board, serial, uart=uart, wait_s=wait_s, on_wait=on_wait).device

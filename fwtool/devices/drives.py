"""Mounted UF2 bootloader drives of the RP2 chips: recognising one, and its chip, by its INFO_UF2.TXT.

The bootroms write (RP2040 bootrom; RP2350 datasheet, USB mass storage): ``Model: Raspberry Pi RP2`` /
``Board-ID: RPI-RP2`` (RP2040, volume RPI-RP2) and ``Model: Raspberry Pi RP2350`` / ``Board-ID: RP2350`` (RP2350,
volume RP2350).
"""
from __future__ import annotations

from pathlib import Path

from fwtool.core.errors import NoDevice

INFO = "INFO_UF2.TXT"
BOARD_IDS = {"RPI-RP2": "RP2040", "RP2350": "RP2350"}  # INFO_UF2.TXT Board-ID -> chip
BOARD_ID = "Board-ID: RPI-RP2"  # the RP2040's line (kept for callers that test for it)


def read_info(path: Path) -> str | None:
    try:
        return (Path(path) / INFO).read_text(errors="replace")
    except OSError:
        return None


def _board_id(info: str) -> str | None:
    return next((ln.split(":", 1)[1].strip() for ln in info.splitlines() if ln.startswith("Board-ID:")), None)


def drive_chip(path: Path) -> str | None:
    """"RP2040" / "RP2350" for a mounted bootloader drive of either chip, else None."""
    info = read_info(path)
    return None if info is None else BOARD_IDS.get(_board_id(info) or "")


def is_rp2_drive(path: Path) -> bool:
    return drive_chip(path) is not None


def require_rp2_drive(path: Path, chip: str | None = None) -> Path:
    """``path`` if it is a mounted RP2 bootloader drive (of ``chip`` when given); else NoDevice, nothing written."""
    path = Path(path)
    if not path.is_dir():
        raise NoDevice(f"{path} is not a folder, so not a mounted BOOTSEL drive",
                       "hold BOOTSEL while plugging the board in, then pass its mount point "
                       "(e.g. /media/$USER/RPI-RP2 or /media/$USER/RP2350)")
    info = read_info(path)
    if info is None:
        raise NoDevice(f"{path} has no {INFO}: not a UF2 bootloader drive; nothing was written",
                       "pass the BOOTSEL drive's mount point (RPI-RP2 or RP2350)")
    found = BOARD_IDS.get(_board_id(info) or "")
    if found is None:
        raise NoDevice(f"{path} is a UF2 drive for another board (Board-ID: {_board_id(info) or 'none'}), not an "
                       "RP2040 (RPI-RP2) or RP2350; nothing was written", "pass the drive of the RP2 board")
    if chip is not None and found != chip:
        raise NoDevice(f"{path} is the BOOTSEL drive of an {found}, not of an {chip}; nothing was written",
                       f"flash an image built for the {found} (e.g. --board {'pico' if found == 'RP2040' else 'pico2'}),"
                       f" or plug in the {chip} board")
    return path

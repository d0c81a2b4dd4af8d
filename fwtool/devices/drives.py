"""Mounted UF2 bootloader drives (RPI-RP2): recognising one by its INFO_UF2.TXT."""
from __future__ import annotations

from pathlib import Path

from fwtool.core.errors import NoDevice

INFO = "INFO_UF2.TXT"
BOARD_ID = "Board-ID: RPI-RP2"


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

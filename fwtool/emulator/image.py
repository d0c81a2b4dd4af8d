"""Flash images for the virtual board: any firmware file the one reader takes (UF2, ELF, Intel HEX, raw .bin),
checked like ``fwtool flash`` checks it and laid out as flash contents from 0x10000000 (gaps 0xFF, erased flash).

The virtual RP2040 starts at boot2 (flash offset 0) and its flash holds nothing else, so an image must begin with
a valid boot2 (see fwtool/image/boot2.py).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from fwtool.core.boards import Board, get_board
from fwtool.image import boot2
from fwtool.image.check import check_for_board
from fwtool.image.firmware import read

FLASH_BASE = 0x10000000
FLASH_MAX = 16 * 1024 * 1024  # what rp2040js models (and the RP2040's XIP window)


@lru_cache(maxsize=1)
def virtual_board() -> Board:
    """An RP2040 board as rp2040js models it: the Pico's data with the whole 16 MiB XIP window as flash (looked up
    on first use, not at import)."""
    return replace(get_board("pico"), name="the virtual RP2040", title="rp2040js", flash_base=FLASH_BASE,
                   flash_bytes=FLASH_MAX)


@dataclass(frozen=True)
class FlashImage:
    data: bytes  # flash contents from offset 0 (gaps 0xFF, as erased flash)
    kind: str  # "uf2", "elf", "hex", "bin"
    segments: int  # how many address ranges were placed
    source: Path | None = None


boot2_valid = boot2.ok


def load(path: Path) -> FlashImage:
    """Read a firmware file (kind detected from its content), check it for the virtual board, lay it out."""
    path = Path(path)
    img = check_for_board(read(path), virtual_board(), whole_flash=True)
    _, data = img.flat(origin=FLASH_BASE)
    return FlashImage(data, img.kind, len(img.segments), path)

"""The arena a firmware really uses, read from its banner on the virtual RP2040 (for fwtool/firmware/flow.py).

The banner (``FWT:BOOT … arena_used=N``) is printed right after ``AllocateTensors()``, before the first
inference, so any image of the default or validate app (also a dual-core one: core 1 is only used by
convolutions) gives the figure within a few emulated milliseconds of USB enumeration.
"""
from __future__ import annotations

from pathlib import Path

from fwtool.core import protocol
from fwtool.core.errors import FwtoolError
from fwtool.emulator.targets import run_capture

WALL_S = 60.0
EMULATED_S = 5.0  # USB enumeration and AllocateTensors take well under a second


def banner_arena_used(image: Path) -> int | None:
    """``arena_used`` from the first FWT:BOOT line of ``image`` (a UF2) on the virtual board; None when the image
    is not one for it, the virtual board is not available, or no banner came."""
    if Path(image).suffix.lower() != ".uf2":
        return None
    try:
        result = run_capture(Path(image), count=1, until=protocol.PREFIX_BANNER, timeout=WALL_S,
                             max_emulated_s=EMULATED_S)
    except FwtoolError:  # no node / rp2040js / bootrom: keep the host measurement
        return None
    for rec in result.records:
        if isinstance(rec, protocol.Banner):
            used = rec.fields.get("arena_used")
            return used if isinstance(used, int) and used > 0 else None
    return None

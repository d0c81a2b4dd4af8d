"""The kit around the chip: what the board's own design says is wired where, read from the pinned BSP's
``config/design.modus`` (the ModusToolbox device configuration Infineon ships with each kit), not from fwtool's
board file — so a wrong board file is caught against the kit, not against itself.

Read: the pins aliased ``CYBSP_DEBUG_UART_TX`` / ``CYBSP_DEBUG_UART_RX`` (the KitProg3 USB-UART bridge),
``CYBSP_USER_LED`` (the LED), ``CYBSP_PDM_CLK`` / ``CYBSP_PDM_DATA`` (the on-board PDM microphone, where the kit
has one), and the FLL personality's ``desiredFrequency`` (MHz).
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from fwtool.core.errors import FwtoolError

_PIN = re.compile(r"ioss\[0\]\.port\[(\d+)\]\.pin\[(\d+)\]")


@dataclass(frozen=True)
class Kit:
    bsp: str
    uart_tx: tuple[int, int]
    uart_rx: tuple[int, int]
    led: tuple[int, int] | None
    fll_hz: int | None
    source: str  # the design.modus it came from (for messages)
    pdm_clk: tuple[int, int] | None = None  # the on-board microphone's pins (None: the kit has none)
    pdm_data: tuple[int, int] | None = None


def from_bsp(bsp_root: Path, bsp: str) -> Kit:
    path = Path(bsp_root) / "config" / "design.modus"
    if not path.is_file():
        raise FwtoolError(f"the BSP {bsp} has no config/design.modus (the virtual kit's wiring comes from it)",
                          "run 'fwtool vendor sync' (the pinned BSP tree)")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise FwtoolError(f"{path.name} of {bsp} is not valid XML ({exc})", "run 'fwtool vendor sync' again")
    pins: dict[str, tuple[int, int]] = {}
    fll_hz = None
    for block in root.iter():
        if not block.tag.endswith("Block"):
            continue
        loc = block.get("location", "")
        m = _PIN.fullmatch(loc)
        if m:
            for alias in block:
                if alias.tag.endswith("Alias"):
                    pins[alias.get("value", "")] = (int(m.group(1)), int(m.group(2)))
        elif loc == "srss[0].clock[0].fll[0]":
            for param in block.iter():
                if param.tag.endswith("Param") and param.get("id") == "desiredFrequency":
                    fll_hz = round(float(param.get("value", "0")) * 1_000_000)
    missing = [a for a in ("CYBSP_DEBUG_UART_TX", "CYBSP_DEBUG_UART_RX") if a not in pins]
    if missing:
        raise FwtoolError(f"{bsp}'s design.modus names no {', '.join(missing)} pin",
                          "this kit cannot run on the virtual PSoC 6 (its debug UART is unknown)")
    return Kit(bsp, pins["CYBSP_DEBUG_UART_TX"], pins["CYBSP_DEBUG_UART_RX"], pins.get("CYBSP_USER_LED"), fll_hz,
               f"{bsp}/config/design.modus", pins.get("CYBSP_PDM_CLK"), pins.get("CYBSP_PDM_DATA"))

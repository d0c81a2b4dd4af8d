"""Board families: one module each, behind the ``Family`` interface in base.py.

A new family (e.g. Infineon PSoC 6 with ModusToolbox: make-based build, .hex output, pyOCD flashing) is a new
module here, listed in ``FAMILIES``, a ``templates/<family>/`` folder, its ``[sdk]`` table in
``core/board_schema.py`` and board files naming it. No family subclasses another: each derives from ``Family``
and composes the shared parts, ``tflm.py`` (TFLM from pico-tflmicro) and ``cmake.py`` (the CMake/Ninja driver).
"""
from __future__ import annotations

from functools import lru_cache

from fwtool.core.errors import BadInput
from fwtool.firmware.families.base import CompiledFiles, CompileRequest, Family, SourcePatch, apply_patches
from fwtool.firmware.families.nrf52 import NRF52Family
from fwtool.firmware.families.psoc6 import PSoC6Family
from fwtool.firmware.families.rp2040 import RP2040Family

FAMILIES: tuple[type[Family], ...] = (RP2040Family, PSoC6Family, NRF52Family)

__all__ = ["CompiledFiles", "CompileRequest", "Family", "SourcePatch", "all_families", "apply_patches",
           "get_family"]


@lru_cache(maxsize=None)
def all_families() -> dict[str, Family]:
    return {f.name: f for f in (cls() for cls in FAMILIES)}


def get_family(name: str) -> Family:
    fams = all_families()
    if name not in fams:
        raise BadInput(f"board family '{name}' is not supported by this fwtool", f"supported: {', '.join(fams)}")
    return fams[name]

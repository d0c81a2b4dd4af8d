"""Board families: one module each, behind the ``Family`` interface in base.py.

A new family (e.g. Infineon PSoC 6 with ModusToolbox: make-based build, .hex output, pyOCD flashing) is a new
module here, a ``templates/<family>/`` folder and board files naming it; nothing else changes.
"""
from __future__ import annotations

from functools import lru_cache

from fwtool.core.errors import BadInput
from fwtool.build.families.base import Family


@lru_cache(maxsize=None)
def all_families() -> dict[str, Family]:
    from fwtool.build.families.rp2040 import RP2040Family

    fams = [RP2040Family()]
    return {f.name: f for f in fams}


def get_family(name: str) -> Family:
    fams = all_families()
    if name not in fams:
        raise BadInput(f"board family '{name}' is not supported by this fwtool", f"supported: {', '.join(fams)}")
    return fams[name]

"""PSoC 6 register definitions, read at run time from the pinned PDL tree (mtb-pdl-cat1), never copied here.

The device header (``devices/COMPONENT_CAT1A/include/<device>.h``) gives each block's base address and the memory
sizes; the series config header (``psoc6_0N_config.h``) lists the IP headers and maps ``CPUSS_Type`` to
``CPUSS_V2_Type``; each ``ip/cyip_*.h`` struct carries the offset of every register in its doc comment
(``__IOM uint32_t CLK_FLL_CONFIG; /*!< 0x00000580 ... */``) and the ``*_Pos``/``*_Msk`` field defines. The
virtual PSoC 6's block models look registers and fields up by those names, so a register is where the PDL the
firmware was built with says it is.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from fwtool.core.errors import FwtoolError

_INCLUDE = re.compile(r'#include\s+"ip/(cyip_\w+\.h)"')
_ALIAS = re.compile(r"typedef\s+(\w+_Type)\s+(\w+_Type)\s*;")
_DEFINE = re.compile(r"#define\s+(\w+)\s+\(?(0x[0-9A-Fa-f]+|\d+)(?:[uU][lL]?)?\)?\s*(?:/[*/].*)?$", re.M)
# gpio_psoc6_*.h: P5_1_SCB5_UART_TX = 18; psoc6_0N_config.h: PCLK_SCB5_CLOCK = 0x0005u
_IRQN = re.compile(r"^\s*(\w+_IRQn)\s*=\s*(\d+)\s*,", re.M)
_ENUM = re.compile(r"^\s*((?:P\d+_\d+|PCLK)_\w+)\s*=\s*(0x[0-9A-Fa-f]+|\d+)u?\s*,", re.M)
_GPIO_HEADER = re.compile(r'#include\s+"(gpio_psoc6_\w+\.h)"')
_STRUCT_END = re.compile(r"}\s*(\w+_Type)\s*;\s*/\*!<\s*Size\s*=\s*(\d+)")
_MEMBER = re.compile(r"^\s*(?:__IM|__OM|__IOM|__I|__O)?\s*(\w+)\s+(\w+)(?:\[(\d+)\])?\s*;\s*(?:/\*!<\s*0x([0-9A-Fa-f]+))?")


@dataclass
class Struct:
    name: str
    size: int
    members: dict[str, tuple[int, str, int]] = field(default_factory=dict)  # name -> (offset, type, count)


@dataclass
class Device:
    """One PSoC 6 device's register map (``Device.load(pdl_root, "CY8C6347BZI_BLD53", "01")``)."""
    name: str
    series: str
    defines: dict[str, int]
    structs: dict[str, Struct]
    aliases: dict[str, str]

    @classmethod
    def load(cls, pdl: Path, device: str, series: str) -> "Device":
        return _load(str(pdl), device, series)

    def base(self, block: str) -> int:
        return self.define(f"{block}_BASE")

    def define(self, name: str) -> int:
        if name not in self.defines:
            raise FwtoolError(f"the PDL's {self.name} headers define no {name}",
                              "use the pinned mtb-pdl-cat1 tree ('fwtool vendor sync')")
        return self.defines[name]

    def struct(self, type_name: str) -> Struct:
        name = self.aliases.get(type_name, type_name)
        if name not in self.structs:
            raise FwtoolError(f"the PDL's {self.series} headers have no struct {type_name}",
                              "use the pinned mtb-pdl-cat1 tree ('fwtool vendor sync')")
        return self.structs[name]

    def offset(self, type_name: str, path: str) -> int:
        """Byte offset of ``path`` in struct ``type_name``: ``"CLK_FLL_CONFIG"``, ``"STRUCT[3].ACQUIRE"``,
        ``"CLK_ROOT_SELECT[0]"``."""
        st, off = self.struct(type_name), 0
        for part in path.split("."):
            m = re.fullmatch(r"(\w+)(?:\[(\d+)\])?", part)
            name, index = m.group(1), int(m.group(2) or 0)
            if name not in st.members:
                raise FwtoolError(f"the PDL's {st.name} has no register {name}", "use the pinned mtb-pdl-cat1 tree")
            moff, mtype, _ = st.members[name]
            size = 4 if mtype == "uint32_t" else self.struct(mtype).size
            off += moff + index * size
            if mtype != "uint32_t":
                st = self.struct(mtype)
        return off

    def reg(self, block: str, path: str, type_name: str | None = None) -> int:
        """Absolute address of ``block``'s register ``path`` (block ``SRSS`` -> ``SRSS_Type`` at ``SRSS_BASE``)."""
        return self.base(block) + self.offset(type_name or f"{block}_Type", path)

    def field(self, prefix: str, name: str) -> tuple[int, int]:
        """(position, mask) of a register field: ``field("SRSS_CLK_FLL_STATUS", "LOCKED")``; V2 names
        (``CPUSS_V2_...``) are tried after the plain ones."""
        parts = prefix.split("_")
        for p in [prefix] + ["_".join(parts[:i] + ["V2"] + parts[i:]) for i in range(1, len(parts))]:
            if f"{p}_{name}_Msk" in self.defines:
                return self.defines[f"{p}_{name}_Pos"], self.defines[f"{p}_{name}_Msk"]
        raise FwtoolError(f"the PDL's {self.series} headers define no {prefix}_{name}", "use the pinned PDL tree")


def _parse_structs(text: str, out: dict[str, Struct]) -> None:
    members: dict[str, tuple[int, str, int]] = {}
    inside = False
    for line in text.splitlines():
        if line.startswith("typedef struct"):
            inside, members = True, {}
            continue
        if not inside:
            continue
        end = _STRUCT_END.search(line)
        if end:
            out[end.group(1)] = Struct(end.group(1), int(end.group(2)), members)
            inside = False
            continue
        m = _MEMBER.match(line)
        if m and m.group(4) is not None and not m.group(2).startswith("RESERVED"):
            members[m.group(2)] = (int(m.group(4), 16), m.group(1), int(m.group(3) or 1))


@lru_cache(maxsize=8)
def _load(pdl: str, device: str, series: str) -> Device:
    inc = Path(pdl) / "devices" / "COMPONENT_CAT1A" / "include"
    dev_h, cfg_h = inc / f"{device.lower()}.h", inc / f"psoc6_{series}_config.h"
    for p in (dev_h, cfg_h):
        if not p.is_file():
            raise FwtoolError(f"the PDL tree has no {p.name} (the virtual PSoC 6 reads its register map there)",
                              "run 'fwtool vendor sync' (mtb-pdl-cat1 at the pinned commit)")
    defines: dict[str, int] = {}
    structs: dict[str, Struct] = {}
    cfg = cfg_h.read_text(errors="replace")
    for name in _INCLUDE.findall(cfg):
        path = inc / "ip" / name
        if path.is_file():
            text = path.read_text(errors="replace")
            _parse_structs(text, structs)
            defines.update((k, int(v, 0)) for k, v in _DEFINE.findall(text))
    dev_text = dev_h.read_text(errors="replace")
    for text in (cfg, dev_text):
        defines.update((k, int(v, 0)) for k, v in _DEFINE.findall(text))
    for name in _GPIO_HEADER.findall(dev_text):  # the package's pin functions (HSIOM values)
        if (inc / name).is_file():
            defines.update((k, int(v, 0)) for k, v in _ENUM.findall((inc / name).read_text(errors="replace")))
    defines.update((k, int(v, 0)) for k, v in _ENUM.findall(cfg))
    defines.update((k, int(v, 0)) for k, v in _IRQN.findall(dev_text))  # the CM4's IRQ numbers (the last wins)
    aliases = {alias: real for real, alias in _ALIAS.findall(cfg)}
    return Device(device, series, defines, structs, aliases)

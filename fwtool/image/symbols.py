"""Addresses -> function and file:line, from a build's ELF (pyelftools): how a FWT:FAULT line's pc/lr are shown.

``Symbolizer(elf).describe(0x10021234)`` -> ``"fwt_inference_loop (fwt_runtime.cpp:71)"``; addresses outside every
function -> ``"0x30000000 (no function)"``. The DWARF line table is read when the ELF has one (fwtool builds
with -g), else only the function name is given.
"""
from __future__ import annotations

import bisect
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from fwtool.core import protocol
from fwtool.core.errors import BadInput


class Symbolizer:
    def __init__(self, elf: Path) -> None:
        self.elf = Path(elf)
        try:
            with open(self.elf, "rb") as f:
                e = ELFFile(f)
                funcs = []
                tab = e.get_section_by_name(".symtab")
                for s in (tab.iter_symbols() if tab is not None else ()):
                    if s["st_info"]["type"] == "STT_FUNC" and s["st_value"]:
                        funcs.append(((s["st_value"] & ~1), s["st_size"], s.name))
                self._funcs = sorted(funcs)
                self._starts = [f[0] for f in self._funcs]
                self._lines = self._line_table(e) if e.has_dwarf_info() else []
        except (OSError, ELFError) as exc:
            raise BadInput(f"cannot read {self.elf} as an ELF file ({exc})", "pass the build's firmware.elf") from exc
        self._line_starts = [a for a, _, _ in self._lines]

    @staticmethod
    def _line_table(e) -> list[tuple[int, str, int]]:
        rows: list[tuple[int, str, int]] = []
        dwarf = e.get_dwarf_info()
        for cu in dwarf.iter_CUs():
            lp = dwarf.line_program_for_CU(cu)
            if lp is None:
                continue
            files = lp["file_entry"]
            base = 1 if lp.header["version"] < 5 else 0
            for entry in lp.get_entries():
                st = entry.state
                if st is None or st.end_sequence:
                    continue
                try:
                    name = files[st.file - base].name.decode(errors="replace")
                except (IndexError, AttributeError):
                    name = "?"
                rows.append((st.address, name, st.line))
        rows.sort()
        return rows

    def function(self, addr: int) -> str | None:
        addr &= ~1
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0:
            start, size, name = self._funcs[i]
            if start <= addr < start + max(size, 2):
                return name
        return None

    def line(self, addr: int) -> tuple[str, int] | None:
        i = bisect.bisect_right(self._line_starts, addr & ~1) - 1
        if i < 0:
            return None
        _, name, line = self._lines[i]
        return name, line

    def describe(self, addr: int) -> str:
        fn = self.function(addr)
        if fn is None:
            return f"0x{addr:08X} (no function)"
        where = self.line(addr)
        return f"{fn} ({where[0]}:{where[1]})" if where else fn


def decode_fault(line: str, elf: Path | None) -> str:
    """A FWT:FAULT line with its pc and lr as function (file:line) from the build's ELF, when there is one."""
    parsed = protocol.parse_line(line)
    if not isinstance(parsed, protocol.FirmwareFault) or elf is None or not Path(elf).is_file():
        return line
    sym = Symbolizer(Path(elf))
    where = [f"{k} {sym.describe(a)}" for k in ("pc", "lr") if (a := parsed.address(k)) is not None]
    return line + (" — " + ", ".join(where) if where else "")

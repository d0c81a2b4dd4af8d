"""Addresses -> function and file:line, from a build's ELF (pyelftools): how a FWT:FAULT line's pc/lr are shown.

``Symbolizer(elf).describe(0x10021234)`` -> ``"fwt_inference_loop (fwt_runtime.cpp:71)"``; addresses outside every
function -> ``"0x30000000 (no function)"``. The DWARF line table is read when the ELF has one (fwtool builds
with -g), else only the function name is given; only the line program of the compile unit that holds the address
is decoded (found through .debug_aranges: ~0.5 s instead of ~5 s for a whole pico image's line tables). An lr is
looked up at its call (``return_address``), as addr2line on lr - 2 would. Results match
``arm-none-eabi-addr2line`` on the outermost line (inlined code: the line table's innermost line).
"""
from __future__ import annotations

import bisect
import io
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from fwtool.core import protocol
from fwtool.core.errors import BadInput


class Symbolizer:
    def __init__(self, elf: Path) -> None:
        self.elf = Path(elf)
        try:
            self._elf = ELFFile(io.BytesIO(self.elf.read_bytes()))
            funcs = []
            tab = self._elf.get_section_by_name(".symtab")
            for s in (tab.iter_symbols() if tab is not None else ()):
                if s["st_info"]["type"] == "STT_FUNC" and s["st_value"]:
                    funcs.append(((s["st_value"] & ~1), s["st_size"], s.name))
            self._funcs = sorted(funcs)
            self._starts = [f[0] for f in self._funcs]
            self._dwarf = self._elf.get_dwarf_info() if self._elf.has_dwarf_info() else None
            self._aranges = self._dwarf.get_aranges() if self._dwarf is not None else None
        except (OSError, ELFError) as exc:
            raise BadInput(f"cannot read {self.elf} as an ELF file ({exc})", "pass the build's firmware.elf") from exc
        self._tables: dict[int | None, tuple[list[int], list[tuple[str | None, int]]]] = {}

    def _rows(self, addr: int) -> tuple[list[int], list[tuple[str, int]]]:
        """The line rows (sorted addresses, (file, line)) of the compile unit that holds ``addr`` (found through
        .debug_aranges, so one CU's line program is decoded, not the whole image's); every CU's without aranges."""
        cu_offset = None
        if self._aranges is not None:
            try:
                cu_offset = self._aranges.cu_offset_at_addr(addr)
            except (ELFError, KeyError, ValueError):
                cu_offset = None
        if cu_offset not in self._tables:
            if cu_offset is None:
                cus = list(self._dwarf.iter_CUs())
            else:
                cus = [self._dwarf.get_CU_at(cu_offset)]
            # by address, keeping program order (of several rows at one address the last one is in effect); a
            # sequence's end marker (file None) before a row that starts another sequence at the same address
            rows = sorted((r for cu in cus for r in self._line_table(self._dwarf, cu)),
                          key=lambda r: (r[0], r[1] is not None))
            self._tables[cu_offset] = ([a for a, _, _ in rows], [(f, n) for _, f, n in rows])
        return self._tables[cu_offset]

    @staticmethod
    def _line_table(dwarf, cu) -> list[tuple[int, str, int]]:
        rows: list[tuple[int, str, int]] = []
        lp = dwarf.line_program_for_CU(cu)
        if lp is None:
            return rows
        files = lp["file_entry"]
        base = 1 if lp.header["version"] < 5 else 0
        for entry in lp.get_entries():
            st = entry.state
            if st is None:
                continue
            if st.end_sequence:  # past the sequence's last instruction: no line (e.g. a library without -g)
                rows.append((st.address, None, 0))
                continue
            try:
                name = files[st.file - base].name.decode(errors="replace")
            except (IndexError, AttributeError):
                name = "?"
            rows.append((st.address, name, st.line))
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
        if self._dwarf is None:
            return None
        addr &= ~1
        starts, where = self._rows(addr)
        i = bisect.bisect_right(starts, addr) - 1
        return where[i] if i >= 0 and where[i][0] is not None else None

    def describe(self, addr: int, return_address: bool = False) -> str:
        """``function (file:line)`` of ``addr``; ``return_address``: ``addr`` is an lr (the instruction after a
        call), so the call's own place is looked up (2 bytes back: inside the BL/BLX)."""
        at = (addr & ~1) - 2 if return_address and addr & ~1 >= 2 else addr
        fn = self.function(at)
        if fn is None:
            return f"0x{addr:08X} (no function)"
        where = self.line(at)
        return f"{fn} ({where[0]}:{where[1]})" if where else fn


def check_elf(elf: Path) -> None:
    """Refuse (exit 3) a file that is not an ELF at all, before a monitor needs it (the full read comes later)."""
    try:
        with open(elf, "rb") as f:
            magic = f.read(4)
    except OSError as exc:
        raise BadInput(f"cannot read {elf} ({exc.strerror or exc})", "pass the build's firmware.elf") from exc
    if magic != b"\x7fELF":
        raise BadInput(f"{elf} is not an ELF file", "pass the build's firmware.elf (next to its firmware.uf2/.hex)")


def fault_places(line: str, elf: Path | None) -> str:
    """``pc <function (file:line)>, lr <its caller>`` of a FWT:FAULT line from the build's ELF ("" without one)."""
    parsed = protocol.parse_line(line)
    if not isinstance(parsed, protocol.FirmwareFault) or elf is None or not Path(elf).is_file():
        return ""
    sym = Symbolizer(Path(elf))
    return ", ".join(f"{k} {sym.describe(a, return_address=k == 'lr')}" for k in ("pc", "lr")
                     if (a := parsed.address(k)) is not None)


def decode_fault(line: str, elf: Path | None) -> str:
    """A FWT:FAULT line with its pc and lr as function (file:line) from the build's ELF, when there is one."""
    where = fault_places(line, elf)
    return line + (" — " + where if where else "")

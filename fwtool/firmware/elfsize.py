"""Sizes of the linked ELF: Berkeley totals exactly as ``arm-none-eabi-size`` prints them, and the real
flash/RAM footprint by address.

binutils' Berkeley format (size.c, berkeley_or_gnu_sum) goes by BFD section flags: code or read-only → text,
else with contents → data, else bss. For ELF that means SHF_EXECINSTR or not SHF_WRITE → text (so pico-sdk's
executable .data and its read-only NOBITS .heap/.stack_dummy count as "text"), writable PROGBITS → data,
writable NOBITS → bss. Those totals are not the memory footprint, so fwtool also reports:

* flash: bytes stored in flash = the file size of every PT_LOAD segment (code, rodata, .data's load image);
* RAM: every allocated section placed outside the flash window (vectors, .data, .bss, heap, stacks).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elftools.elf.constants import SH_FLAGS
from elftools.elf.elffile import ELFFile


@dataclass(frozen=True)
class Sizes:
    text: int
    data: int
    bss: int
    flash: int
    ram: int

    def to_dict(self) -> dict:
        return {"text": self.text, "data": self.data, "bss": self.bss, "flash": self.flash, "ram": self.ram}


def sizes(elf_path: Path, flash_base: int = 0x10000000, flash_bytes: int = 16 << 20) -> Sizes:
    text = data = bss = ram = flash = 0
    with open(elf_path, "rb") as f:
        elf = ELFFile(f)
        for sec in elf.iter_sections():
            flags, size = sec["sh_flags"], sec["sh_size"]
            if not flags & SH_FLAGS.SHF_ALLOC:
                continue
            if flags & SH_FLAGS.SHF_EXECINSTR or not flags & SH_FLAGS.SHF_WRITE:
                text += size
            elif sec["sh_type"] != "SHT_NOBITS":
                data += size
            else:
                bss += size
            if not flash_base <= sec["sh_addr"] < flash_base + flash_bytes:
                ram += size
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_LOAD":
                flash += seg["p_filesz"]
    return Sizes(text, data, bss, flash, ram)

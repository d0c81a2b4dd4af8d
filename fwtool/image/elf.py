"""The loadable segments of an ELF, by load (physical) address: where the bytes live in flash."""
from __future__ import annotations

import io
import struct
from pathlib import Path

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from fwtool.core.errors import BadInput

MAGIC = b"\x7fELF"


def parse(raw: bytes, source: str) -> tuple[list[tuple[int, bytes]], int | None]:
    """(load address, bytes) of every non-empty PT_LOAD segment of an ARM ELF in file order, and the entry point.

    The load (physical) address is where the bytes live in flash: initialised RAM data is stored after the code.
    """
    try:
        elf = ELFFile(io.BytesIO(raw))
        if elf["e_machine"] != "EM_ARM":
            raise BadInput(f"{source} is an ELF for {elf['e_machine']}, not ARM",
                           "pass the firmware.elf that 'fwtool build' wrote for this board")
        segs = [(seg["p_paddr"], seg.data()[:seg["p_filesz"]]) for seg in elf.iter_segments()
                if seg["p_type"] == "PT_LOAD" and seg["p_filesz"] > 0]
        return segs, elf["e_entry"] or None
    except (ELFError, struct.error, ValueError, EOFError) as e:
        raise BadInput(f"{source} is not a readable ELF file: {e}", "pass the firmware.elf that 'fwtool build' wrote") from e


def segments(path: Path) -> list[tuple[int, bytes]]:
    """The PT_LOAD segments of the ELF file at ``path`` (see :func:`parse`)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}", "check the path") from e
    return parse(raw, str(path))[0]

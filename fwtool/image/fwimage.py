"""Firmware-image primitives shared by ``fwtool flash`` and the virtual board: the loadable segments of an ELF
(by load address) and the RP2040 boot2 check."""
from __future__ import annotations

import struct
from pathlib import Path

from fwtool.core.errors import BadInput

BOOT2_BYTES = 256  # RP2040: 252 bytes of second-stage boot loader + CRC32 at offset 252


def boot2_crc(data: bytes) -> int:
    """CRC-32/MPEG-2 (poly 0x04C11DB7, init 0xFFFFFFFF, no reflection, no final xor) as the RP2040 bootrom checks it."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def boot2_ok(data: bytes) -> bool:
    """True when ``data`` (a flash image from 0x10000000) starts with a boot2 the bootrom would run."""
    if len(data) < BOOT2_BYTES:
        return False
    return boot2_crc(data[:252]) == struct.unpack_from("<I", data, 252)[0]


def elf_segments(path: Path) -> list[tuple[int, bytes]]:
    """(load address, bytes) of every non-empty PT_LOAD segment of an ARM ELF, in file order.

    The load (physical) address is where the bytes live in flash: initialised RAM data is stored after the code.
    """
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    name = Path(path).name
    try:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            if elf["e_machine"] != "EM_ARM":
                raise BadInput(f"{name} is an ELF for {elf['e_machine']}, not ARM", "pass the RP2040 firmware.elf")
            return [(seg["p_paddr"], seg.data()[:seg["p_filesz"]]) for seg in elf.iter_segments()
                    if seg["p_type"] == "PT_LOAD" and seg["p_filesz"] > 0]
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}", "check the path") from e
    except (ELFError, struct.error) as e:
        raise BadInput(f"{name} is not a readable ELF file: {e}", "pass the firmware.elf that 'fwtool build' wrote") from e

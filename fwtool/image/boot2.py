"""The RP2040 boot2 check: the bootrom runs flash only when its first 256 bytes end with the CRC of the first 252.

CRC-32/MPEG-2 (polynomial 0x04C11DB7, init 0xFFFFFFFF, not reflected, no final xor), as pico-sdk's linker scripts
place it and the real bootrom checks it.
"""
from __future__ import annotations

import struct

NAME = "rp2040-boot2"  # the board files' [image] boot_check value
BOOT2_BYTES = 256  # 252 bytes of second-stage boot loader + CRC32 at offset 252


def crc(data: bytes) -> int:
    """CRC-32/MPEG-2 as the RP2040 bootrom computes it over boot2."""
    value = 0xFFFFFFFF
    for byte in data:
        value ^= byte << 24
        for _ in range(8):
            value = ((value << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if value & 0x80000000 else (value << 1) & 0xFFFFFFFF
    return value


def ok(data: bytes) -> bool:
    """True when ``data`` (flash contents from the flash base) starts with a boot2 the bootrom would run."""
    if len(data) < BOOT2_BYTES:
        return False
    return crc(data[:252]) == struct.unpack_from("<I", data, 252)[0]


def with_crc(code: bytes) -> bytes:
    """252 bytes (or fewer, zero-padded) of boot2 code + their CRC: a block the bootrom accepts."""
    code = bytes(code).ljust(252, b"\0")
    if len(code) != 252:
        raise ValueError("boot2 code is at most 252 bytes")
    return code + struct.pack("<I", crc(code))

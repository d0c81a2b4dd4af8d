"""UF2 container: write from a flat binary, read back, validate (microsoft/uf2; RP2040 rules of its bootrom).

Reading a UF2 *file* for flashing or emulation goes through :mod:`fwtool.image.firmware`."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

MAGIC_START0 = 0x0A324655
MAGIC_START1 = 0x9E5D5157
MAGIC_END = 0x0AB16F30
FLAG_NOT_MAIN_FLASH = 0x00000001
FLAG_FAMILY_ID_PRESENT = 0x00002000
FLAG_EXTENSION_FLAGS_PRESENT = 0x00008000
RP2040_FAMILY_ID = 0xE48BFF56
ABSOLUTE_FAMILY_ID = 0xE48BFF57
RP2350_ARM_S_FAMILY_ID = 0xE48BFF59
# pico-sdk 2.2.0 boot/uf2.h: a block carrying this extension tag is not written by the RP2350 bootrom. picotool
# (elf2uf2.cpp gen_abs_block, called with --abs-block by pico-sdk's tools/CMakeLists.txt when
# PICO_RP2350_A2_SUPPORTED, which boards/pico2.h sets) puts one such block, family "absolute", payload 0xEF,
# numbered 0 of 2, first in every RP2350 flash UF2: the work-around for erratum RP2350-E10 (drag-and-drop of a UF2
# whose first block is not "absolute" can fail on A2 chips). Its default address is the last page of 16 MB flash.
EXTENSION_RP2_IGNORE_BLOCK = 0x9957E304
ABS_BLOCK_ADDRESS = 0x10FFFF00
BLOCK_SIZE = 512
PAYLOAD = 256
_HEADER = struct.Struct("<8I")

FAMILY_NAMES = {0xE48BFF56: "RP2040", 0xE48BFF59: "RP2350 ARM-S", 0xE48BFF5A: "RP2350 RISC-V",
                0xE48BFF5B: "RP2350 ARM-NS", 0xE48BFF57: "absolute", 0xE48BFF58: "data",
                0xE48BFF55: "CYW43 firmware", 0x68ED2B88: "SAMD21", 0x55114460: "SAMD51",
                0xADA52840: "nRF52840", 0x1C5F21B0: "ESP32", 0xBFDD4EEE: "ESP32-S2", 0xC47E5767: "ESP32-S3"}


# The chip a UF2 family id is for (the refusals name both chips).
CHIPS = {0xE48BFF56: "RP2040", 0xE48BFF59: "RP2350", 0xE48BFF5A: "RP2350", 0xE48BFF5B: "RP2350"}


def chip_of(fid: int | None) -> str | None:
    return CHIPS.get(fid) if fid is not None else None


def family_name(fid: int) -> str:
    """``0xE48BFF56 (RP2040)``: the id, and its name when known."""
    return f"0x{fid:08X}" + (f" ({FAMILY_NAMES[fid]})" if fid in FAMILY_NAMES else "")


class UF2Error(ValueError):
    pass


@dataclass(frozen=True)
class Block:
    flags: int
    address: int
    payload_size: int
    block_no: int
    num_blocks: int
    family_id: int
    data: bytes  # payload only
    extension: int | None = None  # the first extension tag word after the payload (FLAG_EXTENSION_FLAGS_PRESENT)

    @property
    def ignored(self) -> bool:
        """A block the RP2 bootroms skip: the RP2350-E10 work-around block (RP2_IGNORE_BLOCK extension)."""
        return bool(self.flags & FLAG_EXTENSION_FLAGS_PRESENT) and self.extension == EXTENSION_RP2_IGNORE_BLOCK


def abs_block(address: int = ABS_BLOCK_ADDRESS) -> bytes:
    """The RP2350-E10 work-around block as picotool's gen_abs_block writes it (flags FAMILY_ID | EXTENSION_FLAGS,
    family "absolute", 256 bytes of 0xEF, block 0 of 2, the RP2_IGNORE_BLOCK tag right after the payload)."""
    head = _HEADER.pack(MAGIC_START0, MAGIC_START1, FLAG_FAMILY_ID_PRESENT | FLAG_EXTENSION_FLAGS_PRESENT, address,
                        PAYLOAD, 0, 2, ABSOLUTE_FAMILY_ID)
    body = (b"\xef" * PAYLOAD + struct.pack("<I", EXTENSION_RP2_IGNORE_BLOCK)).ljust(476, b"\0")
    return head + body + struct.pack("<I", MAGIC_END)


def from_bin(data: bytes, base: int, family_id: int = RP2040_FAMILY_ID, abs_block_at: int | None = None) -> bytes:
    """One 512-byte block per 256 bytes of ``data`` (last page zero-padded), as picotool writes them;
    ``abs_block_at``: the RP2350-E10 work-around block first (:func:`abs_block`)."""
    pages = [data[i:i + PAYLOAD] for i in range(0, len(data), PAYLOAD)] or [b""]
    out = bytearray(abs_block(abs_block_at) if abs_block_at is not None else b"")
    for n, page in enumerate(pages):
        page = page.ljust(PAYLOAD, b"\0")
        out += _HEADER.pack(MAGIC_START0, MAGIC_START1, FLAG_FAMILY_ID_PRESENT, base + n * PAYLOAD, PAYLOAD,
                            n, len(pages), family_id)
        out += page.ljust(476, b"\0")
        out += struct.pack("<I", MAGIC_END)
    return bytes(out)


def parse(data: bytes) -> list[Block]:
    if len(data) == 0 or len(data) % BLOCK_SIZE:
        raise UF2Error(f"size {len(data)} is not a non-zero multiple of {BLOCK_SIZE} bytes")
    blocks = []
    for off in range(0, len(data), BLOCK_SIZE):
        m0, m1, flags, addr, size, no, num, fam = _HEADER.unpack_from(data, off)
        (mend,) = struct.unpack_from("<I", data, off + 508)
        if (m0, m1, mend) != (MAGIC_START0, MAGIC_START1, MAGIC_END):
            raise UF2Error(f"block at offset {off} has bad magic numbers")
        if size > 476:
            raise UF2Error(f"block {no} has payload size {size} > 476")
        ext = struct.unpack_from("<I", data, off + 32 + size)[0] if flags & FLAG_EXTENSION_FLAGS_PRESENT and \
            size <= 472 else None
        blocks.append(Block(flags, addr, size, no, num, fam, bytes(data[off + 32:off + 32 + size]), ext))
    return blocks


def to_image(blocks: list[Block]) -> tuple[int, bytes]:
    """(lowest address, contiguous bytes) covered by the main-flash blocks; gaps are an error."""
    main = sorted((b for b in blocks if not b.flags & FLAG_NOT_MAIN_FLASH), key=lambda b: b.address)
    if not main:
        raise UF2Error("no main-flash blocks")
    base = main[0].address
    out = bytearray()
    for b in main:
        if b.address != base + len(out):
            raise UF2Error(f"blocks are not contiguous at 0x{b.address:08X}")
        out += b.data
    return base, bytes(out)


def validate(data: bytes, family_id: int, base: int, expect: bytes | None = None) -> list[Block]:
    """Check everything the RP2040 bootrom checks, plus contiguity from ``base`` and (optionally) exact content.
    The RP2350-E10 work-around block (ignored by the bootrom) is skipped."""
    blocks = [b for b in parse(data) if not b.ignored]
    n = len(blocks)
    for i, b in enumerate(blocks):
        if not b.flags & FLAG_FAMILY_ID_PRESENT:
            raise UF2Error(f"block {i} has no family id (flags 0x{b.flags:08X})")
        if b.family_id != family_id:
            raise UF2Error(f"block {i} is for family 0x{b.family_id:08X}, not 0x{family_id:08X}")
        if b.payload_size != PAYLOAD or b.address % PAYLOAD:
            raise UF2Error(f"block {i} is not a 256-byte, 256-aligned page")
        if b.block_no != i or b.num_blocks != n:
            raise UF2Error(f"block {i} is numbered {b.block_no}/{b.num_blocks}, expected {i}/{n}")
    start, image = to_image(blocks)
    if start != base:
        raise UF2Error(f"image starts at 0x{start:08X}, expected 0x{base:08X}")
    if expect is not None:
        padded = expect + b"\0" * (-len(expect) % PAYLOAD)
        if image != padded:
            raise UF2Error("UF2 content differs from the binary it was made from")
    return blocks


def family_of(path: Path) -> set[int]:
    """Family ids present in a UF2 file (for refusing a wrong-family image before flashing)."""
    return {b.family_id for b in parse(Path(path).read_bytes())
            if b.flags & FLAG_FAMILY_ID_PRESENT and not b.ignored}

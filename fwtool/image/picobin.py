"""The RP2350 boot check: the bootrom runs a flash image only if a block loop (an IMAGE_DEF block) starts in its
first 4 KB — pico-sdk embeds one (pico_crt0's ``.embedded_block``; the linker script asserts "Embedded block must
be in first 4096 bytes of the binary"). There is no boot2 on RP2350.

Block markers from pico-sdk 2.2.0 ``src/common/boot_picobin_headers/include/boot/picobin.h``: a block is the
word PICOBIN_BLOCK_MARKER_START (0xffffded3), its items, and PICOBIN_BLOCK_MARKER_END (0xab123579); the first
item of an IMAGE_DEF is PICOBIN_BLOCK_ITEM_1BS_IMAGE_TYPE (0x42). This checks the markers and the item type, not
signatures or hashes (pico-sdk does not sign by default).
"""
from __future__ import annotations

import struct

NAME = "rp2350-image-def"  # the board files' [image] boot_check value
SEARCH_BYTES = 4096  # the block must start in the first 4 KB of flash
MARKER_START = 0xFFFFDED3
MARKER_END = 0xAB123579
ITEM_IMAGE_TYPE = 0x42
MAX_BLOCK_BYTES = 640  # an SDK IMAGE_DEF is a few words; the search for its end stops here


def image_def_at(data: bytes) -> int | None:
    """Offset of the first IMAGE_DEF block (start marker, image-type item, end marker) in ``data``'s first 4 KB."""
    for off in range(0, min(len(data), SEARCH_BYTES) - 8, 4):
        (word,) = struct.unpack_from("<I", data, off)
        if word != MARKER_START or data[off + 4] != ITEM_IMAGE_TYPE:
            continue
        end = min(len(data) - 4, off + MAX_BLOCK_BYTES)
        if any(struct.unpack_from("<I", data, p)[0] == MARKER_END for p in range(off + 8, end + 1, 4)):
            return off
    return None


def ok(data: bytes) -> bool:
    return image_def_at(data) is not None

"""Flash images for the virtual board: UF2, ELF, Intel HEX or a raw .bin, turned into bytes from flash offset 0.

The virtual RP2040 starts at boot2 (flash offset 0), so an image must begin with a valid boot2: 256 bytes whose
last word is the CRC-32 (polynomial 0x04C11DB7, not reflected, init 0xFFFFFFFF, no final xor) of the first 252,
as pico-sdk's linker scripts place it and the real bootrom checks it.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from fwtool.image import fwimage, uf2
from fwtool.core.errors import BadInput

FLASH_BASE = 0x10000000
FLASH_MAX = 16 * 1024 * 1024  # what rp2040js models (and the RP2040's XIP window)
BOOT2_SIZE = 256


@dataclass(frozen=True)
class FlashImage:
    data: bytes  # flash contents from offset 0 (gaps 0xFF, as erased flash)
    kind: str  # "uf2", "elf", "hex", "bin"
    segments: int  # how many pieces were placed
    source: Path | None = None

    @property
    def boot2_ok(self) -> bool:
        return boot2_valid(self.data)


boot2_valid = fwimage.boot2_ok
_crc32_mpeg2 = fwimage.boot2_crc


def _place(pieces: list[tuple[int, bytes]], what: str) -> bytes:
    """Lay (address, bytes) pieces into an image from FLASH_BASE; refuse anything outside flash."""
    end = 0
    for addr, chunk in pieces:
        off = addr - FLASH_BASE
        if off < 0 or off + len(chunk) > FLASH_MAX:
            raise BadInput(f"{what}: {len(chunk)} bytes at 0x{addr:08X} lie outside RP2040 flash "
                           f"(0x{FLASH_BASE:08X}..0x{FLASH_BASE + FLASH_MAX:08X})",
                           "pass a flash image built for the RP2040 (fwtool build writes build/<board>/firmware.uf2)")
        end = max(end, off + len(chunk))
    out = bytearray(b"\xff" * end)
    for addr, chunk in pieces:
        off = addr - FLASH_BASE
        out[off:off + len(chunk)] = chunk
    return bytes(out)


def _from_uf2(data: bytes, name: str) -> tuple[bytes, int]:
    try:
        blocks = uf2.parse(data)
    except uf2.UF2Error as e:
        raise BadInput(f"{name} is not a valid UF2 file: {e}", "rebuild it with 'fwtool build'") from e
    main = [b for b in blocks if not b.flags & uf2.FLAG_NOT_MAIN_FLASH]
    families = {b.family_id for b in main if b.flags & uf2.FLAG_FAMILY_ID_PRESENT}
    if families and uf2.RP2040_FAMILY_ID not in families:
        raise BadInput(f"{name} is a UF2 for family {', '.join(f'0x{f:08X}' for f in sorted(families))}, "
                       f"not the RP2040 (0x{uf2.RP2040_FAMILY_ID:08X})", "build it for an RP2040 board")
    main = [b for b in main if not b.flags & uf2.FLAG_FAMILY_ID_PRESENT or b.family_id == uf2.RP2040_FAMILY_ID]
    if not main:
        raise BadInput(f"{name} has no main-flash blocks", "rebuild it with 'fwtool build'")
    return _place([(b.address, b.data) for b in main], name), len(main)


def _from_elf(path: Path, name: str) -> tuple[bytes, int]:
    pieces = fwimage.elf_segments(path)
    ram_only = [p for p in pieces if not FLASH_BASE <= p[0] < FLASH_BASE + FLASH_MAX]
    if ram_only:  # e.g. a no_flash (RAM-loaded) binary: it never runs from flash
        raise BadInput(f"{name} loads {len(ram_only)} segment(s) outside flash (first at 0x{ram_only[0][0]:08X}): "
                       "it is not a flash image", "build with the default (flash) binary type")
    if not pieces:
        raise BadInput(f"{name} has no loadable segments", "pass firmware.elf from 'fwtool build'")
    return _place(pieces, name), len(pieces)


def _from_hex(text: str, name: str) -> tuple[bytes, int]:
    pieces, upper, seg_base = [], 0, 0
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            if not line.startswith(":"):
                raise ValueError("no ':'")
            rec = bytes.fromhex(line[1:])
            count, addr, rtype = rec[0], (rec[1] << 8) | rec[2], rec[3]
            if len(rec) != count + 5 or sum(rec) & 0xFF:
                raise ValueError("bad length or checksum")
        except ValueError as e:
            raise BadInput(f"{name} line {n} is not an Intel HEX record ({e})", "pass a valid .hex, .uf2 or .elf") from e
        payload = rec[4:4 + count]
        if rtype == 0:
            pieces.append((upper + seg_base + addr, payload))
        elif rtype == 1:
            break
        elif rtype == 2:
            seg_base, upper = int.from_bytes(payload, "big") << 4, 0
        elif rtype == 4:
            upper, seg_base = int.from_bytes(payload, "big") << 16, 0
    if not pieces:
        raise BadInput(f"{name} has no data records", "pass a valid .hex, .uf2 or .elf")
    return _place(pieces, name), len(pieces)


def load(path: Path) -> FlashImage:
    """Read a firmware file (kind detected from its content) into a flash image and check its boot2."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"firmware file {path} does not exist", "run 'fwtool build' first, or pass the right path")
    raw = path.read_bytes()
    name = path.name
    if len(raw) >= 8 and struct.unpack_from("<2I", raw) == (uf2.MAGIC_START0, uf2.MAGIC_START1):
        data, n, kind = *_from_uf2(raw, name), "uf2"
    elif raw[:4] == b"\x7fELF":
        data, n, kind = *_from_elf(path, name), "elf"
    elif raw[:1] == b":" and path.suffix.lower() in (".hex", ".ihex", ""):
        data, n, kind = *_from_hex(raw.decode("ascii", errors="replace"), name), "hex"
    else:
        if len(raw) > FLASH_MAX:
            raise BadInput(f"{name} is {len(raw):,} bytes, more than the 16 MiB flash window",
                           "pass a flash image (.uf2, .elf, .bin)")
        data, n, kind = raw, 1, "bin"
    image = FlashImage(data, kind, n, path)
    if not image.boot2_ok:
        raise BadInput(f"{name} does not start with a valid RP2040 boot2 (CRC-checked 256-byte stage 2 at "
                       f"0x{FLASH_BASE:08X})", "pass a flash image from a pico-sdk build (fwtool build writes one)")
    return image

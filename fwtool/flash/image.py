"""The image to flash: from the last build's UF2, a given UF2, an ELF (PT_LOAD segments) or a raw .bin.

UF2 parsing and validation live in fwtool/uf2.py; this module only decides which bytes go where and refuses what
the board would not run (wrong UF2 family, outside the board's flash, no valid RP2040 boot2).
"""
from __future__ import annotations

from pathlib import Path

from fwtool.image import fwimage, uf2
from fwtool.core.errors import BadInput
from fwtool.flash.base import Image
from fwtool.flash.drive import family_name

BOOT2_BYTES = fwimage.BOOT2_BYTES
boot2_crc = fwimage.boot2_crc
boot2_ok = fwimage.boot2_ok


def from_uf2(path: Path, board) -> Image:
    data = _read(path)
    try:
        blocks = uf2.parse(data)
    except uf2.UF2Error as e:
        raise BadInput(f"{path} is not a valid UF2 file: {e}", "pass the firmware.uf2 that 'fwtool build' wrote") from e
    fams = sorted({b.family_id for b in blocks if b.flags & uf2.FLAG_FAMILY_ID_PRESENT})
    if board.uf2_family_id is not None and fams != [board.uf2_family_id]:
        got = ", ".join(family_name(f) for f in fams) or "no family id"
        raise BadInput(f"{path} is for UF2 family {got}, not {family_name(board.uf2_family_id)} ({board.name}); "
                       "the bootrom would silently ignore it", f"build it for {board.name} with 'fwtool build'")
    try:
        uf2.validate(data, board.uf2_family_id, min(b.address for b in blocks))
        base, image = uf2.to_image(blocks)
    except uf2.UF2Error as e:
        raise BadInput(f"{path}: {e}", "rebuild it with 'fwtool build'") from e
    return _checked(Image(base, image, str(path), "uf2", uf2=data), board)


def from_elf(path: Path, board) -> Image:
    lo, hi = board.flash_base, board.flash_base + board.flash_bytes
    segs = fwimage.elf_segments(path)
    for addr, data in segs:
        if not (lo <= addr and addr + len(data) <= hi):
            raise BadInput(f"{path}: a loadable segment at 0x{addr:08X} (+{len(data)}) is not in "
                           f"{board.name}'s flash 0x{lo:08X}-0x{hi:08X}",
                           "flash ELF files built for this board from flash (not no_flash/RAM builds)")
    if not segs:
        raise BadInput(f"{path} has no loadable data", "pass the firmware.elf that 'fwtool build' wrote")
    segs.sort()
    base = segs[0][0]
    out = bytearray()
    for addr, data in segs:
        off = addr - base
        if off < len(out):
            raise BadInput(f"{path}: loadable segments overlap at 0x{addr:08X}", "check the linker script")
        out += b"\0" * (off - len(out))  # as 'objcopy -O binary' fills gaps
        out += data
    out += b"\0" * (-len(out) % 256)
    return _checked(Image(base, bytes(out), str(path), "elf"), board)


def from_bin(path: Path, board, base: int | None = None) -> Image:
    data = _read(path)
    data += b"\0" * (-len(data) % 256)
    return _checked(Image(board.flash_base if base is None else base, data, str(path), "bin"), board)


def _read(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}", "check the path") from e


def _checked(img: Image, board, boot2_check: bool = True) -> Image:
    lo, hi = board.flash_base, board.flash_base + board.flash_bytes
    if not img.data:
        raise BadInput(f"{img.source} is empty", "rebuild it")
    if img.base % 256 or img.base < lo or img.end > hi:
        raise BadInput(f"{img.source} covers 0x{img.base:08X}-0x{img.end:08X}, outside {board.name}'s flash "
                       f"0x{lo:08X}-0x{hi:08X} (or not 256-byte aligned)", f"build it for {board.name}")
    if board.family == "rp2040" and img.base == lo and not boot2_ok(img.data):
        img.notes.append("no valid boot2")
    return img


def load(board, uf2_path: Path | None = None, elf_path: Path | None = None, bin_path: Path | None = None,
         boot2_check: bool = True) -> Image:
    if uf2_path is not None:
        img = from_uf2(uf2_path, board)
    elif elf_path is not None:
        img = from_elf(elf_path, board)
    elif bin_path is not None:
        img = from_bin(bin_path, board)
    else:
        raise BadInput("no image given", "pass --uf2, --elf or --bin")
    if boot2_check and "no valid boot2" in img.notes:
        raise BadInput(f"{img.source} does not start with a valid RP2040 boot2 (CRC32 at offset 252 does not match): "
                       "the bootrom would not start it and would stay in BOOTSEL mode",
                       "flash a pico-sdk build ('fwtool build'), or pass --no-boot2-check to write it anyway")
    return img

"""The one firmware-image reader: a UF2, ELF, Intel HEX or raw .bin file -> address ranges + bytes.

``read(path)`` detects the kind from the content, refuses what is not a regular file or is bigger than any board
could hold (before reading it), and returns a :class:`FirmwareImage`: sorted, non-overlapping segments. One gap
rule for everyone: bytes between segments are 0xFF, as erased flash. Which board an image fits is
:func:`fwtool.image.check.check_for_board`; :class:`Image` is the flat view the flash runners write.
"""
from __future__ import annotations

import os
import stat
import struct
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from fwtool.core.errors import BadInput
from fwtool.image import elf, ihex, uf2

KINDS = ("uf2", "elf", "hex", "bin")
MAX_FILE_BYTES = 32 * 1024 * 1024  # bigger than any board's flash (and its UF2 or HEX text): refused unread
FILL = 0xFF  # the gap rule: erased flash
_REBUILD = "rebuild it with 'fwtool build'"


@dataclass
class FirmwareImage:
    segments: list  # [(address, bytes)], sorted, non-overlapping, adjacent pieces merged
    kind: str  # "uf2" | "elf" | "hex" | "bin"
    source: str  # the file it came from
    uf2_families: tuple = ()  # UF2: the family ids its blocks carry (sorted)
    uf2_unflagged: int = 0  # UF2: blocks without a family id
    uf2: Optional[bytes] = None  # UF2: the file itself (the drive runner copies it unchanged)
    entry: Optional[int] = None  # ELF entry point / HEX start address
    placed: bool = True  # False: a raw .bin read without a base (the board's flash base places it)
    notes: list = field(default_factory=list)

    @property
    def start(self) -> int:
        return self.segments[0][0]

    @property
    def end(self) -> int:
        addr, data = self.segments[-1]
        return addr + len(data)

    @property
    def size(self) -> int:
        """Bytes of data (gaps not counted)."""
        return sum(len(d) for _, d in self.segments)

    def at(self, base: int) -> "FirmwareImage":
        """This image moved so that it starts at ``base`` (for placing a raw .bin)."""
        delta = base - self.start
        return replace(self, segments=[(a + delta, d) for a, d in self.segments], placed=True)

    def bytes_at(self, addr: int, n: int, fill: int = FILL) -> bytes:
        """``n`` bytes from ``addr``: the image's where it has some, ``fill`` elsewhere."""
        out = bytearray([fill]) * n
        for a, d in self.segments:
            lo, hi = max(a, addr), min(a + len(d), addr + n)
            if lo < hi:
                out[lo - addr:hi - addr] = d[lo - a:hi - a]
        return bytes(out)

    def flat(self, fill: int = FILL, align: int = 1, origin: int | None = None) -> tuple[int, bytes]:
        """(base, bytes) covering every segment, gaps ``fill``: from ``origin`` (default: the first segment,
        rounded down to ``align``) to the last segment's end rounded up to ``align``."""
        base = self.start - self.start % align if origin is None else origin
        if base > self.start:
            raise ValueError(f"origin 0x{base:08X} is above the image start 0x{self.start:08X}")
        end = self.end + (-self.end % align)
        if end - base > MAX_FILE_BYTES:
            raise BadInput(f"{self.source} spans 0x{base:08X}-0x{end:08X}, more than any board's flash",
                           "pass a firmware image built for one board")
        return base, self.bytes_at(base, end - base, fill)


@dataclass
class Image:
    """The flat view the flash runners write: bytes to put in flash at ``base`` (already checked for the board)."""

    base: int
    data: bytes
    source: str  # the file it came from
    kind: str  # "uf2" | "elf" | "hex" | "bin"
    uf2: Optional[bytes] = None  # the UF2 file itself when kind == "uf2" (the drive method copies it unchanged)
    notes: list = field(default_factory=list)

    @classmethod
    def of(cls, img: FirmwareImage) -> "Image":
        base, data = img.flat()
        return cls(base, data, img.source, img.kind, uf2=img.uf2, notes=list(img.notes))

    @property
    def end(self) -> int:
        return self.base + len(self.data)

    def to_dict(self) -> dict:
        return {"path": self.source, "kind": self.kind, "base": f"0x{self.base:08X}", "bytes": len(self.data)}


def normalise(pieces, source: str) -> list[tuple[int, bytes]]:
    """Sort (address, bytes) pieces, merge adjacent ones, refuse overlaps and empty images."""
    out: list[tuple[int, bytearray]] = []
    for addr, data in sorted(((a, bytes(d)) for a, d in pieces if len(d)), key=lambda p: p[0]):
        if out and addr < out[-1][0] + len(out[-1][1]):
            raise BadInput(f"{source}: data at 0x{addr:08X} overlaps data already placed there",
                           "check the linker script or the tool that wrote the file")
        if out and addr == out[-1][0] + len(out[-1][1]):
            out[-1][1].extend(data)
        else:
            out.append((addr, bytearray(data)))
    if not out:
        raise BadInput(f"{source} has no loadable data", "pass the firmware that 'fwtool build' wrote")
    return [(a, bytes(d)) for a, d in out]


def _raw(path: Path) -> bytes:
    """The file's bytes, after refusing (unread) a missing file, a non-regular file and an oversized one."""
    try:
        st = os.stat(path)
    except FileNotFoundError as e:
        raise BadInput(f"firmware file {path} does not exist", "run 'fwtool build' first, or pass the right path") from e
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}", "check the path") from e
    if not stat.S_ISREG(st.st_mode):
        what = ("a directory" if stat.S_ISDIR(st.st_mode) else "a FIFO" if stat.S_ISFIFO(st.st_mode)
                else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode) else "a special file")
        raise BadInput(f"{path} is {what}, not a firmware file", "pass the .uf2/.elf/.hex/.bin file itself")
    if st.st_size > MAX_FILE_BYTES:
        raise BadInput(f"{path} is {st.st_size:,} bytes, more than any board's flash "
                       f"({MAX_FILE_BYTES // (1024 * 1024)} MiB): not a firmware image", "pass the right file")
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_BYTES + 1)
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}", "check the path") from e
    if len(raw) > MAX_FILE_BYTES:
        raise BadInput(f"{path} grew past {MAX_FILE_BYTES:,} bytes while being read", "pass the right file")
    if not raw:
        raise BadInput(f"{path} is empty", _REBUILD)
    return raw


def detect(raw: bytes) -> str:
    """The kind of a firmware file from its content."""
    if len(raw) >= 8 and struct.unpack_from("<2I", raw) == (uf2.MAGIC_START0, uf2.MAGIC_START1):
        return "uf2"
    if raw[:4] == elf.MAGIC:
        return "elf"
    if ihex.looks_like(raw):
        return "hex"
    return "bin"


def read(path, kind: str | None = None, base: int | None = None) -> FirmwareImage:
    """Read a firmware file. ``kind`` (one of KINDS) is what the caller expects: a file that is not of that kind is
    refused with the reason; None detects it. A raw .bin is placed at ``base`` (None: unplaced, at 0)."""
    if kind is not None and kind not in KINDS:
        raise BadInput(f"{path}: unknown image type '{kind}'", "pass a .uf2, .elf, .hex or .bin file")
    raw = _raw(Path(path))
    return parse(raw, str(path), kind, base)


def parse(raw: bytes, source: str, kind: str | None = None, base: int | None = None) -> FirmwareImage:
    """:func:`read` for bytes already in memory (``source`` names them in messages)."""
    found = detect(raw)
    kind = kind or found
    if kind == "uf2":
        return from_uf2(raw, source)
    if kind == "elf":
        if found != "elf":
            raise BadInput(f"{source} is not a readable ELF file: no ELF magic number",
                           "pass the firmware.elf that 'fwtool build' wrote")
        segs, entry = elf.parse(raw, source)
        return FirmwareImage(normalise(segs, source), "elf", source, entry=entry)
    if kind == "hex":
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError as e:
            raise BadInput(f"{source} is not an Intel HEX file: it is not ASCII text", "pass a valid .hex file") from e
        segs, entry = ihex.parse(text, source)
        return FirmwareImage(normalise(segs, source), "hex", source, entry=entry)
    img = FirmwareImage(normalise([(base or 0, raw)], source), "bin", source, placed=base is not None)
    if found != "bin":
        img.notes.append(f"the file looks like {found.upper()} but is written as raw bytes")
    return img


def from_uf2(raw: bytes, source: str) -> FirmwareImage:
    """A UF2 file: every block well-formed and numbered, all present (a truncated file is refused), main-flash
    blocks placed by address and contiguous."""
    try:
        blocks = uf2.parse(raw)
    except uf2.UF2Error as e:
        raise BadInput(f"{source} is not a valid UF2 file: {e}", _REBUILD) from e
    ignored = [b for b in blocks if b.ignored]  # the RP2350-E10 work-around block: the bootrom skips it
    blocks = [b for b in blocks if not b.ignored]
    if not blocks:
        raise BadInput(f"{source} has no main-flash blocks", _REBUILD)
    groups: dict = {}  # concatenated UF2s (one per family) number their blocks per family (UF2 spec)
    for i, b in enumerate(blocks):
        if b.payload_size != uf2.PAYLOAD or b.address % uf2.PAYLOAD:
            raise BadInput(f"{source} is not a valid UF2 file: block {i} is not a 256-byte, 256-aligned page",
                           _REBUILD)
        groups.setdefault(b.family_id if b.flags & uf2.FLAG_FAMILY_ID_PRESENT else None, []).append(b)
    for group in groups.values():
        n = len(group)
        for b in group:
            if b.num_blocks != n:
                raise BadInput(f"{source} is not a valid UF2 file: block {b.block_no} says the file has "
                               f"{b.num_blocks} blocks, it has {n} (truncated or joined?)", _REBUILD)
        if sorted(b.block_no for b in group) != list(range(n)):
            raise BadInput(f"{source} is not a valid UF2 file: its block numbers are not 0..{n - 1} once each",
                           _REBUILD)
    first = next(iter(groups.values()))  # several families: the board check refuses the others by name
    main = sorted((b for b in first if not b.flags & uf2.FLAG_NOT_MAIN_FLASH), key=lambda b: b.address)
    if not main:
        raise BadInput(f"{source} has no main-flash blocks", _REBUILD)
    for prev, b in zip(main, main[1:]):
        if b.address != prev.address + prev.payload_size:
            raise BadInput(f"{source}: UF2 blocks are not contiguous at 0x{b.address:08X}", _REBUILD)
    fams = tuple(sorted({b.family_id for b in blocks if b.flags & uf2.FLAG_FAMILY_ID_PRESENT}))
    unflagged = sum(1 for b in blocks if not b.flags & uf2.FLAG_FAMILY_ID_PRESENT)
    img = FirmwareImage(normalise([(b.address, b.data) for b in main], source), "uf2", source,
                        uf2_families=fams, uf2_unflagged=unflagged, uf2=bytes(raw))
    if len(main) < len(blocks):
        img.notes.append(f"{len(blocks) - len(main)} block(s) not for main flash ignored")
    if ignored:
        img.notes.append(f"{len(ignored)} RP2350-E10 work-around block(s) (RP2_IGNORE_BLOCK) skipped")
    return img

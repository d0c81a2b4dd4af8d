"""SAM-BA extended operations (Arduino's BOSSA fork: Samba::init/version/identifyChip/chipErase/write/
writeBuffer/checksumBuffer/reset) and ``program``: erase from the image's start, write it page by page through the
RAM buffer, check every page with the bootloader's CRC (``Z``), reset.

CRC: the bootloader's ``Z`` answers the CRC-16/XMODEM (polynomial 0x1021, initial 0) of the flash range, the
table BOSSA's ``Samba::checksumCalc`` uses; ``binascii.crc_hqx(data, 0)`` is the same function.
"""
from __future__ import annotations

import binascii
import re
import time

from fwtool.core.errors import BadInput
from fwtool.core.errors import DeviceLost, FlashFailed
from fwtool.flash.samba.chips import Chip, chip_for
from fwtool.flash.samba.protocol import SambaLink, SambaProtocolError, hex8

VERSION_MARK = "SAM-BA extended"
EXTENSIONS = re.compile(r"\[Arduino:([A-Z]*)\]")
NEEDED = "IKXYZ"  # identify, reset, erase, buffer copy, checksum: what program() uses
_Z = re.compile(rb"^Z([0-9A-Fa-f]{8})#")


def crc16(data: bytes) -> int:
    return binascii.crc_hqx(bytes(data), 0)


class SambaClient:
    def __init__(self, link: SambaLink):
        self.link = link
        self.version = ""
        self.extensions = ""
        self.chip: Chip | None = None

    def hello(self) -> Chip:
        """``N#`` (binary mode), ``V#`` (must be the SAM-BA extended bootloader with I/K/X/Y/Z), ``I#`` (a chip
        fwtool knows). Returns the chip."""
        self.link.expect("N#", b"\n\r", 2.0)
        self.link.send("V#")
        self.version = self.link.read_line(2.0, "V#")
        m = EXTENSIONS.search(self.version)
        if VERSION_MARK not in self.version or m is None:
            raise SambaProtocolError(f"the port answers 'V#' with '{self.version}', not Arduino's SAM-BA extended "
                                     "bootloader", "pass the Nano 33 BLE's bootloader port (--serial), or "
                                     "double-tap its reset button")
        self.extensions = m.group(1)
        missing = [c for c in NEEDED if c not in self.extensions]
        if missing:
            raise SambaProtocolError(f"this bootloader ({self.version}) lacks the command(s) {', '.join(missing)}",
                                     "update the board's bootloader (Arduino IDE: Burn Bootloader) or use a probe")
        self.link.send("I#")
        ident = self.link.read_line(2.0, "I#")
        chip = chip_for(ident)
        if chip is None:
            raise SambaProtocolError(f"the bootloader reports the chip '{ident}', which fwtool does not know",
                                     "this runner writes the nRF52840 (Arduino Nano 33 BLE boards) only")
        self.chip = chip
        return chip

    def erase(self, offset: int) -> None:
        """``X<offset>#``: erase the application area from ``offset`` (relative to the application start)."""
        self.link.expect(f"X{hex8(offset)}#", b"X\n\r", self.chip.erase_timeout_s)

    def write_page(self, offset: int, data: bytes) -> None:
        """``S<buffer>,<len>#`` + the bytes, then ``Y<buffer>,0#`` and ``Y<offset>,<len>#``: one page to flash."""
        chip = self.chip
        if len(data) > chip.page_bytes:
            raise ValueError("one page at a time")
        self.link.send(f"S{hex8(chip.buffer_addr)},{hex8(len(data))}#", bytes(data))
        self.link.expect(f"Y{hex8(chip.buffer_addr)},0#", b"Y\n\r", chip.page_timeout_s)
        self.link.expect(f"Y{hex8(offset)},{hex8(len(data))}#", b"Y\n\r", chip.page_timeout_s)

    def checksum(self, offset: int, size: int) -> int:
        """``Z<offset>,<len>#`` -> the bootloader's CRC-16 of that flash range."""
        cmd = f"Z{hex8(offset)},{hex8(size)}#"
        self.link.send(cmd)
        got = self.link.read_exact(12, self.chip.page_timeout_s, cmd)
        m = _Z.match(got)
        if m is None or got[10:] != b"\n\r":
            raise SambaProtocolError(f"the bootloader answered '{cmd}' with {got!r}", "double-tap reset and retry")
        return int(m.group(1), 16)

    def reset(self) -> None:
        """``K#``: the board resets into the application; its port may vanish under the command (expected)."""
        try:
            self.link.send("K#")
        except DeviceLost:
            pass


def check_range(chip: Chip, base: int, size: int) -> None:
    """Refuse (before anything is written) an image that would touch the bootloader or run past the flash."""
    if base < chip.app_start:
        raise BadInput(f"the image starts at 0x{base:08X}, inside the bootloader (0x00000000-0x{chip.app_start:08X}); "
                       "the SAM-BA runner never writes there",
                       f"build it for the board ('fwtool build --board ...' links it at 0x{chip.app_start:X})")
    if base + size > chip.flash_end:
        raise BadInput(f"the image ends at 0x{base + size:08X}, past the end of flash (0x{chip.flash_end:08X})",
                       "use a smaller model ('fwtool build' reports the fit)")


def program(client: SambaClient, base: int, data: bytes, *, verify: bool = True, reset: bool = True,
            progress=lambda phase, done, total: None) -> dict:
    """Write ``data`` at absolute ``base``: erase, every page through the buffer, CRC check per page, reset."""
    chip = client.chip
    check_range(chip, base, len(data))
    if (base - chip.app_start) % chip.page_bytes:
        raise BadInput(f"the image starts at 0x{base:08X}, not on a {chip.page_bytes}-byte page boundary",
                       "link it at a page boundary (fwtool's builds start at the application start)")
    total = len(data)
    t0 = time.monotonic()
    progress("erasing", 0, total)
    client.erase(chip.offset(base))
    pages = 0
    for at in range(0, total, chip.page_bytes):
        page = bytes(data[at:at + chip.page_bytes])
        page += b"\xff" * ((-len(page)) % 4)  # the NVMC writes whole words
        client.write_page(chip.offset(base + at), page)
        pages += 1
        progress("writing", min(at + chip.page_bytes, total), total)
    write_s = time.monotonic() - t0
    if verify:
        for at in range(0, total, chip.page_bytes):
            page = bytes(data[at:at + chip.page_bytes])
            got = client.checksum(chip.offset(base + at), len(page))
            want = crc16(page)
            if got != want:
                raise FlashFailed(f"verify failed: the bootloader's CRC of 0x{base + at:08X}+{len(page)} is "
                                  f"0x{got:04X}, the image's is 0x{want:04X}",
                                  "flash again; if it repeats, the flash page may be worn (try another board)")
            progress("verifying", min(at + chip.page_bytes, total), total)
    if reset:
        client.reset()
    return {"bytes_written": total, "bytes_skipped": 0, "sectors_written": pages, "sectors_skipped": 0,
            "verified": bool(verify), "rebooted": bool(reset), "write_seconds": round(write_s, 3),
            "seconds": round(time.monotonic() - t0, 3), "bootloader": client.version, "chip": chip.ident}

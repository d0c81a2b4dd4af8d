"""Intel HEX: read (record types 00-05) and write in the form ``arm-none-eabi-objcopy -O ihex`` produces."""
from __future__ import annotations

import re

from fwtool.core.errors import BadInput

DATA, EOF, EXT_SEGMENT, START_SEGMENT, EXT_LINEAR, START_LINEAR = range(6)
CHUNK = 16  # data bytes per record, as objcopy writes them
_FIRST_LINE = re.compile(rb"\A\s*:[0-9A-Fa-f]{10,}\s*(\r?\n|\Z)")
_FIX = "pass a valid .hex (e.g. from 'arm-none-eabi-objcopy -O ihex'), .uf2, .elf or .bin"


def looks_like(raw: bytes) -> bool:
    """True when ``raw`` starts with an Intel HEX record line."""
    return bool(_FIRST_LINE.match(raw[:600]))


def parse(text: str, source: str) -> tuple[list[tuple[int, bytes]], int | None]:
    """(data pieces as (address, bytes) in file order, start address or None). Errors name the line."""
    pieces: list[tuple[int, bytes]] = []
    start = None
    upper = 0  # the base from the last type 02 or 04 record
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        try:
            if not line.startswith(":"):
                raise ValueError("it does not start with ':'")
            rec = bytes.fromhex(line[1:])
            if len(rec) < 5 or len(rec) != rec[0] + 5:
                raise ValueError("its length does not match its byte count")
            if sum(rec) & 0xFF:
                raise ValueError(f"checksum 0x{rec[-1]:02X} is wrong")
            count, addr, rtype, payload = rec[0], (rec[1] << 8) | rec[2], rec[3], rec[4:-1]
            if rtype == DATA:
                pieces.append((upper + addr, payload))
            elif rtype == EOF:
                return pieces, start
            elif rtype in (EXT_SEGMENT, EXT_LINEAR) and count == 2:
                upper = int.from_bytes(payload, "big") << (4 if rtype == EXT_SEGMENT else 16)
            elif rtype == START_SEGMENT and count == 4:
                start = (int.from_bytes(payload[:2], "big") << 4) + int.from_bytes(payload[2:], "big")
            elif rtype == START_LINEAR and count == 4:
                start = int.from_bytes(payload, "big")
            else:
                raise ValueError(f"record type 0x{rtype:02X} with {count} bytes is not one of 00-05")
        except ValueError as e:
            raise BadInput(f"{source} line {n} is not an Intel HEX record ({e})", _FIX) from e
    raise BadInput(f"{source} has no end-of-file record (type 01): it is truncated", _FIX)


def _record(rtype: int, addr: int, payload: bytes = b"") -> str:
    body = bytes([len(payload), addr >> 8 & 0xFF, addr & 0xFF, rtype]) + bytes(payload)
    return ":" + (body + bytes([-sum(body) & 0xFF])).hex().upper() + "\r\n"


def write(segments: list[tuple[int, bytes]], start: int | None = None) -> str:
    """Intel HEX text for (address, bytes) segments, record for record what ``objcopy -O ihex`` writes (BFD's
    ihex.c): 16-byte data records that never cross a 64 KiB boundary, a type 02 (below 1 MiB) or type 04 record
    whenever the upper address changes, type 03/05 for a non-zero ``start``, type 01 last. CRLF line ends."""
    out: list[str] = []
    segbase = extbase = 0
    for where, data in sorted(segments, key=lambda s: s[0]):
        pos = 0
        while pos < len(data):
            now = min(CHUNK, len(data) - pos)
            if where > segbase + extbase + 0xFFFF:
                if extbase == 0 and where <= 0xFFFFF:
                    segbase = where & 0xF0000
                    out.append(_record(EXT_SEGMENT, 0, (segbase >> 4).to_bytes(2, "big")))
                else:
                    if segbase:
                        out.append(_record(EXT_SEGMENT, 0, b"\0\0"))
                        segbase = 0
                    extbase = where & 0xFFFF0000
                    out.append(_record(EXT_LINEAR, 0, (extbase >> 16).to_bytes(2, "big")))
            rec_addr = where - (extbase + segbase)
            if rec_addr + now > 0xFFFF:
                now = 0x10000 - rec_addr
            out.append(_record(DATA, rec_addr, data[pos:pos + now]))
            where += now
            pos += now
    if start:
        if start <= 0xFFFFF:
            out.append(_record(START_SEGMENT, 0, bytes([(start & 0xF0000) >> 12 & 0xFF, 0,
                                                        start >> 8 & 0xFF, start & 0xFF])))
        else:
            out.append(_record(START_LINEAR, 0, start.to_bytes(4, "big")))
    out.append(_record(EOF, 0))
    return "".join(out)

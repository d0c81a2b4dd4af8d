"""Tiny hand-assembled RP2040 flash images (Thumb-1 machine code, no toolchain needed) for emulator tests.

Each image is a valid boot2 block (CRC-32 in bytes 252..256, as the bootrom checks) whose code runs straight from
flash: the virtual board starts at 0x10000000. Programs:

* ``print_then(action)``: write a message to UART0, then ``hang`` (b .), ``bkpt``, ``core1`` (write the SIO
  inter-core FIFO), ``watchdog`` (force a watchdog reset) or ``wfi`` (sleep with nothing scheduled);
* ``echo()``: copy every byte received on UART0 back to it.

Also minimal ELF32 and Intel HEX writers for the image-loading tests.
"""
from __future__ import annotations

import struct

from fwtool.image import uf2
from fwtool.emulator.image import FLASH_BASE
from fwtool.image.boot2 import crc as _crc32_mpeg2

MESSAGE = b"hello from fwtool's test image\n"
_LIT = {"uart0": 0x40034000, "fifo_wr": 0xD0000054, "watchdog": 0x40058000, "trigger": 0x80000000}
_ACTIONS = {
    "hang": [0xE7FE],  # b .
    "bkpt": [0xBE00, 0xE7FE],  # bkpt #0; b .
    "core1": [0x480C, 0x2100, 0x6001, 0xE7FE],  # ldr r0,=SIO_FIFO_WR; movs r1,#0; str r1,[r0]; b .
    "watchdog": [0x480D, 0x490E, 0x6001, 0xE7FE],  # ldr r0,=WATCHDOG_CTRL; ldr r1,=TRIGGER; str r1,[r0]; b .
    "wfi": [0xBF30, 0xE7FD],  # wfi; b wfi
}


def _finish(code: bytearray) -> bytes:
    assert len(code) <= 252
    code = code.ljust(252, b"\0")
    return bytes(code) + struct.pack("<I", _crc32_mpeg2(bytes(code)))


def print_then(action: str = "hang", message: bytes = MESSAGE) -> bytes:
    """A 256-byte flash image: print ``message`` on UART0, then do ``action``."""
    assert len(message) < 100 and b"\0" not in message
    prog = [0x480F,  # 0: ldr r0, [pc, #60] -> literal at 64 (UART0 DR)
            0xA213,  # 2: adr r2, msg (offset 80)
            0x7811,  # 4: loop: ldrb r1, [r2]
            0x2900,  # 6: cmp r1, #0
            0xD002,  # 8: beq done (16)
            0x6001,  # 10: str r1, [r0]
            0x3201,  # 12: adds r2, #1
            0xE7F9,  # 14: b loop
            *_ACTIONS[action]]  # 16: done
    code = bytearray(struct.pack(f"<{len(prog)}H", *prog))
    code = code.ljust(64, b"\0")
    code += struct.pack("<4I", _LIT["uart0"], _LIT["fifo_wr"], _LIT["watchdog"], _LIT["trigger"])  # 64..80
    code += message + b"\0"  # 80..
    return _finish(code)


def echo() -> bytes:
    """A 256-byte flash image that echoes UART0 input."""
    prog = [0x480F,  # 0: ldr r0, [pc, #60] -> literal at 64
            0x6981,  # 2: loop: ldr r1, [r0, #0x18]   (UARTFR)
            0x2210,  # 4: movs r2, #0x10             (RXFE)
            0x4211,  # 6: tst r1, r2
            0xD1FB,  # 8: bne loop
            0x6801,  # 10: ldr r1, [r0]              (UARTDR)
            0x6001,  # 12: str r1, [r0]
            0xE7F8]  # 14: b loop
    code = bytearray(struct.pack(f"<{len(prog)}H", *prog)).ljust(64, b"\0")
    code += struct.pack("<I", _LIT["uart0"])
    return _finish(code)


def to_uf2(image: bytes) -> bytes:
    return uf2.from_bin(image, FLASH_BASE, uf2.RP2040_FAMILY_ID)


def to_elf(pieces: list[tuple[int, bytes]], machine: int = 40) -> bytes:
    """ELF32 little-endian executable with one PT_LOAD per (physical address, bytes) piece (EM_ARM = 40)."""
    ehsize, phentsize = 52, 32
    phoff = ehsize
    data_off = phoff + phentsize * len(pieces)
    headers, blobs, off = [], b"", data_off
    for paddr, data in pieces:
        # p_type, p_offset, p_vaddr, p_paddr, p_filesz, p_memsz, p_flags, p_align
        headers.append(struct.pack("<8I", 1, off, paddr, paddr, len(data), len(data), 5, 4))
        blobs += data
        off += len(data)
    ident = b"\x7fELF" + bytes([1, 1, 1]) + b"\0" * 9
    ehdr = ident + struct.pack("<HHIIIIIHHHHHH", 2, machine, 1, FLASH_BASE + 0x100 | 1, phoff, 0, 0x5000200,
                               ehsize, phentsize, len(pieces), 40, 0, 0)
    return ehdr + b"".join(headers) + blobs


def to_hex(image: bytes, base: int = FLASH_BASE) -> str:
    """Intel HEX with an extended linear address record, 16 data bytes per line."""
    def rec(rtype: int, addr: int, payload: bytes) -> str:
        body = bytes([len(payload), addr >> 8 & 0xFF, addr & 0xFF, rtype]) + payload
        return ":" + (body + bytes([-sum(body) & 0xFF])).hex().upper()

    lines = [rec(4, 0, struct.pack(">H", base >> 16))]
    for i in range(0, len(image), 16):
        lines.append(rec(0, (base & 0xFFFF) + i, image[i:i + 16]))
    lines.append(rec(1, 0, b""))
    return "\n".join(lines) + "\n"

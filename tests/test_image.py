"""The one firmware-image reader (fwtool/image/): kinds, the gap rule, refusals, the board check, and flash and the
virtual board giving the same verdict for the same file."""
import os
import shutil
import struct
import subprocess
from dataclasses import replace

import pytest

import fakes_emulator as fe
from fwtool.core.boards import get_board
from fwtool.core.errors import BadInput, Exit
from fwtool.emulator import image as emu_image
from fwtool.flash import image as flash_image
from fwtool.flash.drive import check_uf2
from fwtool.image import boot2, ihex, uf2
from fwtool.image.check import check_for_board
from fwtool.image.firmware import MAX_FILE_BYTES, Image, read

PICO = get_board("pico")
BOOT = fe.print_then("hang")  # 256 bytes: a valid boot2
FW = BOOT + bytes(range(256)) * 3


def as_uf2(data, base=0x10000000, family=uf2.RP2040_FAMILY_ID):
    return uf2.from_bin(data, base, family)


KINDS = {
    "fw.uf2": (lambda: as_uf2(FW), "uf2"),
    "fw.hex": (lambda: ihex.write([(0x10000000, FW)], 0x10000001).encode(), "hex"),
    "fw.elf": (lambda: fe.to_elf([(0x10000000, FW)]), "elf"),
    "fw.bin": (lambda: FW, "bin"),
}


@pytest.mark.parametrize("name", KINDS)
def test_every_kind_gives_the_same_segments(tmp_path, name):
    make, kind = KINDS[name]
    p = tmp_path / name
    p.write_bytes(make())
    img = read(p, base=0x10000000)
    assert img.kind == kind and img.segments == [(0x10000000, FW)] and img.source == str(p)
    assert (img.start, img.end, img.size) == (0x10000000, 0x10000000 + len(FW), len(FW))
    assert (img.uf2 is not None) == (kind == "uf2") and img.uf2_families == ((0xE48BFF56,) if kind == "uf2" else ())
    assert read(p, kind=kind, base=0x10000000).segments == img.segments  # asked-for kind = detected kind
    flat = Image.of(check_for_board(img, PICO))
    assert (flat.base, flat.data, flat.kind) == (0x10000000, FW, kind)
    assert emu_image.load(p).data == FW


def test_one_gap_rule_erased_flash(tmp_path):
    pieces = [(0x10000000, BOOT), (0x10001000, b"DATA"), (0x10000200, b"xy")]
    (tmp_path / "fw.hex").write_text(ihex.write(pieces))
    (tmp_path / "fw.elf").write_bytes(fe.to_elf(pieces))
    for name in ("fw.hex", "fw.elf"):
        img = read(tmp_path / name)
        assert img.segments == sorted(pieces)
        base, data = img.flat()
        assert base == 0x10000000 and len(data) == 0x1004
        assert data[256:0x200] == b"\xff" * 256 and data[0x202:0x1000] == b"\xff" * (0x1000 - 0x202)
        assert img.flat(fill=0, align=256)[1][0x1004:] == bytes(252)  # fill and alignment on request
        assert flash_image.for_board(img, PICO).data == data  # flash and emulator: the same bytes
        assert emu_image.load(tmp_path / name).data == data


def test_adjacent_pieces_merge_and_overlaps_are_refused(tmp_path):
    (tmp_path / "a.hex").write_text(ihex.write([(0x10000000, b"a" * 20), (0x10000014, b"b" * 5)]))
    assert read(tmp_path / "a.hex").segments == [(0x10000000, b"a" * 20 + b"b" * 5)]
    (tmp_path / "o.hex").write_text(ihex.write([(0x10000000, b"a" * 20), (0x10000010, b"b" * 5)]))
    with pytest.raises(BadInput, match="overlaps"):
        read(tmp_path / "o.hex")


@pytest.mark.parametrize("name, data, words", [
    ("empty.uf2", b"", "is empty"),
    ("trunc.uf2", as_uf2(FW)[:700], "not a valid UF2 file"),
    ("lastblock.uf2", as_uf2(FW)[:-512], "not a valid UF2 file.*it has 3 .*truncated"),
    ("text.uf2", b"hello, this is text\n", "not a valid UF2 file"),
    ("junk.elf", b"not an elf" * 10, "not a readable ELF file"),
    ("cut.elf", fe.to_elf([(0x10000000, FW)])[:40], "not a readable ELF file"),
    ("noeof.hex", ihex.write([(0x10000000, FW)]).rsplit(":00000001FF", 1)[0].encode(), "no end-of-file record"),
    ("sum.hex", ihex.write([(0x10000000, FW)]).replace("EA\r\n", "EB\r\n", 1).encode(), "line 1 .*checksum"),
    ("type.hex", b":0100000600F9\n", "line 1 .*record type 0x06"),
], ids=lambda v: v if isinstance(v, str) and "." in v and len(v) < 20 else "")
def test_truncated_garbage_and_empty_files(tmp_path, name, data, words):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(BadInput, match=words) as e:
        read(p, kind=name.rsplit(".", 1)[1])
    assert e.value.code == Exit.BAD_INPUT and e.value.fix and "\n" not in e.value.cause


def test_ihex_reader_all_record_types():
    def rec(rtype, addr, payload):
        body = bytes([len(payload), addr >> 8, addr & 0xFF, rtype]) + payload
        return ":" + (body + bytes([-sum(body) & 0xFF])).hex().upper()

    text = "\n".join([rec(2, 0, b"\x10\x00"),  # 02: segment 0x1000 -> base 0x10000
                      rec(0, 0x10, b"\1\2\3\4"),  # 00 at 0x10010
                      rec(3, 0, b"\0\0\x12\x34"),  # 03: CS:IP 0000:1234
                      rec(4, 0, b"\x10\x00"),  # 04: linear 0x1000_0000
                      rec(5, 0, b"\x08\x07\x06\x05"),  # 05: start 0x08070605
                      rec(0, 0, b"\xaa\xbb"),
                      ":00000001FF", ":garbage after EOF is not read"])
    pieces, start = ihex.parse(text, "t.hex")
    assert pieces == [(0x10010, b"\1\2\3\4"), (0x10000000, b"\xaa\xbb")] and start == 0x08070605


def test_ihex_round_trip():
    segs = [(0x0000F000, bytes(range(256)) * 20), (0x10000000, os.urandom(1000)), (0x1000FFF0, os.urandom(77))]
    text = ihex.write(segs, 0x100001E9)
    pieces, start = ihex.parse(text, "t.hex")
    assert start == 0x100001E9
    joined = {}
    for a, d in pieces:
        joined.update({a + i: b for i, b in enumerate(d)})
    assert joined == {a + i: b for a, d in segs for i, b in enumerate(d)}
    assert all(len(line) <= 1 + 2 * (5 + 16) for line in text.split("\r\n"))


LINKER_SCRIPT = """ENTRY(_start)
PHDRS { low PT_LOAD; code PT_LOAD; blob PT_LOAD; }
SECTIONS {
  .tail 0x00012340 : { *(.tail) } :low
  .text 0x10000000 : { *(.text) } :code
  .blob 0x1001FFF8 : { *(.blob) } :blob
}
"""
ASM = """    .syntax unified
    .thumb
    .section .text, "ax"
    .global _start
_start:
    .fill 37, 1, 0x5A
    .section .blob, "a"
    .fill 40, 1, 0xA5
    .section .tail, "a"
    .fill 5, 1, 0x3C
"""


@pytest.mark.skipif(not (shutil.which("arm-none-eabi-objcopy") and shutil.which("arm-none-eabi-gcc")),
                    reason="arm-none-eabi-gcc/objcopy not installed: cannot compare with objcopy -O ihex")
def test_ihex_writer_is_byte_identical_to_objcopy(tmp_path):
    """Segments below 1 MiB (type 02), a record cut at a 64 KiB boundary, type 04 and 05, CRLF."""
    (tmp_path / "t.s").write_text(ASM)
    (tmp_path / "t.ld").write_text(LINKER_SCRIPT)
    subprocess.run(["arm-none-eabi-gcc", "-nostdlib", "-nostartfiles", "-T", "t.ld", "-o", "t.elf", "t.s"],
                   cwd=tmp_path, check=True)
    subprocess.run(["arm-none-eabi-objcopy", "-O", "ihex", "t.elf", "t.hex"], cwd=tmp_path, check=True)
    img = read(tmp_path / "t.elf")
    assert img.kind == "elf" and len(img.segments) == 3
    assert ihex.write(img.segments, img.entry) == (tmp_path / "t.hex").read_bytes().decode()
    assert read(tmp_path / "t.hex").segments == img.segments


def test_special_files_are_refused_before_reading(tmp_path):
    fifo = tmp_path / "fw.uf2"
    os.mkfifo(fifo)  # opening it would block: it must be refused from stat alone
    with pytest.raises(BadInput, match="is a FIFO, not a firmware file"):
        read(fifo)
    with pytest.raises(BadInput, match="is a directory, not a firmware file"):
        read(tmp_path)
    if os.path.exists("/dev/zero"):
        with pytest.raises(BadInput, match="is a device, not a firmware file"):
            read("/dev/zero")
    with pytest.raises(BadInput, match="does not exist"):
        read(tmp_path / "nope.bin")
    big = tmp_path / "big.bin"
    with open(big, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)  # sparse: nothing is written
    with pytest.raises(BadInput, match="more than any board's flash"):
        read(big)


def test_out_of_region_segments_and_bin_placement(tmp_path):
    (tmp_path / "ram.elf").write_bytes(fe.to_elf([(0x10000000, BOOT), (0x20000000, b"RAM!")]))
    with pytest.raises(BadInput, match="4 bytes at 0x20000000 lie outside flash .*pico's flash 0x10000000-0x10200000"):
        check_for_board(read(tmp_path / "ram.elf"), PICO)
    (tmp_path / "end.hex").write_text(ihex.write([(0x10000000, BOOT), (0x101FFFFE, b"abc")]))
    with pytest.raises(BadInput, match="0x101FFFFE lie outside flash"):
        check_for_board(read(tmp_path / "end.hex"), PICO)
    big = replace(PICO, name="big", flash_bytes=16 * 1024 * 1024)
    assert check_for_board(read(tmp_path / "end.hex"), big).end == 0x10200001
    (tmp_path / "fw.bin").write_bytes(FW)
    img = read(tmp_path / "fw.bin")
    assert not img.placed and check_for_board(img, PICO).start == 0x10000000  # a .bin goes to the flash base
    assert check_for_board(read(tmp_path / "fw.bin", base=0x10000000), PICO).segments == [(0x10000000, FW)]


def test_wrong_uf2_family_and_unflagged_blocks(tmp_path):
    (tmp_path / "rp2350.uf2").write_bytes(as_uf2(FW, family=0xE48BFF59))
    with pytest.raises(BadInput, match=r"an RP2350 image \(UF2 family 0xE48BFF59 \(RP2350 ARM-S\)\), but pico is an "
                                       r"RP2040 board \(0xE48BFF56 \(RP2040\)\).*silently ignore"):
        check_for_board(read(tmp_path / "rp2350.uf2"), PICO)
    raw = bytearray(as_uf2(FW))
    for off in range(0, len(raw), 512):
        struct.pack_into("<I", raw, off + 8, 0)  # no family id flag
    (tmp_path / "unflagged.uf2").write_bytes(bytes(raw))
    with pytest.raises(BadInput, match="UF2 family no family id"):
        check_for_board(read(tmp_path / "unflagged.uf2"), PICO)
    nofam = replace(PICO, name="nofam", uf2_family_id=None)  # a board without UF2 data: no family question
    assert check_for_board(read(tmp_path / "rp2350.uf2"), nofam).kind == "uf2"


def test_boot2_check_and_its_escape_hatch(tmp_path):
    assert boot2.ok(BOOT) and boot2.with_crc(BOOT[:252]) == BOOT and not boot2.ok(BOOT[:200])
    bad = bytearray(FW)
    bad[252] ^= 1
    (tmp_path / "bad.uf2").write_bytes(as_uf2(bytes(bad)))
    with pytest.raises(BadInput, match="valid RP2040 boot2") as e:
        check_for_board(read(tmp_path / "bad.uf2"), PICO)
    assert "--no-boot2-check" not in e.value.fix
    with pytest.raises(BadInput, match="valid RP2040 boot2") as e:
        flash_image.for_board(read(tmp_path / "bad.uf2"), PICO)
    assert "--no-boot2-check" in e.value.fix
    img = flash_image.for_board(read(tmp_path / "bad.uf2"), PICO, boot2_check=False)
    assert img.notes and img.data == bytes(bad)
    # an image that does not start at the flash base leaves the board's boot2 alone (flash) ...
    (tmp_path / "app.uf2").write_bytes(as_uf2(b"\0" * 512, base=0x10010000))
    assert flash_image.for_board(read(tmp_path / "app.uf2"), PICO).base == 0x10010000
    # ... but the virtual board's flash holds nothing else
    with pytest.raises(BadInput, match="valid RP2040 boot2"):
        emu_image.load(tmp_path / "app.uf2")
    noboot = replace(PICO, name="noboot", boot_check=None)  # a chip without a boot check: data only
    assert check_for_board(read(tmp_path / "bad.uf2"), noboot).notes == []


BAD_FILES = {
    "trunc.uf2": lambda: as_uf2(FW)[:-512],
    "garbage.uf2": lambda: as_uf2(FW)[:1000],
    "samd.uf2": lambda: as_uf2(FW, family=0x68ED2B88),
    "noboot2.uf2": lambda: as_uf2(b"\0" * 512),
    "gap.uf2": lambda: bytes(_gap_uf2()),
    "ram.elf": lambda: fe.to_elf([(0x20000000, FW)]),
    "junk.elf": lambda: b"\x7fELF" + bytes(30),
    "noeof.hex": lambda: ihex.write([(0x10000000, FW)])[:-13].encode(),
    "empty.bin": lambda: b"",
    "zeros.bin": lambda: bytes(300),
}


def _gap_uf2():
    raw = bytearray(as_uf2(FW[:256]) + as_uf2(FW[:256], base=0x10001000))
    struct.pack_into("<II", raw, 20, 0, 2)
    struct.pack_into("<II", raw, 512 + 20, 1, 2)
    return raw


@pytest.mark.parametrize("name", BAD_FILES)
def test_flash_drive_and_emulator_give_the_same_verdict(tmp_path, name):
    p = tmp_path / name
    p.write_bytes(BAD_FILES[name]())
    with pytest.raises(BadInput) as flash_err:
        flash_image.for_board(flash_image.read_file(p), PICO)
    with pytest.raises(BadInput) as emu_err:
        emu_image.load(p)
    # the same reason; only the board's name (and the flash escape hatch) differ
    same = flash_err.value.cause.replace("pico", "X").split(" (")[0]
    assert emu_err.value.cause.replace("the virtual RP2040", "X").split(" (")[0] == same
    if name.endswith(".uf2") and name != "noboot2.uf2":  # what the drive runner would copy: refused the same way
        with pytest.raises(BadInput) as drive_err:
            check_uf2(p.read_bytes(), PICO)
        assert drive_err.value.cause.split(": ", 1)[-1].split(" (")[0] == same.split(": ", 1)[-1] or \
            drive_err.value.cause.replace("the UF2 to copy", str(p)).replace("pico", "X").split(" (")[0] == same


def test_not_a_uf2_is_said_before_any_board_question(tmp_path):
    from fwtool.flash import flash_image as flash_api

    p = tmp_path / "text.uf2"
    p.write_text("this is not firmware\n")
    with pytest.raises(BadInput, match="not a valid UF2 file"):
        flash_api(p)  # no board given: the file is read first

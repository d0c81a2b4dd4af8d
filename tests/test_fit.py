"""The fit check (fwtool/firmware/fit.py) and the board memory table: a board file without a [uf2] section (a PSoC 6
style board: .hex image, flash at 0x10000000, SRAM at 0x08000000) gets its flash base from [memory], its image is
counted as flash, not RAM, and embedded input vectors count against flash."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest

from fwtool.firmware import elfsize
from fwtool.firmware.fit import fit_check, fit_report, inputs_that_fit
from fwtool.firmware.families import get_family
from fwtool.firmware.plan import BuildOptions, plan
from fwtool.core import boards
from fwtool.core.errors import BadInput, DoesNotFit
from fwtool.model.tflite import load_model

BOARD = """
name = "{name}"
title = "A board without UF2 data"
family = "rp2040"
mcu = "TEST"
cpu = "cortex-m4"
clock_hz = 125_000_000

[sdk]
pico_board = "pico"

[memory]
flash_base = 0x10000000
sram_base = 0x08000000
flash_bytes = {flash}
sram_bytes = 1_048_576

[image]
kind = "hex"
"""


@pytest.fixture
def board_dir(tmp_path, monkeypatch):
    real = boards.resource_dir
    root = tmp_path / "res"
    (root / "boards").mkdir(parents=True)
    for p in real("boards").glob("*.toml"):
        (root / "boards" / p.name).write_text(p.read_text())
    monkeypatch.setattr(boards, "resource_dir", lambda name: root / name if name == "boards" else real(name))
    boards.builtin_boards.cache_clear()
    yield root / "boards"
    boards.builtin_boards.cache_clear()


def add_board(folder: Path, name: str, flash: int) -> boards.Board:
    (folder / f"{name}.toml").write_text(BOARD.format(name=name, flash=flash))
    boards.builtin_boards.cache_clear()
    return boards.get_board(name)


def elf32(path: Path, sections: list[tuple[str, int, int, int, int]]) -> Path:
    """A minimal little-endian ARM ELF: (name, sh_type, sh_flags, address, size) sections, one PT_LOAD each for
    the PROGBITS ones (file size = section size)."""
    names = b"\0" + b"\0".join(n.encode() for n, *_ in sections) + b"\0.shstrtab\0"
    progbits = [s for s in sections if s[1] == 1]
    phoff, off = 52, 52 + 32 * len(progbits)
    data, offsets = b"", []
    for _, typ, _, _, size in sections:
        offsets.append(off + len(data))
        data += bytes(size) if typ == 1 else b""
    strtab_off = off + len(data)
    shoff = strtab_off + len(names)
    shoff += -shoff % 4
    shnum = len(sections) + 2
    out = bytearray(b"\x7fELF\x01\x01\x01" + bytes(9))
    out += struct.pack("<HHIIIIIHHHHHH", 2, 40, 1, 0, phoff, shoff, 0, 52, 32, len(progbits), 40, shnum, shnum - 1)
    for (_, typ, _, addr, size), o in zip(sections, offsets):
        if typ == 1:
            out += struct.pack("<8I", 1, o, addr, addr, size, size, 5, 4)
    out += data + names
    out += bytes(shoff - len(out))
    out += bytes(40)  # the null section
    pos = 1
    for (name, typ, flags, addr, size), o in zip(sections, offsets):
        out += struct.pack("<10I", pos, typ, flags, addr, o, size, 0, 0, 4, 0)
        pos += len(name) + 1
    out += struct.pack("<10I", pos, 3, 0, 0, strtab_off, len(names), 0, 0, 1, 0)
    path.write_bytes(bytes(out))
    return path


def test_a_board_without_uf2_data_takes_its_flash_base_from_the_memory_table(board_dir):
    b = add_board(board_dir, "nouf2", 2 << 20)
    assert (b.flash_base, b.sram_base, b.uf2_family_id, b.image_kind) == (0x10000000, 0x08000000, None, "hex")
    assert b.to_dict()["flash_base"] == "0x10000000"


def test_an_image_at_the_flash_base_counts_as_flash_not_ram(board_dir, tmp_path):
    b = add_board(board_dir, "nouf2", 1 << 20)
    alloc, write, exe = 2, 1, 4
    elf = elf32(tmp_path / "fw.elf", [(".text", 1, alloc | exe, 0x10000000, 0x1000),
                                      (".rodata", 1, alloc, 0x10001000, 0x200),
                                      (".data", 1, alloc | write, 0x08000000, 0x100),
                                      (".bss", 8, alloc | write, 0x08000100, 0x300)])
    s = elfsize.sizes(elf, b.flash_base, b.flash_bytes)
    assert (s.text, s.data, s.bss) == (0x1200, 0x100, 0x300)
    assert s.flash == 0x1000 + 0x200 + 0x100  # code, rodata and .data's load image
    assert s.ram == 0x100 + 0x300  # only what lies outside the flash window
    wrong = elfsize.sizes(elf, 0, b.flash_bytes)  # the old bug: flash_base 0 counts the code as RAM
    assert wrong.ram == s.ram + 0x1200


def test_fit_check_on_a_board_without_uf2_data(board_dir, fire_alarm):
    m, fam = load_model(fire_alarm), get_family("rp2040")
    small = add_board(board_dir, "small", m.size + fam.code_reserve_bytes + 1000)
    r = fit_check(small, fam, m, 20_000, 0)
    assert r["fits"] and r["flash"]["margin"] == 1000 and r["flash"]["available"] == small.flash_bytes
    assert r["ram"]["required"] == 20_000 + fam.ram_reserve_bytes


def test_fit_check_counts_embedded_input_bytes(board_dir, fire_alarm):
    m, fam = load_model(fire_alarm), get_family("rp2040")
    b = add_board(board_dir, "small", m.size + fam.code_reserve_bytes + 40_000)
    r = fit_report(b, fam, m, 20_000, 30_000)
    assert r["fits"] and r["flash"]["input"] == 30_000 and r["flash"]["margin"] == 10_000
    with pytest.raises(DoesNotFit) as e:
        fit_check(b, fam, m, 20_000, 50_000)
    assert "flash short by 10,000 bytes" in e.value.cause and "inputs 50,000" in e.value.cause
    assert inputs_that_fit(b, fam, m, 15_996) == 2


def test_the_build_plan_counts_its_embedded_vectors(board_dir, fire_alarm):
    m, fam = load_model(fire_alarm), get_family("rp2040")
    b = add_board(board_dir, "small", m.size + fam.code_reserve_bytes + 40_000)
    vec = bytes(15_996)  # fire_alarm's int8 1x124x129x1 input
    p = plan(BuildOptions(board=b.name, model=fire_alarm, inputs=[vec, vec], inputs_source="zeros (2)"))
    assert p.fit["flash"]["input"] == 2 * len(vec) == p.input_bytes and p.inputs_source == "zeros (2)"
    with pytest.raises(DoesNotFit, match="flash short by"):  # a third vector no longer fits
        plan(BuildOptions(board=b.name, model=fire_alarm, inputs=[vec] * 3))
    with pytest.raises(BadInput, match="input vector 0 has 3 bytes"):
        plan(BuildOptions(board=b.name, model=fire_alarm, inputs=[b"abc"]))
    p1 = plan(BuildOptions(board=b.name, model=fire_alarm))  # the default app: no vectors, zeros at run time
    assert p1.fit["flash"]["input"] == 0 and p1.inputs_source == "zeros"

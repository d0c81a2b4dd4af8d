"""Raspberry Pi Pico 2 (RP2350, issue 24): board files, UF2 family + the RP2350-E10 block, wrong-chip refusals on
every path (image check, drive, PICOBOOT, --uf2), RP2350 PICOBOOT against its protocol fake, and (with trees,
the cross compiler and QEMU) a real build and validate on the virtual Cortex-M33."""
import json
import shutil
import struct
import subprocess

import pytest

from fakes_picoboot import FakeBoard, install, make_uf2
from fakes_picoboot2350 import UF2_RP2350_ARM_S, FakeBoard2350, make_firmware_2350
from fwtool.cli import main
from fwtool.core.boards import get_board, load_file
from fwtool.core.errors import BadInput, NoDevice
from fwtool.devices.drives import drive_chip, require_rp2_drive
from fwtool.image import firmware, picobin, uf2
from fwtool.image.check import check_for_board

FW2 = make_firmware_2350(60_000, seed=5)


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return e.value.code, out, err


# ---- board files ---------------------------------------------------------------------------------------------

def test_pico2_boards_load_with_rp2350_values():
    for name in ("pico2", "pico2_w"):
        b = get_board(name)
        assert (b.family, b.mcu, b.cpu, b.clock_hz) == ("rp2350", "RP2350A", "cortex-m33", 150_000_000)
        assert (b.flash_bytes, b.sram_bytes, b.uf2_family_id) == (4 * 1024 * 1024, 520 * 1024, 0xE48BFF59)
        assert (b.sdk.pico_platform, b.sdk.dsp, b.boot_check) == ("rp2350-arm-s", True, "rp2350-image-def")
        assert (b.usb_app, b.usb_bootsel) == ((0x2E8A, 0x0009), (0x2E8A, 0x000F))
    assert get_board("pico2").led.pin == 25 and get_board("pico2_w").led.pin == -1


def _board_file(tmp_path, text):
    p = tmp_path / "b.toml"
    p.write_text(text)
    return p


BASE = 'name = "x"\nfamily = "{fam}"\nmcu = "M"\ncpu = "cortex-m33"\nclock_hz = 1\n' \
       '[memory]\nflash_base = 0x10000000\nflash_bytes = 4194304\nsram_bytes = 532480\n[sdk]\npico_board = "pico2"\n'


@pytest.mark.parametrize("fam,extra,words", [
    ("rp2350", 'pico_platform = "rp2351"', ["pico_platform = 'rp2351' is not a platform pico-sdk 2.2.0 knows",
                                            "did you mean 'rp2350'"]),
    ("rp2350", 'pico_platform = "rp2040"', ["not built by fwtool's rp2350 family"]),
    ("rp2350", 'pico_platform = "rp2350-riscv"', ["Hazard3 RISC-V cores are not supported"]),
    ("rp2040", "dsp = false", ["[sdk] dsp is an RP2350 option", "--board pico2"]),
])
def test_bad_board_files_are_one_refusal(tmp_path, fam, extra, words):
    p = _board_file(tmp_path, BASE.format(fam=fam) + extra + "\n")
    with pytest.raises(BadInput) as e:
        load_file(p)
    assert e.value.code == 3 and all(w in e.value.cause + " " + (e.value.fix or "") for w in words), e.value.cause


# ---- UF2: family, the E10 block, readers -------------------------------------------------------------------------

def test_abs_block_is_picotools_and_readers_skip_it():
    data = uf2.from_bin(FW2, 0x10000000, UF2_RP2350_ARM_S, abs_block_at=uf2.ABS_BLOCK_ADDRESS)
    m0, m1, flags, addr, size, no, num, fam = struct.unpack_from("<8I", data, 0)
    assert (flags, addr, size, no, num, fam) == (0xA000, 0x10FFFF00, 256, 0, 2, 0xE48BFF57)
    assert data[32:288] == b"\xef" * 256 and struct.unpack_from("<I", data, 288)[0] == 0x9957E304
    blocks = uf2.parse(data)
    assert blocks[0].ignored and not any(b.ignored for b in blocks[1:])
    uf2.validate(data, UF2_RP2350_ARM_S, 0x10000000, expect=FW2)  # the block does not break validation
    img = firmware.parse(data, "fw.uf2", "uf2")
    assert img.uf2_families == (UF2_RP2350_ARM_S,) and img.start == 0x10000000
    assert any("RP2350-E10" in n for n in img.notes)
    check_for_board(img, get_board("pico2"))  # accepted, boot check included (IMAGE_DEF present)


def test_image_without_image_def_is_refused_for_pico2():
    img = firmware.parse(make_uf2(b"\0" * 8192, family=UF2_RP2350_ARM_S), "fw.uf2", "uf2")
    with pytest.raises(BadInput) as e:
        check_for_board(img, get_board("pico2"))
    assert "IMAGE_DEF" in e.value.cause
    assert picobin.image_def_at(FW2) == 0x110


@pytest.mark.parametrize("image_family,board,chips,use", [
    (0xE48BFF56, "pico2", ("RP2040 image", "RP2350 board"), "--board pico"),
    (UF2_RP2350_ARM_S, "pico", ("RP2350 image", "RP2040 board"), "--board pico2"),
])
def test_wrong_chip_uf2_names_both_chips_and_the_board(image_family, board, chips, use):
    img = firmware.parse(make_uf2(FW2, family=image_family), "fw.uf2", "uf2")
    with pytest.raises(BadInput) as e:
        check_for_board(img, get_board(board))
    assert all(c in e.value.cause for c in chips) and "nothing was written" in e.value.cause
    assert use in e.value.fix


# ---- BOOTSEL drives -------------------------------------------------------------------------------------------

def test_drive_board_id_tells_the_chip(tmp_path):
    for name, text, chip in (("a", "UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n", "RP2040"),
                             ("b", "UF2 Bootloader v1.0\nModel: Raspberry Pi RP2350\nBoard-ID: RP2350\n", "RP2350")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "INFO_UF2.TXT").write_text(text)
        assert drive_chip(tmp_path / name) == chip
    require_rp2_drive(tmp_path / "b", "RP2350")
    with pytest.raises(NoDevice) as e:
        require_rp2_drive(tmp_path / "a", "RP2350")
    assert "drive of an RP2040, not of an RP2350" in e.value.cause and "--board pico" in e.value.fix


def test_pico_uf2_on_a_pico2_drive_is_refused_before_writing(monkeypatch, capsys, tmp_path):
    board = FakeBoard2350("bootsel", drive_dir=tmp_path / "RP2350")
    install(monkeypatch, board)
    (tmp_path / "pico.uf2").write_bytes(make_uf2(FW2))  # RP2040 family
    code, _, err = run(capsys, "flash", "--uf2", str(tmp_path / "pico.uf2"), "--board", "pico2",
                       "--drive", str(tmp_path / "RP2350"))
    assert code == 3 and "RP2040 image" in err and "RP2350 board" in err and "--board pico" in err
    assert not (tmp_path / "RP2350" / "FWTOOL.UF2").exists() and board.picoboot.commands == []


# ---- PICOBOOT on the RP2350 fake --------------------------------------------------------------------------------

def test_flash_pico2_over_picoboot_uses_4k_sectors_and_reboot2(monkeypatch, capsys, tmp_path):
    board = FakeBoard2350("bootsel")
    install(monkeypatch, board)
    path = tmp_path / "fw.uf2"
    path.write_bytes(uf2.from_bin(FW2, 0x10000000, UF2_RP2350_ARM_S, abs_block_at=uf2.ABS_BLOCK_ADDRESS))
    code, out, err = run(capsys, "flash", "--uf2", str(path), "--board", "pico2", "--json")
    assert code == 0, err
    assert bytes(board.flash[:len(FW2)]) == FW2  # the ignored block wrote nothing at 0x10FFFF00
    assert bytes(board.flash[0xFFFF00 % len(board.flash):][:256]) == b"\xff" * 256
    pb = board.picoboot_sessions[0]
    names = [c[0] for c in pb.commands]
    assert names[:2] == ["EXCLUSIVE_ACCESS", "EXIT_XIP"] or "EXCLUSIVE_ACCESS" in names
    assert "REBOOT2" in names and "REBOOT" not in names
    assert pb.reboot2 == [(0x10, 500, 0, 0)]  # NORMAL | REBOOT_TO_ARM
    assert pb.erased_sectors == -(-len(FW2) // 4096)
    assert json.loads(out)["verified"] is True and board.mode == "app"


def test_rp2040_fake_refuses_reboot2_so_the_client_never_sends_it_there(monkeypatch, capsys, tmp_path):
    board = FakeBoard("bootsel")
    install(monkeypatch, board)
    path = tmp_path / "fw.uf2"
    path.write_bytes(make_uf2(b"\0" * 1024))  # no valid boot2: the check is skipped by the option
    code, _, err = run(capsys, "flash", "--uf2", str(path), "--board", "pico", "--no-boot2-check")
    assert [c[0] for c in board.picoboot_sessions[0].commands][-1] == "REBOOT"


def test_pico_attached_for_board_pico2_is_refused_naming_both(monkeypatch, capsys, tmp_path):
    board = FakeBoard("bootsel")  # an RP2040 in BOOTSEL
    install(monkeypatch, board)
    path = tmp_path / "fw.uf2"
    path.write_bytes(uf2.from_bin(FW2, 0x10000000, UF2_RP2350_ARM_S))
    code, _, err = run(capsys, "flash", "--uf2", str(path), "--board", "pico2")
    assert code == 3 and "is an RP2040" in err and "--board pico2 is an RP2350 board" in err
    assert "nothing was written" in err and board.picoboot.commands == []
    assert err.count("error:") == 1 and "Traceback" not in err


def test_devices_tells_pico_from_pico2_in_every_mode(monkeypatch, capsys, tmp_path):
    install(monkeypatch, FakeBoard("app", location=(1, (1,))), FakeBoard2350("app", location=(1, (2,))),
            FakeBoard("bootsel", location=(1, (3,))),
            FakeBoard2350("bootsel", location=(1, (4,)), drive_dir=tmp_path / "RP2350"))
    code, out, _ = run(capsys, "devices", "--json")
    assert code == 0
    got = [(b["mode"], b["location"], b["chip"]) for b in json.loads(out)["boards"]]
    assert got == [("app", "1-1", "RP2040"), ("app", "1-2", "RP2350"), ("bootsel", "1-3", "RP2040"),
                   ("bootsel", "1-4", "RP2350")]
    code, out, _ = run(capsys, "devices")
    assert "RP2350" in out and "RP2040" in out


# ---- real build and the virtual Cortex-M33 (skipped without trees / toolchain / QEMU) ------------------------------

@pytest.fixture(scope="module")
def pico2_build(tmp_path_factory):
    from conftest import build_prerequisites
    reason = build_prerequisites()
    if reason:
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("p2") / "pico2"
    # the default options, as a user builds (the default --tflm-cores 2 once failed to link on pico2)
    r = subprocess.run(["python3", "-m", "fwtool", "build", "--board", "pico2", "-m", "example:fire_alarm",
                        "--out", str(out), "--json"], capture_output=True, text=True, timeout=1800)
    if r.returncode != 0 and "vendor" in r.stderr and "not available" in r.stderr:
        pytest.skip(r.stderr.strip().splitlines()[0])
    assert r.returncode == 0, r.stderr[-2000:]
    return out, json.loads(r.stdout)


def test_real_pico2_build_uf2_family_addresses_and_sizes(pico2_build):
    out, report = pico2_build
    data = (out / "firmware.uf2").read_bytes()
    blocks = uf2.parse(data)
    assert blocks[0].ignored and blocks[0].address == 0x10FFFF00 and blocks[0].family_id == 0xE48BFF57
    main_blocks = [b for b in blocks if not b.ignored]
    assert {b.family_id for b in main_blocks} == {0xE48BFF59}
    assert all(0x10000000 <= b.address and b.address + 256 <= 0x10000000 + 4 * 1024 * 1024 for b in main_blocks)
    text, data_, bss = map(int, subprocess.run(["arm-none-eabi-size", str(out / "firmware.elf")], capture_output=True,
                                               text=True, check=True).stdout.splitlines()[1].split()[:3])
    assert (report["sizes"]["text"], report["sizes"]["data"], report["sizes"]["bss"]) == (text, data_, bss)
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(out / "firmware.elf")], capture_output=True,
                         text=True, check=True).stdout
    assert "smlad" in dis  # CMSIS-NN's DSP paths are what is linked
    assert (out / "cmake" / "firmware_vm33.elf").is_file()
    # pico-tflmicro splits only the plain-C matmul across cores: with the M33's DSP paths TFLM runs on one core,
    # and the report says so (the virtual M33 link exists because nothing needs pico_multicore)
    assert report["build"]["tflm_cores"] == 1


def test_validate_fire_alarm_on_the_virtual_m33(pico2_build, capsys, tmp_path):
    if not shutil.which("qemu-system-arm"):
        pytest.skip("qemu-system-arm not installed (apt-get install qemu-system-arm)")
    code, out, err = run(capsys, "validate", "--board", "pico2", "-m", "example:fire_alarm",
                         "--out", str(tmp_path / "v"))
    assert code == 0, err
    assert "QEMU mps2-an505" in out and "PASS" in out and "not RP2350 timing" in out


# ---- memories: 4 MB flash, 520 KB SRAM -------------------------------------------------------------------------

@pytest.mark.parametrize("extra,words", [
    ((), ["does not fit pico2: flash short by", "> 4,194,304"]),
])
def test_model_too_large_for_4mb_is_one_refusal_with_the_shortfall(capsys, tmp_path, extra, words):
    import modelgen
    model = tmp_path / "big.tflite"
    model.write_bytes(modelgen.padded_model(4_300_000))
    code, _, err = run(capsys, "build", "--board", "pico2", "-m", str(model), "--out", str(tmp_path / "o"), *extra)
    assert code == 5 and all(w in err for w in words), err
    assert err.count("error:") == 1 and not (tmp_path / "o" / "firmware.uf2").exists()


def test_arena_too_large_for_520kb_names_the_bytes(capsys, tmp_path, fire_alarm):
    code, _, err = run(capsys, "build", "--board", "pico2", "-m", str(fire_alarm), "--arena", "600000",
                       "--out", str(tmp_path / "o"))
    assert code == 5 and "pico2" in err and "532,480" in err, err
    assert not (tmp_path / "o" / "firmware.uf2").exists()

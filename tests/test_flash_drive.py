"""The BOOTSEL drive path: only a verified RPI-RP2 folder is written to, only an RP2040 UF2, success confirmed."""
import json

import pytest

from fakes_picoboot import INFO_TEXT, FakeBoard, install, make_firmware, make_uf2
from fwtool.cli import main

FW = make_firmware(30_000, seed=11)


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return e.value.code, out, err


def listing(folder):
    return sorted((p.name, p.read_bytes()) for p in folder.iterdir())


@pytest.fixture
def uf2_file(tmp_path):
    p = tmp_path / "fw.uf2"
    p.write_bytes(make_uf2(FW))
    return p


def test_drive_copy_confirmed_by_the_drive_going_away(tmp_path, monkeypatch, capsys, uf2_file):
    drive = tmp_path / "RPI-RP2"
    board = FakeBoard("bootsel", drive_dir=drive, usb_access=False)
    install(monkeypatch, board)
    code, out, err = run(capsys, "flash", "--uf2", str(uf2_file), "--drive", str(drive), "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["method"] == "drive" and r["verified"] is False and r["confirmed_by"] in ("drive ejected", "app started")
    assert r["uf2_bytes"] == uf2_file.stat().st_size
    assert bytes(board.flash[:len(FW)]) == FW and board.mode == "app"


def test_method_drive_finds_the_mounted_drive(tmp_path, monkeypatch, capsys, uf2_file):
    board = FakeBoard("app", drive_dir=tmp_path / "media" / "RPI-RP2")
    install(monkeypatch, board)
    code, out, err = run(capsys, "flash", "--uf2", str(uf2_file), "--method", "drive", "--json")
    assert code == 0, err
    assert json.loads(out)["method"] == "drive" and bytes(board.flash[:len(FW)]) == FW
    assert board.app_controls == [(0x21, 0x01, 0, 2, None)]  # reset interface first, drive afterwards


@pytest.mark.parametrize("info", [
    "UF2 Bootloader v1.1\nModel: Adafruit Feather M0\nBoard-ID: SAMD21G18A-Feather-v0\n",
    "UF2 Bootloader v1.0\nModel: Raspberry Pi RP2350\nBoard-ID: RP2350\n",
    "Board-ID: RPI-RP2-NOT\n",
    None,
])
def test_folder_that_is_not_an_rp2040_drive_is_never_written(tmp_path, monkeypatch, capsys, uf2_file, info):
    folder = tmp_path / "USBSTICK"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    if info is not None:
        (folder / "INFO_UF2.TXT").write_text(info)
    before = listing(folder)
    install(monkeypatch)
    code, _, err = run(capsys, "flash", "--uf2", str(uf2_file), "--drive", str(folder))
    assert code == 6 and "nothing was written" in err
    assert listing(folder) == before


def test_wrong_family_uf2_is_refused_for_the_drive(tmp_path, monkeypatch, capsys):
    drive = tmp_path / "RPI-RP2"
    board = FakeBoard("bootsel", drive_dir=drive)
    install(monkeypatch, board)
    wrong = tmp_path / "samd.uf2"
    wrong.write_bytes(make_uf2(FW, family=0x68ED2B88))
    before = listing(drive)
    code, _, err = run(capsys, "flash", "--uf2", str(wrong), "--drive", str(drive), "--board", "pico")
    assert code == 3 and "0x68ED2B88 (SAMD21)" in err and "silently ignore" in err
    assert listing(drive) == before and board.flash[:16] == b"\xff" * 16


def test_drive_check_rejects_mixed_family_uf2(tmp_path):
    from fwtool.core.boards import get_board
    from fwtool.core.errors import BadInput
    from fwtool.flash.drive import check_uf2

    mixed = make_uf2(FW[:512]) + make_uf2(FW[:512], family=0xE48BFF59)
    with pytest.raises(BadInput, match="RP2350"):
        check_uf2(mixed, get_board("pico"))
    check_uf2(make_uf2(FW), get_board("pico"))


def test_drive_that_does_not_go_away_times_out(tmp_path, monkeypatch, capsys, uf2_file):
    drive = tmp_path / "RPI-RP2"
    drive.mkdir()
    (drive / "INFO_UF2.TXT").write_text(INFO_TEXT)  # a real-looking drive with no bootrom behind it
    install(monkeypatch)
    code, out, err = run(capsys, "flash", "--uf2", str(uf2_file), "--drive", str(drive), "--timeout", "2")
    assert code == 7 and "still there" in err and "did not take the image" in err
    assert "done" not in out


def test_drive_ignores_foreign_blocks_like_the_bootrom(tmp_path, monkeypatch):
    """Fidelity of the fake drive: a wrong-family UF2 copied by hand is ignored; the board stays in BOOTSEL."""
    drive = tmp_path / "RPI-RP2"
    board = FakeBoard("bootsel", drive_dir=drive)
    be = install(monkeypatch, board)
    (drive / "X.UF2").write_bytes(make_uf2(FW, family=0xE48BFF59))
    be.sleep(2.0)
    assert board.mode == "bootsel" and board.flash[:16] == b"\xff" * 16

"""`fwtool flash` / `fwtool devices` end to end (fwtool.cli.main) against fake boards on a fake USB bus."""
import json

import pytest

from fakes_picoboot import FakeBoard, install, make_firmware, make_uf2
from fwtool.cli import main

FW = make_firmware(120_516, seed=3)  # the fire_alarm build's size
PADDED = FW + b"\0" * (-len(FW) % 256)


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return e.value.code, out, err


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder whose last build (build/pico/report.json) made firmware.uf2 from FW."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "build" / "pico"
    out.mkdir(parents=True)
    (out / "firmware.uf2").write_bytes(make_uf2(FW))
    (out / "firmware.bin").write_bytes(FW)
    (out / "report.json").write_text(json.dumps({"board": {"name": "pico"},
                                                 "files": {"uf2": str(out / "firmware.uf2")}}))
    return out


def test_flash_running_app_without_button_verified(project, monkeypatch, capsys):
    board = FakeBoard("app", firmware=make_firmware(80_000, seed=9))
    install(monkeypatch, board)
    code, out, err = run(capsys, "flash", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["method"] == "picoboot" and r["verified"] is True and r["started"] is True
    assert r["serial"] == "E6614103E7452D2F" and r["location"] == "1-1.3" and r["port"] == "/dev/ttyACM0"
    assert r["reset"] == "reset interface"
    assert r["bytes_written"] > 0 and r["bytes_written"] + r["bytes_skipped"] >= len(FW)
    assert isinstance(r["seconds"], float)
    assert bytes(board.flash[:len(FW)]) == FW
    # exactly one control request to the app: RESET_REQUEST_BOOTSEL on the reset interface (2)
    assert board.app_controls == [(0x21, 0x01, 0, 2, None)]
    assert board.history == ["app", "gone", "bootsel", "gone", "app"]
    # 'fwtool monitor' prefers the board flashed last
    from fwtool.devices.last_flash import read_last_flash

    assert read_last_flash() == {"serial": "E6614103E7452D2F", "board": "pico", "age_s": pytest.approx(0, abs=60)}


def test_reflash_same_image_writes_at_most_5_percent(project, monkeypatch, capsys):
    board = FakeBoard("bootsel")
    install(monkeypatch, board)
    code, out, _ = run(capsys, "flash", "--json")
    first = json.loads(out)
    assert code == 0 and first["bytes_written"] >= len(FW) - 256
    code, out, _ = run(capsys, "flash", "--json")  # the board now runs it: reset, compare, nothing to write
    second = json.loads(out)
    assert code == 0 and second["verified"] is True
    assert second["bytes_written"] <= 0.05 * second["bytes_total"]
    assert second["bytes_written"] == 0 and second["sectors_skipped"] == second["sectors_total"] == 30
    assert board.picoboot.erased_sectors == 0


def test_human_output_names_the_steps(project, monkeypatch, capsys):
    install(monkeypatch, FakeBoard("app"))
    code, out, err = run(capsys, "flash")
    assert code == 0, err
    assert "into BOOTSEL via the reset interface" in err
    assert "verified  yes" in out and "started   app running on /dev/ttyACM0" in out
    assert "written   120,576 B in 30 of 30 sectors" in out


@pytest.mark.parametrize("faults,code,words", [
    ({"drop_ack_at": 25}, 1, "no answer"),
    ({"halt_after_write_bytes": 50_000}, 1, "endpoint halted"),
    ({"disappear_after_commands": 40}, 9, "disconnected"),
    ({"corrupt_page": 100}, 1, "verify failed"),
])
def test_injected_faults_fail_loudly(project, monkeypatch, capsys, faults, code, words):
    board = FakeBoard("app", faults=faults)
    install(monkeypatch, board)
    rc, out, err = run(capsys, "flash")
    assert rc == code
    assert words in err and "error:" in err and "fix:" in err
    assert "verified  yes" not in out and "done" not in out
    install(monkeypatch, FakeBoard("app", faults=faults))
    rc, out, err = run(capsys, "flash", "--json")
    assert rc == code and json.loads(out)["exit_code"] == code and words in json.loads(out)["error"]


def test_no_verify_is_reported(project, monkeypatch, capsys):
    install(monkeypatch, FakeBoard("bootsel"))
    code, out, _ = run(capsys, "flash", "--json", "--no-verify")
    assert code == 0 and json.loads(out)["verified"] is False


def test_no_reboot_leaves_board_in_bootsel(project, monkeypatch, capsys):
    board = FakeBoard("bootsel")
    install(monkeypatch, board)
    code, out, _ = run(capsys, "flash", "--json", "--no-reboot")
    assert code == 0 and json.loads(out)["rebooted"] is False
    assert board.mode == "bootsel" and board.picoboot.exclusive == 0


def test_access_denied_names_the_udev_rule(project, monkeypatch, capsys):
    install(monkeypatch, FakeBoard("bootsel", usb_access=False))
    code, out, err = run(capsys, "flash")
    assert code == 4
    assert "permission" in err and "60-fwtool.rules" in err and "fwtool doctor" in err


def test_access_denied_falls_back_to_the_drive(project, monkeypatch, capsys, tmp_path):
    board = FakeBoard("app", usb_access=False, drive_dir=tmp_path / "media" / "RPI-RP2")
    be = install(monkeypatch, board)
    code, out, err = run(capsys, "flash", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["method"] == "drive" and r["verified"] is False and r["reset"] == "1200-baud touch"
    assert be.touches == ["/dev/ttyACM0"] and board.app_controls == []
    assert bytes(board.flash[:len(FW)]) == FW and board.mode == "app"
    assert any("cannot verify" in n for n in r["notes"])


def test_no_libusb_backend_uses_1200_baud_and_the_drive(project, monkeypatch, capsys, tmp_path):
    board = FakeBoard("app", drive_dir=tmp_path / "RPI-RP2")
    be = install(monkeypatch, board, no_usb=True)
    code, out, err = run(capsys, "flash")
    assert code == 0, err
    assert be.touches == ["/dev/ttyACM0"] and bytes(board.flash[:len(FW)]) == FW
    assert "copied" in out and "verified  no" in out


def test_no_libusb_and_method_picoboot_says_how_to_install_it(project, monkeypatch, capsys, tmp_path):
    install(monkeypatch, FakeBoard("app", drive_dir=tmp_path / "RPI-RP2"), no_usb=True)
    code, _, err = run(capsys, "flash", "--method", "picoboot")
    assert code == 4 and "libusb" in err and "apt-get install libusb-1.0-0" in err


def test_several_boards_refused_then_chosen_by_serial(project, monkeypatch, capsys):
    a = FakeBoard("app", serial="AAAA000000000001", location=(1, (1, 2)))
    b = FakeBoard("app", serial="BBBB000000000002", location=(1, (1, 4)))
    install(monkeypatch, a, b)
    code, _, err = run(capsys, "flash")
    assert code == 6 and "2 RP2040 boards" in err and "AAAA000000000001" in err and "BBBB000000000002" in err
    assert a.history == ["app"] and b.history == ["app"]  # nothing was touched
    code, out, err = run(capsys, "flash", "--serial", "BBBB000000000002", "--json")
    assert code == 0, err
    assert json.loads(out)["serial"] == "BBBB000000000002" and json.loads(out)["location"] == "1-1.4"
    assert bytes(b.flash[:len(FW)]) == FW and a.flash[:16] == b"\xff" * 16 and a.history == ["app"]


def test_two_boards_in_bootsel_are_told_apart_by_usb_location(project, monkeypatch, capsys):
    a = FakeBoard("bootsel", location=(1, (2,)))
    b = FakeBoard("bootsel", location=(3, (1, 1)))
    install(monkeypatch, a, b)
    code, _, err = run(capsys, "flash")
    assert code == 6 and "usb 1-2" in err and "usb 3-1.1" in err
    code, out, err = run(capsys, "flash", "--serial", "3-1.1", "--json")
    assert code == 0, err
    assert bytes(b.flash[:len(FW)]) == FW and a.flash[:16] == b"\xff" * 16


def test_no_board(project, monkeypatch, capsys):
    install(monkeypatch)
    code, _, err = run(capsys, "flash")
    assert code == 6 and "no RP2040 board found" in err and "BOOTSEL" in err


def test_board_that_never_reaches_bootsel_times_out(project, monkeypatch, capsys):
    install(monkeypatch, FakeBoard("app", reset_interface=False, baud_reset=False))
    code, _, err = run(capsys, "flash", "--timeout", "3")
    assert code == 7 and "did not come back in BOOTSEL mode after the 1200-baud touch" in err


def test_image_that_does_not_boot_is_refused_or_detected(project, monkeypatch, capsys, tmp_path):
    bad = bytearray(FW)
    bad[252] ^= 1  # boot2 checksum broken
    (tmp_path / "bad.uf2").write_bytes(make_uf2(bytes(bad)))
    board = FakeBoard("bootsel")
    install(monkeypatch, board)
    code, _, err = run(capsys, "flash", "--uf2", str(tmp_path / "bad.uf2"))
    assert code == 3 and "boot2" in err and board.picoboot.commands == []
    code, _, err = run(capsys, "flash", "--uf2", str(tmp_path / "bad.uf2"), "--no-boot2-check")
    assert code == 1 and "came back in BOOTSEL mode" in err and "verified" in err
    assert board.mode == "bootsel"


def test_wrong_family_uf2_is_refused_before_touching_the_board(project, monkeypatch, capsys, tmp_path):
    (tmp_path / "rp2350.uf2").write_bytes(make_uf2(FW, family=0xE48BFF59))
    board = FakeBoard("app")
    install(monkeypatch, board)
    code, _, err = run(capsys, "flash", "--uf2", str(tmp_path / "rp2350.uf2"), "--board", "pico")
    assert code == 3 and "0xE48BFF59 (RP2350 ARM-S)" in err and "silently ignore" in err
    assert board.history == ["app"] and board.app_controls == []


def test_elf_and_bin_inputs(project, monkeypatch, capsys, tmp_path):
    board = FakeBoard("bootsel")
    install(monkeypatch, board)
    (tmp_path / "fw.bin").write_bytes(FW)
    code, out, err = run(capsys, "flash", "--bin", str(tmp_path / "fw.bin"), "--json")
    assert code == 0, err
    assert bytes(board.flash[:len(FW)]) == FW and json.loads(out)["image"]["kind"] == "bin"


def test_no_build_yet(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    install(monkeypatch, FakeBoard("bootsel"))
    code, _, err = run(capsys, "flash")
    assert code == 3 and "no build found" in err and "fwtool build" in err


def test_devices_lists_modes(monkeypatch, capsys, tmp_path):
    install(monkeypatch, FakeBoard("app", location=(1, (1,))),
            FakeBoard("bootsel", location=(1, (2,)), drive_dir=tmp_path / "RPI-RP2"))
    code, out, _ = run(capsys, "devices", "--json")
    assert code == 0
    boards = json.loads(out)["boards"]
    assert [(b["mode"], b["location"]) for b in boards] == [("app", "1-1"), ("bootsel", "1-2")]
    assert boards[0]["serial"] == "E6614103E7452D2F" and boards[0]["port"] == "/dev/ttyACM0"
    assert boards[1]["drive"] == str(tmp_path / "RPI-RP2") and boards[1]["picoboot"] is True
    code, out, _ = run(capsys, "flash", "--list")
    assert code == 0 and "running app" in out and "BOOTSEL" in out


def test_devices_udev_rule(capsys):
    code, out, _ = run(capsys, "devices", "--udev-rule")
    assert code == 0
    assert 'ATTRS{idVendor}=="2e8a", ATTRS{idProduct}=="0003"' in out
    assert 'ATTRS{idProduct}=="000a"' in out and 'TAG+="uaccess"' in out


def test_fire_alarm_build_flashes_byte_identical(fire_alarm_build, monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(tmp_path)
    d = fire_alarm_build
    binary = (d / "firmware.bin").read_bytes()
    board = FakeBoard("app", firmware=make_firmware(200_000, seed=5))  # an older, bigger app is running
    install(monkeypatch, board)
    code, out, err = run(capsys, "flash", "--uf2", str(d / "firmware.uf2"), "--json")
    assert code == 0, err
    assert bytes(board.flash[:len(binary)]) == binary
    assert json.loads(out)["verified"] is True and board.mode == "app"
    code, out, err = run(capsys, "flash", "--uf2", str(d / "firmware.uf2"), "--json")
    assert code == 0 and json.loads(out)["bytes_written"] <= 0.05 * len(binary)
    code, out, err = run(capsys, "flash", "--elf", str(d / "firmware.elf"), "--board", "pico", "--json")
    assert code == 0 and json.loads(out)["bytes_written"] == 0  # the ELF's segments are the UF2's bytes

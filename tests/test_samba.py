"""The SAM-BA runner (fwtool/flash/runners/samba.py + fwtool/flash/samba/) against tests/fakes_samba.py: a pty that
answers as Arduino's SAM-BA extended 2.0 bootloader on the Nano 33 BLE does. Erase, page writes through the RAM
buffer, CRC verify, reset; the 1200-baud touch and both USB identities; the failure cases of issue 25."""
import json
import time

import fakes_samba as fk
import pytest

from fwtool import devices
from fwtool import flash as fl
from fwtool.cli import main
from fwtool.core.boards import get_board
from fwtool.core.errors import BadInput, NoDevice
from fwtool.flash.request import WriteOptions
from fwtool.core.errors import DeviceLost, FlashFailed, WaitTimeout
from fwtool.flash.base import Image
from fwtool.flash.runners import RUNNERS
from fwtool.flash.samba.commands import crc16
from fwtool.flash.samba.protocol import SambaProtocolError
from fwtool.image import ihex

NANO = get_board("nano33ble_sense")
FW = fk.make_firmware(3 * 4096 + 1000)  # 3 full pages + a partial one
RUNNER = RUNNERS["samba"]


@pytest.fixture
def nano(monkeypatch):
    boards = []

    def make(mode="bootloader", **kw):
        b = fk.FakeNano(mode, **kw)
        boards.append(b)
        fk.install(monkeypatch, *boards)
        return b

    yield make
    for b in boards:
        if b.pty:
            b.pty.close()


def bootloader_device():
    return next(d for d in devices.discover(NANO).targets if d.mode == "bootsel")


def wait_until(cond, seconds=3.0):
    deadline = time.monotonic() + seconds
    while not cond() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cond()


def write(image_bytes=FW, base=NANO.flash_base, **kw):
    opts = WriteOptions(timeout=5.0, **kw)
    return RUNNER.flash(Image(base, image_bytes, "t.bin", "bin"), bootloader_device(), NANO, opts).to_dict()


def test_crc16_is_the_xmodem_crc_bossa_uses():
    assert crc16(b"123456789") == 0x31C3  # CRC-16/XMODEM check value


def test_erase_write_verify_reset(nano):
    b = nano("bootloader")
    r = write()
    assert b.app_bytes(len(FW)) == FW and b.bootloader_intact()
    assert r["verified"] is True and r["rebooted"] is True and r["sectors_written"] == 4
    cmds = b.commands
    assert cmds[:3] == ["N#", "V#", "I#"] and cmds[3] == "X00000000#"
    assert cmds[4:7] == ["S00000034,00001000#", "Y00000034,0#", "Y00000000,00001000#"]
    assert "Y00003000,000003E8#" in cmds  # the last, partial page at offset 0x3000
    assert [c for c in cmds if c.startswith("Z")] == ["Z00000000,00001000#", "Z00001000,00001000#",
                                                    "Z00002000,00001000#", "Z00003000,000003E8#"]
    wait_until(lambda: b.resets == 1)
    assert b.commands[-1] == "K#"


def test_the_board_comes_back_as_the_app_after_K(nano):
    b = nano("bootloader")
    write()
    wait_until(lambda: b.mode == "app")
    modes = [d.mode for d in devices.discover(NANO).targets]
    assert modes == ["app"]


def test_no_verify_sends_no_crc_requests_and_says_so(nano):
    b = nano("bootloader")
    r = write(verify=False)
    assert r["verified"] is False and not any(c.startswith("Z") for c in b.commands)


def test_a_corrupted_page_fails_the_crc_check(nano):
    nano("bootloader", faults={"corrupt_page": 20})  # byte 5120: the second 4 KiB page
    with pytest.raises(FlashFailed, match=r"verify failed: .* 0x00011000\+4096"):
        write()


def test_a_dropped_connection_mid_write_is_a_lost_device(nano):
    nano("bootloader", faults={"drop_after": 6000})
    with pytest.raises(DeviceLost, match="went away") as e:
        write()
    assert "double-tap" in e.value.fix


@pytest.mark.parametrize("letter,answer,match", [
    ("X", b"?\n\r", "answered 'X00000000#' with b'\\?\\\\n\\\\r'"),
    ("Y", b"N\n\r", "answered 'Y00000034,0#'"),
    ("Z", b"Zxyz\n\r", "answered 'Z00000000,00001000#'"),
    ("N", b"", "answered 'N#' with b''"),
])
def test_an_answer_the_protocol_does_not_allow_is_refused(nano, letter, answer, match):
    nano("bootloader", faults={"answers": {letter: answer}})
    with pytest.raises(SambaProtocolError, match=match):
        write()


def test_another_bootloader_or_chip_is_refused_before_erasing(nano):
    b = nano("bootloader", faults={"version": b"v1.1 Nov 2011 SAM-BA"})
    with pytest.raises(SambaProtocolError, match="not Arduino's SAM-BA extended"):
        write()
    assert not any(c.startswith("X") for c in b.commands)
    b2 = nano("bootloader", location="1-4", faults={"chip": b"nRF52832-QFAA"})
    with pytest.raises(SambaProtocolError, match="nRF52832-QFAA"):
        RUNNER.flash(Image(NANO.flash_base, FW, "t.bin", "bin"),
                     next(d for d in devices.discover(NANO).targets if d.location == "1-4"), NANO)
    assert not any(c.startswith("X") for c in b2.commands)


def test_an_image_over_the_bootloader_is_refused_before_the_port_is_opened(nano):
    b = nano("bootloader")
    with pytest.raises(BadInput, match="inside the bootloader"):
        write(base=0x0)
    with pytest.raises(BadInput, match="inside the bootloader"):
        write(base=0xF000)
    assert b.commands == [] and b.bootloader_intact()


def test_an_image_past_the_flash_end_is_refused(nano):
    b = nano("bootloader")
    with pytest.raises(BadInput, match="past the end of flash"):
        write(base=0xFF000)
    assert b.commands == []


def test_discovery_knows_the_board_in_both_modes(nano):
    b = nano("app")
    (d,) = devices.discover(NANO).targets
    assert d.mode == "app" and d.usb_id == "2341:805A" and d.serial == b.serial and d.location == "1-2"
    assert RUNNER.usable(d)[0] is False
    b.touch()
    (d,) = devices.discover(NANO).targets
    assert d.mode == "bootsel" and d.usb_id == "2341:005A" and d.port == b.pty.path and d.location == "1-2"
    assert d.describe().startswith("SAM-BA bootloader") and RUNNER.usable(d)[0]


def test_flash_image_touches_the_app_waits_for_the_bootloader_and_the_app(nano, tmp_path):
    b = nano("app")
    app_port = b.pty.path
    path = tmp_path / "fw.bin"
    path.write_bytes(FW)
    r = fl.flash_image(path, NANO, timeout=5.0, wait_app=5.0)
    assert devices.usb.backend().touches == [app_port]
    assert r["method"] == "samba" and r["reset"] == "1200-baud touch" and r["verified"] is True
    assert r["started"] is True and r["port"] == b.pty.path and r["serial"] == b.serial
    assert b.app_bytes(len(FW)) == FW


def test_no_bootloader_after_the_touch_says_how_to_enter_it(nano, tmp_path):
    nano("app", faults={"no_bootloader": True})
    path = tmp_path / "fw.bin"
    path.write_bytes(FW)
    with pytest.raises(WaitTimeout, match="no board in bootloader mode after the 1200-baud touch") as e:
        fl.flash_image(path, NANO, timeout=2.0)
    assert "double-tap" in e.value.fix


def test_two_boards_without_serial_are_refused(nano, tmp_path):
    nano("app")
    nano("bootloader", serial="FFEEDDCCBBAA0011", location="1-3")
    path = tmp_path / "fw.bin"
    path.write_bytes(FW)
    with pytest.raises(NoDevice, match="2 Arduino Nano 33 BLE boards are attached"):
        fl.flash_image(path, NANO)


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return e.value.code, out, err


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project folder whose last build for the board (build/nano33ble_sense/report.json) made firmware.bin."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "build" / "nano33ble_sense"
    out.mkdir(parents=True)
    (out / "firmware.hex").write_text(ihex.write([(NANO.flash_base, FW)]))
    (out / "report.json").write_text(json.dumps({"board": {"name": "nano33ble_sense"}, "image_kind": "hex",
                                                 "files": {"hex": str(out / "firmware.hex")}}))
    return out


def test_cli_flash_with_no_board_is_one_line_exit_6(project, monkeypatch, capsys):
    fk.install(monkeypatch)  # nothing attached
    code, out, err = run(capsys, "flash", "--board", "nano33ble_sense")
    assert code == 6, (out, err)
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert errors == ["error: no Arduino Nano 33 BLE board found on USB"], err
    assert "double-tap" in err and "Traceback" not in err + out


def test_cli_flash_json_reports_the_crc_verified_write(nano, project, capsys):
    b = nano("bootloader")
    code, out, err = run(capsys, "flash", "--board", "nano33ble_sense", "--json")
    assert code == 0, (out, err)
    result = json.loads(out)
    assert result["method"] == "samba" and result["verified"] is True and b.app_bytes(len(FW)) == FW

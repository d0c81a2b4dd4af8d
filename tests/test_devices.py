"""The device layer: one Device per physical board (all its interfaces), one discovery, selection, the port."""
import dataclasses

import pytest

from fakes_picoboot import FakeBoard, install, make_firmware
from fwtool import devices
from fwtool.core.boards import get_board
from fwtool.core.errors import BadInput, Exit, NoDevice
from fwtool.devices import last_flash
from fwtool.flash import flash_image, runners
from fwtool.flash.base import Image

PICO = get_board("pico")


def test_one_board_in_app_mode_is_one_device_with_port_and_reset_interface(monkeypatch):
    install(monkeypatch, FakeBoard("app", serial="E661000000000001"))
    found = devices.discover(PICO)
    assert found.usb_ok and found.problems == []
    (dev,) = found.targets
    assert dev.mode == "app" and dev.interfaces() == ["serial", "reset"]
    assert dev.port == "/dev/ttyACM0" and dev.ports == ["/dev/ttyACM0"] and dev.reset_interface is not None
    assert dev.serial == "E661000000000001" and dev.location == "1-1.3" and "pico" in dev.boards


def test_one_board_in_bootsel_is_one_device_with_picoboot_and_drive(monkeypatch, tmp_path):
    install(monkeypatch, FakeBoard("bootsel", drive_dir=tmp_path / "RPI-RP2"))
    (dev,) = devices.discover("pico").targets
    assert dev.mode == "bootsel" and dev.interfaces() == ["picoboot", "drive"]
    assert dev.drive == tmp_path / "RPI-RP2" and dev.serial is None and dev.location == "1-1.3"


def test_two_boards_are_two_devices_and_selection_by_serial_location_port(monkeypatch, tmp_path):
    a = FakeBoard("app", serial="AAAA000000000001", location=(1, (1, 2)))
    b = FakeBoard("bootsel", location=(3, (1, 1)), drive_dir=tmp_path / "RPI-RP2")
    install(monkeypatch, a, b)
    found = devices.discover()  # every fwtool board's USB ids
    assert sorted(d.mode for d in found.targets) == ["app", "bootsel"]
    with pytest.raises(NoDevice) as e:
        devices.select(found)
    assert e.value.code == Exit.NO_DEVICE and "2 RP2040 boards" in e.value.cause and "AAAA000000000001" in e.value.cause
    assert devices.select(found, "AAAA000000000001").location == "1-1.2"
    assert devices.select(found, "3-1.1").mode == "bootsel"
    assert devices.select(found, "/dev/ttyACM0").serial == "AAAA000000000001"
    assert devices.select(found, str(tmp_path / "RPI-RP2")).mode == "bootsel"
    with pytest.raises(NoDevice, match="matches --serial nope"):
        devices.select(found, "nope")


def test_find_serial_port_uses_the_same_backend_and_prefers_the_last_flash(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    install(monkeypatch, FakeBoard("app", serial="AAAA000000000001", location=(1, (1, 2))),
            FakeBoard("app", serial="BBBB000000000002", location=(1, (1, 4))))
    with pytest.raises(NoDevice, match="2 ports match"):
        devices.find_serial_port("pico")
    assert devices.find_serial_port("pico", serial="BBBB000000000002") == "/dev/ttyACM1"
    last_flash.remember("AAAA000000000001", "pico")
    assert last_flash.read_last_flash()["serial"] == "AAAA000000000001"
    assert devices.find_serial_port(PICO) == "/dev/ttyACM0"


def test_no_board_is_a_no_device_error_with_the_fix(monkeypatch):
    install(monkeypatch)
    with pytest.raises(NoDevice) as e:
        devices.find_serial_port(PICO)
    assert "no pico found" in e.value.cause and "--port" in e.value.fix


def test_doctor_rows_and_udev_rule_come_from_the_device_layer():
    assert devices.doctor_rows()[0]["name"] == "usb: libusb for pyusb"
    assert 'ATTRS{idProduct}=="0003"' in devices.udev_rule()


def test_method_choices_come_from_the_registry_and_the_board_decides(monkeypatch):
    assert runners.method_choices() == ["auto", *runners.RUNNERS]
    assert [r.name for r in runners.for_board(PICO)] == list(PICO.runners)
    only_drive = dataclasses.replace(PICO, runners=("drive",))
    assert [r.name for r in runners.for_board(only_drive)] == ["drive"]
    install(monkeypatch, FakeBoard("bootsel"))
    img = Image(PICO.flash_base, make_firmware(4096), "t.bin", "bin")
    with pytest.raises(BadInput) as e:
        flash_image(img, only_drive, method="picoboot")
    assert "its board file lists drive" in e.value.cause and "[flash] runners" in e.value.fix
    with pytest.raises(BadInput, match="unknown flash method"):
        flash_image(img, PICO, method="jtag")

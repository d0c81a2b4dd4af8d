"""KitProg3 discovery: a PSoC 6 kit's programmer is one composite USB device (CMSIS-DAP + CDC-ACM USB-UART, one
VID:PID, one serial number = the probe UID), found as one Device with its UART port; selection by serial; the
wrong-mode report; the monitor's port; the udev rule and doctor rows. Fake USB bus: tests/fakes_probe.py."""
import pytest

from fakes_picoboot import FakeBoard
from fakes_probe import FakeKit, ProbeBackend, install
from fwtool import devices
from fwtool.cli import main
from fwtool.core.boards import get_board
from fwtool.core.errors import Exit, NoDevice
from fwtool.devices import usb as usbdevices
from fwtool.devices.probes import ProbeWrongMode

KIT = get_board("cy8ckit_062s2_43012")
UID_A, UID_B = "0B1C0D5E01234567", "1A2B3C4D5E6F7788"


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return e.value.code, out, err


def test_a_kitprog3_and_its_uart_are_one_device(monkeypatch):
    install(monkeypatch, FakeKit(UID_A))
    found = devices.discover(KIT)
    assert found.problems == [] and found.probes_only
    (dev,) = found.targets
    assert dev.mode == "probe" and dev.interfaces() == ["probe", "serial"]
    assert dev.serial == UID_A and dev.port == "/dev/ttyACM0" and dev.usb_id == "04B4:F155"
    assert dev.probe == "KitProg3 CMSIS-DAP bulk" and dev.location == "1-4"
    assert set(dev.boards) == {"cy8ckit_062s2_43012", "cy8cproto_062_4343w", "cy8ckit_062_ble"}
    assert devices.select(found) is dev


def test_hid_and_dual_uart_modes_are_probes_too_and_dual_uart_has_two_ports(monkeypatch):
    install(monkeypatch, FakeKit(UID_A, pid=0xF154, location=(1, (2,))), FakeKit(UID_B, pid=0xF166, location=(1, (3,))))
    found = devices.discover(KIT)
    by = {d.serial: d for d in found.targets}
    assert by[UID_A].probe == "KitProg3 CMSIS-DAP HID" and by[UID_A].ports == ["/dev/ttyACM0"]
    assert by[UID_B].probe == "KitProg3 CMSIS-DAP bulk + 2 UARTs"
    assert by[UID_B].ports == ["/dev/ttyACM1", "/dev/ttyACM2"]


def test_two_kits_are_chosen_by_serial_location_or_port(monkeypatch):
    install(monkeypatch, FakeKit(UID_A, location=(1, (2,))), FakeKit(UID_B, location=(3, (1, 1))))
    found = devices.discover(KIT)
    with pytest.raises(NoDevice) as e:
        devices.select(found)
    assert e.value.code == Exit.NO_DEVICE and "2 PSoC 6 kits are attached" in e.value.cause
    assert UID_A in e.value.cause and UID_B in e.value.cause and "--serial" in e.value.fix
    assert devices.select(found, UID_B).location == "3-1.1"
    assert devices.select(found, "1-2").serial == UID_A
    assert devices.select(found, "/dev/ttyACM1").serial == UID_B
    with pytest.raises(NoDevice, match="no PSoC 6 kit matches --serial nope"):
        devices.select(found, "nope")


def test_without_libusb_the_uart_port_still_names_the_kit_and_its_uid(monkeypatch):
    install(monkeypatch, FakeKit(UID_A), no_usb=True)
    found = devices.discover(KIT)
    (dev,) = found.targets
    assert not found.usb_ok and "libusb" in found.problems[0]
    assert dev.mode == "probe" and dev.serial == UID_A and dev.port == "/dev/ttyACM0" and dev.usb is None


def test_no_usb_access_is_seen_and_reported(monkeypatch):
    install(monkeypatch, FakeKit(UID_A, usb_access=False, has_port=False))
    (dev,) = devices.discover(KIT).targets
    assert dev.access is False and dev.serial is None and "no USB permission" in dev.describe()


def test_a_programmer_in_the_wrong_mode_is_one_error_with_how_to_switch(monkeypatch):
    install(monkeypatch, FakeKit(UID_A, pid=0xF139))
    found = devices.discover(KIT)
    assert [d.mode for d in found.targets] == ["wrong-mode"]
    with pytest.raises(ProbeWrongMode) as e:
        devices.select(found)
    assert e.value.code == Exit.NO_DEVICE and "04B4:F139" in e.value.cause and "kp3-bulk" in e.value.fix


def test_no_kit_names_the_connector_and_the_udev_rule(monkeypatch):
    install(monkeypatch)
    with pytest.raises(NoDevice) as e:
        devices.select(devices.discover(KIT))
    assert "no PSoC 6 kit found" in e.value.cause and "KitProg3 USB connector" in e.value.fix


def test_rp2040_discovery_ignores_kits_and_kits_ignore_rp2040(monkeypatch):
    be = ProbeBackend(FakeKit(UID_A))
    monkeypatch.setattr(usbdevices, "_backend", be)
    assert devices.discover(get_board("pico")).targets == []
    assert len(devices.discover().targets) == 1  # every board: the kit is listed


def test_monitor_port_is_the_kits_uart_by_usb_id_and_serial(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    install(monkeypatch, FakeKit(UID_A, location=(1, (2,))), FakeKit(UID_B, pid=0xF166, location=(1, (3,))))
    with pytest.raises(NoDevice, match="ports match the cy8ckit_062s2_43012"):
        devices.find_serial_port("cy8ckit_062s2_43012")
    assert devices.find_serial_port("cy8ckit_062s2_43012", serial=UID_A) == "/dev/ttyACM0"
    assert devices.find_serial_port(KIT, serial=UID_B) == "/dev/ttyACM1"  # dual UART: the kit's first UART
    from fwtool.devices import last_flash
    last_flash.remember(UID_B, KIT.name)
    assert devices.find_serial_port(KIT) == "/dev/ttyACM1"  # the kit flashed last


def test_devices_command_lists_the_kit_with_serial_and_port(monkeypatch, capsys):
    install(monkeypatch, FakeKit(UID_A))
    code, out, _ = run(capsys, "devices", "--board", "cy8ckit_062s2_43012")
    assert code in (0, None)
    assert "probe" in out and "KitProg3 CMSIS-DAP bulk" in out and f"serial {UID_A}" in out and "/dev/ttyACM0" in out
    code, out, _ = run(capsys, "devices", "--board", "cy8ckit_062s2_43012", "--json")
    import json
    (row,) = json.loads(out)["boards"]
    assert row["mode"] == "probe" and row["serial"] == UID_A and row["port"] == "/dev/ttyACM0"
    assert row["usb_id"] == "04B4:F155" and row["probe"] == "KitProg3 CMSIS-DAP bulk"


def test_udev_rule_grants_the_kitprog3_ids_usb_and_hidraw():
    rule = devices.udev_rule()
    for pid in ("f155", "f154", "f166", "f151", "f152"):
        assert f'SUBSYSTEM=="usb", ATTRS{{idVendor}}=="04b4", ATTRS{{idProduct}}=="{pid}"' in rule
        assert f'KERNEL=="hidraw*", ATTRS{{idVendor}}=="04b4", ATTRS{{idProduct}}=="{pid}"' in rule
    assert 'ATTRS{idProduct}=="0003"' in rule  # the RP2040 lines stay


def test_doctor_has_the_psoc6_rows(capsys, monkeypatch, tmp_path):
    import json
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CY_TOOLS_PATHS", raising=False)
    code, out, _ = run(capsys, "doctor", "--json")
    names = {c["name"]: c for c in json.loads(out)["checks"]}
    assert "psoc6: pyOCD" in names and "psoc6: OpenOCD" in names and "psoc6: ModusToolbox" in names
    assert "not installed" in names["psoc6: ModusToolbox"]["detail"] and names["psoc6: ModusToolbox"]["ok"]
    import sys
    if sys.platform.startswith("linux"):
        assert "psoc6: udev rule for KitProg3" in names


def test_rp2040_boards_still_say_rp2040(monkeypatch):
    install(monkeypatch)
    monkeypatch.setattr(usbdevices, "_backend", ProbeBackend())
    with pytest.raises(NoDevice, match="no RP2040 board found"):
        devices.select(devices.discover(get_board("pico")))
    assert FakeBoard  # the RP2040 fakes and the probe fakes share the backend seam

"""Which bytes go where: UF2/ELF/BIN -> flash image, refusals, the board inferred from a UF2; discovery details."""
import struct

import pytest

from fakes_picoboot import FakeBoard, install, make_firmware, make_uf2
from fwtool.core.boards import get_board
from fwtool.core.errors import BadInput, Exit
from fwtool.image import boot2
from fwtool.devices.reset import reboot_board
from fwtool.flash import load_image, resolve_board
from fwtool import devices
from fwtool.devices import usb as usbdevices

PICO = get_board("pico")
FW = make_firmware(5000, seed=2)


def make_elf(segments) -> bytes:
    """Minimal ELF32 LE ARM executable: segments = [(vaddr, paddr, data, memsz)], program headers only."""
    n = len(segments)
    off = 52 + 32 * n
    ph, blob = b"", b""
    for vaddr, paddr, data, memsz in segments:
        ph += struct.pack("<8I", 1, off + len(blob), vaddr, paddr, len(data), memsz, 5, 4)
        blob += data
    ident = b"\x7fELF" + bytes([1, 1, 1]) + bytes(9)
    eh = struct.pack("<16sHHIIIIIHHHHHH", ident, 2, 40, 1, 0x10000001, 52, 0, 0x05000200, 52, 32, n, 40, 0, 0)
    return eh + ph + blob


def test_elf_segments_by_load_address_erased_flash_gaps(tmp_path):
    code, data = FW[:4000], b"D" * 300
    elf = make_elf([(0x10000000, 0x10000000, code, len(code)),
                    (0x20000000, 0x10001000, data, len(data)),  # .data: runs in RAM, stored in flash
                    (0x20000200, 0x1000112C, b"", 5000)])  # .bss: nothing to store
    (tmp_path / "fw.elf").write_bytes(elf)
    img = load_image(tmp_path / "fw.elf", PICO)
    assert img.base == 0x10000000 and img.kind == "elf"
    # one gap rule (fwtool/image/firmware.py): gaps are erased flash, 0xFF; nothing is written past the data
    assert img.data[:4000] == code and img.data[4000:4096] == b"\xff" * 96 and img.data[4096:4396] == data
    assert len(img.data) == 4396


def test_elf_for_ram_is_refused(tmp_path):
    (tmp_path / "ram.elf").write_bytes(make_elf([(0x20000000, 0x20000000, FW, len(FW))]))
    with pytest.raises(BadInput, match="not in pico's flash"):
        load_image(tmp_path / "ram.elf", PICO)
    (tmp_path / "junk.elf").write_bytes(b"not an elf at all" * 10)
    with pytest.raises(BadInput, match="not a readable ELF file"):
        load_image(tmp_path / "junk.elf", PICO)


def test_boot2_crc_check():
    assert boot2.ok(FW)
    bad = bytearray(FW)
    bad[100] ^= 1
    assert not boot2.ok(bytes(bad))


def test_uf2_outside_flash_and_with_gaps_refused(tmp_path):
    (tmp_path / "high.uf2").write_bytes(make_uf2(FW, base=0x10000000 + PICO.flash_bytes - 1024))
    with pytest.raises(BadInput, match="not in pico's flash"):
        load_image(tmp_path / "high.uf2", PICO, boot2_check=False)
    gap = make_uf2(FW[:256]) + make_uf2(FW[:256], base=0x10001000)
    gap = bytearray(gap)
    struct.pack_into("<II", gap, 20, 0, 2)
    struct.pack_into("<II", gap, 512 + 20, 1, 2)
    (tmp_path / "gap.uf2").write_bytes(bytes(gap))
    with pytest.raises(BadInput, match="contiguous"):
        load_image(tmp_path / "gap.uf2", PICO, boot2_check=False)


def test_board_inferred_from_uf2_family(tmp_path):
    (tmp_path / "a.uf2").write_bytes(make_uf2(FW))
    assert resolve_board(None, tmp_path / "a.uf2").flash_bytes == 2 * 1024 * 1024  # smallest RP2040 flash
    (tmp_path / "b.uf2").write_bytes(make_uf2(FW, family=0x12345678))
    with pytest.raises(BadInput, match="0x12345678, which no fwtool board uses"):
        resolve_board(None, tmp_path / "b.uf2")
    with pytest.raises(BadInput, match="pass --board"):
        resolve_board(None, tmp_path / "fw.bin")


def test_reboot_board_api_normal_and_bootsel(monkeypatch):
    board = FakeBoard("app", firmware=FW)
    install(monkeypatch, board)
    r = reboot_board()
    assert r["mode"] == "app" and r["port"] == "/dev/ttyACM0" and r["serial"] == "E6614103E7452D2F"
    assert board.app_controls == [(0x21, 0x02, 0, 2, None)]  # RESET_REQUEST_FLASH
    assert board.history == ["app", "gone", "app"]
    r = reboot_board(bootsel=True)
    assert r["mode"] == "bootsel" and r["how"] == "reset interface" and board.mode == "bootsel"
    r = reboot_board()  # from BOOTSEL: PICOBOOT REBOOT, back to the app
    assert r["how"] == "PICOBOOT REBOOT" and board.mode == "app"


def test_reset_request_that_returns_normally_also_works(monkeypatch):
    board = FakeBoard("app", firmware=FW, reset_vanishes=False)
    install(monkeypatch, board)
    assert reboot_board(bootsel=True)["mode"] == "bootsel"


def test_reset_interface_denied_falls_back_to_1200_baud(monkeypatch):
    board = FakeBoard("app", firmware=FW, usb_access=False)
    be = install(monkeypatch, board)
    r = reboot_board(bootsel=True)
    assert r["how"] == "1200-baud touch" and be.touches == ["/dev/ttyACM0"] and board.app_controls == []


def test_select_by_port_and_listing_problems(monkeypatch):
    install(monkeypatch, FakeBoard("app"), no_usb=True)
    found = usbdevices.scan([PICO])
    assert not found.usb_ok and "libusb" in found.problems[0]
    t = usbdevices.select(found, "/dev/ttyACM0")
    assert t.mode == "app" and t.usb is None and t.serial == "E6614103E7452D2F"
    with pytest.raises(Exception) as e:
        usbdevices.select(found, "nope")
    assert e.value.code == Exit.NO_DEVICE


def test_mount_table_parsing_and_block_location(monkeypatch):
    assert usbdevices.unescape_mount(r"/media/me/My\040Drive") == "/media/me/My Drive"
    be = usbdevices.SystemBackend()
    monkeypatch.setattr(usbdevices.os.path, "realpath", lambda p: "/sys/devices/pci0000:00/0000:00:14.0/usb1/1-1/"
                        "1-1.3/1-1.3:1.0/host3/target3:0:0/3:0:0:0/block/sdb/sdb1")
    monkeypatch.setattr(usbdevices.sys, "platform", "linux")
    assert be.block_location("/dev/sdb1") == "1-1.3"


def test_udev_rule_and_doctor_rows():
    rule = devices.udev_rule()
    assert rule.count('SUBSYSTEM=="usb", ATTRS{idVendor}=="2e8a"') == 4 and "000a" in rule and "0003" in rule
    rows = devices.doctor_rows()
    assert rows[0]["name"] == "usb: libusb for pyusb" and isinstance(rows[0]["ok"], bool)
    assert all({"name", "ok", "detail"} <= set(r) for r in rows)


class _StubDev:
    idVendor, idProduct = 0x2E8A, 0x0003

    def __init__(self, err):
        self.err = err

    def get_active_configuration(self):
        raise self.err


@pytest.mark.parametrize("errno_, exc_code, words", [(13, Exit.MISSING_TOOL, "60-fwtool.rules"),
                                                     (19, Exit.LOST_DEVICE, "went away"),
                                                     (5, Exit.FAILED, "cannot open")])
def test_system_backend_open_maps_usb_errors(monkeypatch, errno_, exc_code, words):
    import usb.core

    from fwtool.core.errors import FwtoolError

    monkeypatch.setattr(usbdevices.sys, "platform", "linux")
    with pytest.raises(FwtoolError) as e:
        usbdevices.SystemBackend().open_picoboot(_StubDev(usb.core.USBError("x", -1, errno_)), 1)
    assert e.value.code == exc_code and words in f"{e.value.cause} {e.value.fix}"


def test_system_backend_1200_touch_permission(monkeypatch):
    import serial

    def denied(*a, **k):
        raise serial.SerialException(13, "could not open port /dev/ttyACM0: [Errno 13] Permission denied")

    monkeypatch.setattr(serial, "Serial", denied)
    with pytest.raises(Exception) as e:
        usbdevices.SystemBackend().touch_1200("/dev/ttyACM0")
    assert e.value.code == Exit.MISSING_TOOL and "dialout" in e.value.fix

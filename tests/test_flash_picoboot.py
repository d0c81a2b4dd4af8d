"""PICOBOOT client against the fake bootrom: the quirks of rp2040-flashing.md §2.5 and the flashing algorithm."""
import struct

import pytest
import usb.core

from fakes_picoboot import FakeBoard, make_firmware
from fwtool.core.errors import Exit
from fwtool.devices import picoboot
from fwtool.flash.base import DeviceLost, FlashFailed, Image
from fwtool.devices.picoboot import PicobootClient, ProtocolError
from fwtool.flash.picoboot import program

FLASH = (0x10000000, 0x10000000 + 2 * 1024 * 1024)


def client(**faults):
    board = FakeBoard("bootsel", faults=faults)
    dev = board.picoboot
    return PicobootClient(dev, 1, 0x03, 0x84), dev, board


def raw_cmd(dev, cmd, size, xfer, args=b"", magic=picoboot.MAGIC, token=77):
    return dev.write(0x03, struct.pack("<IIBBHI16s", magic, token, cmd, size, 0, xfer, args.ljust(16, b"\0")))


# ---- fidelity of the fake device to the bootrom ---------------------------------------------------------------

def test_bad_magic_halts_both_endpoints_and_leaves_status():
    c, dev, _ = client()
    c.exit_xip()
    before = c.status()
    raw_cmd(dev, 0x06, 0, 0, magic=0x12345678)
    with pytest.raises(usb.core.USBError) as e:
        dev.read(0x84, 64)
    assert e.value.errno == 32  # EPIPE: halted
    with pytest.raises(usb.core.USBError):
        dev.write(0x03, b"x" * 32)
    assert c.status() == before
    c.reset()  # GET_STATUS + CLEAR_FEATURE + IF_RESET bring it back
    c.exit_xip()


def test_short_packet_and_wrong_cmd_size_and_unknown_cmd_halt():
    c, dev, _ = client()
    dev.write(0x03, b"\0" * 31)
    assert dev.halted == {0x03: True, 0x84: True}
    c.reset()
    raw_cmd(dev, 0x03, 4, 0, struct.pack("<II", 0x10000000, 4096))  # FLASH_ERASE wants bCmdSize 8
    assert dev.halted == {0x03: True, 0x84: True}
    assert c.status().code == 2  # INVALID_CMD_LENGTH
    c.reset()
    raw_cmd(dev, 0x8B, 0, 0, token=10)  # GET_INFO: RP2350 only
    st = c.status()
    assert (st.token, st.code, st.cmd) == (10, 1, 0x8B)
    assert dev.halted == {0x03: True, 0x84: True}
    c.reset()
    raw_cmd(dev, 0x84, 8, 100, struct.pack("<II", 0x10000000, 256))  # dTransferLength != dSize
    assert c.status().code == 3


def test_bad_data_phase_address_no_ack_status_invalid_address():
    c, dev, _ = client()
    with pytest.raises(ProtocolError) as e:
        c.command(picoboot.WRITE, struct.pack("<II", 0x30000000, 256), 256, b"\0" * 256, what="WRITE 0x30000000")
    assert e.value.status.code == 4 and e.value.status.cmd == picoboot.WRITE
    # as the real bootrom: the 256 data bytes are taken, then EP 0x03 halts and no ACK comes
    assert "INVALID_ADDRESS" in e.value.cause and "timeout" in e.value.cause
    assert dev.halted == {0x03: False, 0x84: False}  # the client reset the interface afterwards
    c.exit_xip()  # and the connection still works


def test_misaligned_erase_is_acked_with_status_ok_so_the_host_must_refuse_it():
    c, dev, board = client()
    c.exit_xip()
    board.flash[0x100:0x200] = b"\0" * 256
    c.command(picoboot.FLASH_ERASE, struct.pack("<II", 0x10000100, 4096))  # the raw quirk: acked...
    assert c.status().code == 0  # ...and OK, but nothing was erased
    assert board.flash[0x100:0x200] == b"\0" * 256
    with pytest.raises(FlashFailed, match="aligned"):
        c.erase(0x10000100, 4096, FLASH)  # the client refuses before sending
    with pytest.raises(FlashFailed, match="outside flash"):
        c.erase(FLASH[1], 4096, FLASH)  # beyond the 2 MiB chip: the bootrom would wrap to address 0
    assert dev.commands[-1][0] == "FLASH_ERASE" and len([x for x in dev.commands if x[0] == "FLASH_ERASE"]) == 1


def test_write_does_not_erase_and_exit_xip_is_required():
    c, dev, board = client()
    c.write(0x10000000, b"\x0f" * 256, FLASH)  # without EXIT_XIP: nothing reaches the flash
    assert board.flash[:256] == b"\xff" * 256
    c.exit_xip()
    c.write(0x10000000, b"\x0f" * 256, FLASH)
    c.write(0x10000000, b"\xf3" * 256, FLASH)  # no erase in between: bits only clear
    assert c.read(0x10000000, 256, FLASH) == b"\x03" * 256
    c.erase(0x10000000, 4096, FLASH)
    assert c.read(0x10000000, 256, FLASH) == b"\xff" * 256


def test_ram_and_rom_access_any_alignment():
    c, dev, _ = client()
    c.command(picoboot.WRITE, struct.pack("<II", 0x20000003, 5), 5, b"hello")
    assert c.command(picoboot.READ, struct.pack("<II", 0x20000003, 5), 5) == b"hello"
    assert c.command(picoboot.READ, struct.pack("<II", 0, 16), 16) == dev.rom[:16]
    with pytest.raises(ProtocolError, match="BAD_ALIGNMENT"):
        c.command(picoboot.READ, struct.pack("<II", 0x10000010, 256), 256)


# ---- the flashing algorithm -------------------------------------------------------------------------------------

def test_program_writes_verifies_and_skips_identical_sectors():
    c, dev, board = client()
    fw = make_firmware(50_000)
    img = Image(0x10000000, fw + b"\0" * (-len(fw) % 256), "t", "bin")
    r = program(c, img, FLASH)
    assert bytes(board.flash[:len(fw)]) == fw and r.verified
    assert r.sectors_written == r.details.sectors_total == 13
    erased = dev.erased_sectors
    fw2 = bytearray(fw)
    fw2[20_000] ^= 0xFF  # one byte in sector 4
    r2 = program(c, Image(0x10000000, bytes(fw2) + b"\0" * (-len(fw2) % 256), "t", "bin"), FLASH)
    assert r2.sectors_written == 1 and r2.bytes_written == 4096 and dev.erased_sectors == erased + 1
    assert bytes(board.flash[:len(fw2)]) == bytes(fw2)


def test_program_keeps_bytes_outside_the_image_in_a_partial_sector():
    c, dev, board = client()
    board.flash[0x2000:0x3000] = bytes(range(256)) * 16
    img = Image(0x10002100, b"\x11" * 512, "t", "bin")
    program(c, img, FLASH)
    assert board.flash[0x2000:0x2100] == bytes(range(256))
    assert board.flash[0x2100:0x2300] == b"\x11" * 512
    assert board.flash[0x2300:0x3000] == (bytes(range(256)) * 16)[0x300:]


def test_every_erase_sent_is_sector_aligned_and_every_write_whole_pages():
    c, dev, board = client()
    program(c, Image(0x10000000, make_firmware(9000) + b"\0" * 216, "t", "bin"), FLASH)
    for name, _tok, args in dev.commands:
        if name == "FLASH_ERASE":
            addr, size = struct.unpack("<II", args)
            assert addr % 4096 == 0 and size % 4096 == 0
        if name == "WRITE":
            addr, size = struct.unpack("<II", args)
            assert addr % 256 == 0 and size % 256 == 0


@pytest.mark.parametrize("faults,exc,words", [
    ({"drop_ack_at": 20}, ProtocolError, "no answer"),
    ({"halt_after_write_bytes": 9000}, ProtocolError, "UNKNOWN_ERROR"),
    ({"disappear_after_commands": 25}, DeviceLost, "disconnected"),
    ({"corrupt_page": 7}, FlashFailed, "verify failed"),
    ({"status_error_at": (32, 8)}, ProtocolError, "WRITE 0x10006000+4096: waiting for the ACK failed"),  # a WRITE
    ({"status_error_at": (5, 8)}, ProtocolError, "READ 0x10003000+4096: data phase failed"),  # a READ
])
def test_faults_raise_never_succeed(faults, exc, words):
    c, dev, board = client(**faults)
    fw = make_firmware(40_000)
    with pytest.raises(exc) as e:
        program(c, Image(0x10000000, fw + b"\0" * (-len(fw) % 256), "t", "bin"), FLASH)
    assert words in e.value.cause
    assert e.value.code in (Exit.FAILED, Exit.LOST_DEVICE)


def test_no_verify_still_fails_on_a_missing_ack():
    c, dev, board = client(drop_ack_at=40)
    with pytest.raises(ProtocolError):
        program(c, Image(0x10000000, make_firmware(60_000) + b"\0" * 160, "t", "bin"), FLASH, verify=False)


def test_image_outside_flash_is_refused_before_any_command():
    c, dev, board = client()
    with pytest.raises(FlashFailed, match="does not fit"):
        program(c, Image(FLASH[1] - 256, b"\0" * 512, "t", "bin"), FLASH)
    assert dev.commands == []


def test_progress_phases_and_exclusive_released_after_a_failure(monkeypatch):
    from fakes_picoboot import install
    from fwtool.core.boards import get_board
    from fwtool.flash import flash_image

    seen = []
    board = FakeBoard("bootsel", faults={"corrupt_page": 60})  # in sector 3
    install(monkeypatch, board)
    img = Image(0x10000000, make_firmware(20_480), "t", "bin")
    with pytest.raises(FlashFailed, match="verify failed"):
        flash_image(img, get_board("pico"), progress=lambda *a: seen.append(a))
    assert board.picoboot.exclusive == 0 and board.mode == "bootsel"  # drive usable again, nothing rebooted
    assert [p for p, _, _ in seen[:1]] == ["checking"] and ("writing", 20_480, 20_480) in seen
    assert any(p == "verifying" for p, _, _ in seen)

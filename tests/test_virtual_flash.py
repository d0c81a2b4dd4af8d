"""Flashing the virtual board through the real RP2040 B1 bootrom (rp2040js + fwtool's SPI NOR flash and USB host).

* The PICOBOOT scenarios of tests/test_flash_picoboot.py, written against the protocol fake, run here unchanged
  against the real bootrom: their ``client()`` is swapped for one whose device is the emulated chip.
* Faults injected in the emulated flash chip / USB port: each ends in fwtool's named cause and exit code.
* End to end: flash through PICOBOOT, reboot, the chip boots its written flash (boot2 -> image) and prints.
* The runtime patches of rp2040js internals (fwtool/emulator/patches.mjs) are checked against the pinned version.
Needs Node.js and the rp2040js package/bootrom (skipped with the reason otherwise; see conftest.emulator_ready).
"""
import json
import os
import socket
import struct
import subprocess
import sys
import time

import pytest

import fakes_emulator
import test_flash_picoboot as shared
from fwtool.core.errors import DeviceLost, Exit
from fwtool.devices import usb as usbdevices
from fwtool.emulator import bootrom, node
from fwtool.emulator.session import RUNNER_JS, Rp2040jsProcess
from fwtool.emulator.virtual_flash import flash_virtual
from fwtool.emulator.virtual_usb import LOCATION, Rp2040jsUsbProcess
from fwtool.devices import picoboot
from fwtool.flash.base import FlashFailed, Image
from fwtool.devices.picoboot import PicobootClient, ProtocolError
from fwtool.flash.picoboot import program

FLASH = shared.FLASH
PATCHES = RUNNER_JS.parent / "patches.mjs"


@pytest.fixture(scope="module")
def vboard(emulator_ready, tmp_path_factory):
    board = Rp2040jsUsbProcess(tmp_path_factory.mktemp("vflash") / "flash.bin", bootsel=True, max_wall_s=600).start()
    try:
        board.wait_enumerated()
        yield board
    finally:
        board.stop()


@pytest.fixture
def fresh(vboard, monkeypatch):
    """A just-powered-on chip in BOOTSEL with an erased flash, and discovery that sees only it."""
    monkeypatch.setattr(usbdevices, "_backend", usbdevices.SystemBackend())
    vboard.fault("clear")
    vboard.replug(bootsel=True)
    vboard.backend.bridge("wipe")
    vboard.wait_enumerated(pid=0x0003)
    with vboard.attached():
        yield vboard


class RealPicoboot:
    """The emulated chip's PICOBOOT interface, with the introspection the fake offers, read from the real thing."""

    def __init__(self, board):
        self.board = board
        found = usbdevices.scan(_pico_boards())
        target = next(t for t in found.targets if t.mode == "bootsel")
        self.dev = usbdevices.backend().open_picoboot(target.usb, target.picoboot[0])
        self.commands = []  # (name, token, args) of every well-formed command sent
        self.rom = bootrom.bootrom_file().read_bytes()

    def write(self, ep, data, timeout=None):
        data = bytes(data)
        if ep == 0x03 and len(data) == 32:
            magic, tok, cmd, size = struct.unpack_from("<IIBB", data)
            if magic == picoboot.MAGIC:
                self.commands.append((picoboot.CMD_NAMES.get(cmd, hex(cmd)), tok, data[16:16 + size]))
        return self.dev.write(ep, data, timeout=timeout)

    def read(self, ep, size, timeout=None):
        return self.dev.read(ep, size, timeout=timeout)

    def ctrl_transfer(self, *a, **kw):
        return self.dev.ctrl_transfer(*a, **kw)

    def clear_halt(self, ep):
        return self.dev.clear_halt(ep)

    @property
    def halted(self):
        return {ep: bool(self.dev.ctrl_transfer(0x82, 0, 0, ep, 2)[0] & 1) for ep in (0x03, 0x84)}

    @property
    def erased_sectors(self):
        return self.board.state()["totals"]["sectorErases"]


class FlashView:
    """board.flash of the fake: the emulated chip's storage (peek/poke, as a programmer on the SPI pins)."""

    def __init__(self, board):
        self.board = board

    def __getitem__(self, s):
        data = self.board.backend.bridge("peek", offset=s.start or 0, size=(s.stop or 0) - (s.start or 0))["data"]
        return bytes.fromhex(data)

    def __setitem__(self, s, value):
        self.board.backend.bridge("poke", offset=s.start, data=bytes(value).hex())


def _pico_boards():
    from fwtool.core.boards import get_board
    from fwtool import devices

    return devices.boards_for(get_board("pico"))


# ---- the shared PICOBOOT scenarios, against the real bootrom ----------------------------------------------------

SHARED = ["test_bad_magic_halts_both_endpoints_and_leaves_status",
          "test_short_packet_and_wrong_cmd_size_and_unknown_cmd_halt",
          "test_bad_data_phase_address_no_ack_status_invalid_address",
          "test_misaligned_erase_is_acked_with_status_ok_so_the_host_must_refuse_it",
          "test_ram_and_rom_access_any_alignment",
          "test_program_writes_verifies_and_skips_identical_sectors",
          "test_program_keeps_bytes_outside_the_image_in_a_partial_sector",
          "test_every_erase_sent_is_sector_aligned_and_every_write_whole_pages",
          "test_image_outside_flash_is_refused_before_any_command"]


@pytest.mark.parametrize("name", SHARED)
def test_shared_picoboot_scenario_on_the_real_bootrom(name, fresh, monkeypatch):
    def real_client(**faults):
        assert not faults
        dev = RealPicoboot(fresh)
        board = type("RealBoard", (), {})()
        board.flash = FlashView(fresh)
        return PicobootClient(dev, 1, 0x03, 0x84), dev, board

    monkeypatch.setattr(shared, "client", real_client)
    getattr(shared, name)()


# ---- faults in the emulated flash chip / USB port ---------------------------------------------------------------

def _image(size=3 * 4096, seed=1):
    fw = shared.make_firmware(size, seed)
    return Image(0x10000000, fw + b"\0" * (-len(fw) % 256), "t", "bin")


def _client():
    dev = RealPicoboot(None)
    c = PicobootClient(dev, 1, 0x03, 0x84)
    c.reset()
    c.exclusive()
    return c


def test_erase_failure_is_caught_by_verify(fresh):
    program(_client(), _image(seed=1), FLASH)
    fresh.fault("erase-fail")  # the chip ignores sector erases: programming ANDs into the old bytes
    with pytest.raises(FlashFailed, match="verify failed") as e:
        program(_client(), _image(seed=2), FLASH)
    assert e.value.code == Exit.FAILED


def test_stuck_busy_flash_is_a_named_timeout(fresh):
    fresh.fault("stuck-busy")  # the bootrom polls WIP forever: no ACK within picoboot's 10 s ACK timeout
    with pytest.raises(ProtocolError) as e:
        program(_client(), _image(), FLASH)
    assert "FLASH_ERASE 0x10000000+4096" in e.value.cause and "no answer: timeout" in e.value.cause
    assert e.value.code == Exit.FAILED


def test_power_loss_mid_write_then_recovery(fresh):
    fresh.fault("power-loss", after=5)  # the 5th page program is cut half-way and the board goes dark
    with pytest.raises(DeviceLost, match="disconnected during WRITE") as e:
        program(_client(), _image(), FLASH)
    assert e.value.code == Exit.LOST_DEVICE
    page = FlashView(fresh)[0x400:0x500]
    assert page[:128] != b"\xff" * 128 and page[128:] == b"\xff" * 128  # half-programmed page
    fresh.replug(bootsel=True)
    fresh.wait_enumerated(pid=0x0003)
    r = program(_client(), _image(), FLASH)  # re-flashing repairs it
    assert r.verified and r.sectors_written >= 1


def test_unplugged_mid_flash_is_device_lost(fresh):
    fresh.fault("unplug", after=3)
    with pytest.raises(DeviceLost) as e:
        program(_client(), _image(), FLASH)
    assert e.value.code == Exit.LOST_DEVICE and "disconnected" in e.value.cause


def test_verify_catches_a_corrupted_page(fresh):
    fresh.fault("corrupt-page", page=0x1300)  # the chip flips a bit when programming this page
    with pytest.raises(FlashFailed, match=r"verify failed: flash at 0x10001307") as e:
        program(_client(), _image(), FLASH)
    assert e.value.code == Exit.FAILED


# ---- end to end: flash_image through the real bootrom, reboot, boot from the written flash --------------------

def test_flash_reboot_and_boot_from_written_flash(fresh):
    prog = fakes_emulator.print_then("hang")  # boot2-valid image that prints on UART0
    image = Image(0x10000000, prog + bytes(range(256)) * 40, "t", "bin")  # 3 sectors
    sock = socket.create_connection(("127.0.0.1", fresh.port), timeout=10)
    try:
        r, _ = flash_virtual(image, "pico", board=fresh, wait_app=0)
        assert r["method"] == "picoboot" and r["verified"] and r["location"] == LOCATION
        assert r["sectors_written"] == r["sectors_erased"] == 3 and r["virtual"]["page_programs"] == 41
        out = b""
        deadline = time.monotonic() + 20
        while fakes_emulator.MESSAGE not in out and time.monotonic() < deadline:
            out += sock.recv(4096)
        assert fakes_emulator.MESSAGE in out  # boot2 from the emulated flash ran the image
    finally:
        sock.close()
    fresh.replug(bootsel=True)
    fresh.wait_enumerated(pid=0x0003)
    r, _ = flash_virtual(image, "pico", board=fresh, wait_app=0)  # same image again: nothing written
    assert r["sectors_written"] == 0 and r["virtual"]["sector_erases"] == 0 and r["virtual"]["page_programs"] == 0
    changed = bytearray(image.data)
    changed[5000] ^= 1
    fresh.replug(bootsel=True)
    fresh.wait_enumerated(pid=0x0003)
    r, _ = flash_virtual(Image(0x10000000, bytes(changed), "t", "bin"), "pico", board=fresh, wait_app=0)
    assert r["sectors_written"] == 1 and r["virtual"]["sector_erases"] == 1


def test_power_on_boot_through_bootrom_and_boot2_from_the_flash_model(emulator_ready, tmp_path):
    img = tmp_path / "print.bin"
    img.write_bytes(fakes_emulator.print_then("hang"))
    board = Rp2040jsProcess(img, serial="stdout", start="now", max_wall_s=60, until="hello", count=1,
                         extra_args=["--boot", "bootrom"])
    try:
        board.start()
        board.wait(60)
    finally:
        board.stop()
    r = board.result()
    assert r.ok and fakes_emulator.MESSAGE.decode().strip() in r.lines
    assert 100 < r.emulated_us < 5000  # the bootrom's CSn strap check and boot2 ran before the image


def test_flash_virtual_command_json(emulator_ready, tmp_path):
    image = tmp_path / "fw.bin"
    image.write_bytes(fakes_emulator.print_then("hang") + b"\x5a" * 4096)  # 2 sectors
    env = {**os.environ, "FWTOOL_VIRTUAL_FLASH": str(tmp_path / "vflash.bin")}
    cmd = [sys.executable, "-m", "fwtool", "flash", "--virtual", "--bin", str(image), "-b", "pico", "--json",
           "--wait-app", "0"]
    runs = []
    for _ in range(2):
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
        assert p.returncode == 0, p.stderr[-2000:]
        runs.append(json.loads(p.stdout))
    first, second = runs
    assert first["method"] == "picoboot" and first["verified"] and first["sectors_written"] == 2
    assert first["virtual"]["sector_erases"] == 2 and first["virtual"]["page_programs"] == 17
    assert second["sectors_written"] == 0 and second["virtual"]["page_programs"] == 0 and second["verified"]
    assert (tmp_path / "vflash.bin").read_bytes()[:256] == fakes_emulator.print_then("hang")


# ---- the runtime patches of rp2040js internals -------------------------------------------------------------------

def test_rp2040js_patches_match_the_pinned_version(emulator_ready):
    """Fails loudly when the pinned rp2040js changes anything patches.mjs replaces or relies on."""
    n = node.find_node()
    pkg = node.ensure_rp2040js()
    p = subprocess.run([n.path, str(PATCHES), "--self-test", str(pkg.entry)], capture_output=True, text=True,
                       timeout=60)
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert report["pinned"] == node.RP2040JS_VERSION, "patches.mjs PINNED_VERSION != node.RP2040JS_VERSION"
    assert report["ok"] and p.returncode == 0, report["problems"]

"""Protocol-level doubles for RP2040 boards on USB (tests only; product code never imports this).

* ``FakePicoboot``: the RP2040 bootrom's PICOBOOT interface (docs/notes/rp2040-flashing.md §2.2-2.5) over an
  in-memory 2 MiB NOR flash + SRAM, with the quirks: bad magic/size -> both endpoints halted; bad data-phase
  READ address -> data endpoint halted, no ACK, status set (a bad WRITE address: the whole data phase is
  taken first, then EP 0x03 halts and no ACK comes, as the real B1 bootrom does); a misaligned FLASH_ERASE is ACKed and reports OK; WRITE only
  clears bits (no erase); flash access without EXIT_XIP does nothing. It speaks pyusb's Device shape
  (ctrl_transfer/write/read/clear_halt, descriptors) and raises pyusb's USBError/USBTimeoutError.
* ``FakeApp``: a pico-sdk USB-stdio app (2E8A:000A: CDC + reset interface 0xFF/0x00/0x01) that records the control
  requests it receives and reboots into BOOTSEL on RESET_REQUEST_BOOTSEL or a 1200-baud touch.
* ``FakeBoard``: one physical board moving between modes on a fake clock, with an optional BOOTSEL drive folder
  whose "bootrom" takes UF2 blocks by the rules of §3.1.
* ``FakeBackend``: what fwtool.devices.usb.SystemBackend is on a real machine.
"""
from __future__ import annotations

import array
import errno
import random
import struct
from pathlib import Path
from types import SimpleNamespace

import usb.core

from fwtool.devices import usb as usbdevices
from fwtool.core.errors import NoUsbBackend, UsbAccessDenied

FLASH_BASE = 0x10000000
SRAM_BASE, SRAM_END = 0x20000000, 0x20042000
XIP_SRAM_BASE, XIP_SRAM_END = 0x15000000, 0x15004000
MAGIC = 0x431FD10B
UF2_RP2040 = 0xE48BFF56
INFO_TEXT = "UF2 Bootloader v3.0\nModel: Raspberry Pi RP2\nBoard-ID: RPI-RP2\n"

# bCmdId & 0x7f -> (bCmdSize, has data phase)   (usb_boot_device.c:312-323)
CMD_TABLE = {0x01: (1, False), 0x02: (12, False), 0x03: (8, False), 0x04: (8, True), 0x05: (8, True),
             0x06: (0, False), 0x07: (0, False), 0x08: (4, False), 0x09: (4, False)}
OK, UNKNOWN_CMD, INVALID_CMD_LENGTH, INVALID_TRANSFER_LENGTH, INVALID_ADDRESS, BAD_ALIGNMENT = 0, 1, 2, 3, 4, 5
UNKNOWN_ERROR = 8


def pipe_error():
    return usb.core.USBError("Pipe error", -9, errno.EPIPE)


def no_device():
    return usb.core.USBError("No such device (it may have been disconnected)", -4, errno.ENODEV)


def timeout_error():
    return usb.core.USBTimeoutError("Operation timed out", -7, errno.ETIMEDOUT)


def crc32_mpeg2(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def make_firmware(size: int, seed: int = 1) -> bytes:
    """A flash image with a valid RP2040 boot2 checksum (so the fake bootrom boots it) and random code after."""
    rnd = random.Random(seed)
    boot2 = bytes(rnd.randrange(256) for _ in range(252))
    rest = bytes(rnd.randrange(256) for _ in range(size - 256))
    return boot2 + struct.pack("<I", crc32_mpeg2(boot2)) + rest


def make_uf2(data: bytes, base: int = FLASH_BASE, family: int = UF2_RP2040) -> bytes:
    """Independent UF2 writer (microsoft/uf2 layout), so tests do not check fwtool.uf2 with itself."""
    pages = [data[i:i + 256].ljust(256, b"\0") for i in range(0, len(data), 256)]
    out = bytearray()
    for n, p in enumerate(pages):
        out += struct.pack("<8I", 0x0A324655, 0x9E5D5157, 0x2000, base + 256 * n, 256, n, len(pages), family)
        out += p + b"\0" * 220 + struct.pack("<I", 0x0AB16F30)
    return bytes(out)


def _desc(number, cls, sub, proto, eps):
    return SimpleNamespace(bInterfaceNumber=number, bInterfaceClass=cls, bInterfaceSubClass=sub,
                           bInterfaceProtocol=proto, bAlternateSetting=0,
                           endpoints=[SimpleNamespace(bEndpointAddress=e) for e in eps])


class _Itf(SimpleNamespace):
    def __iter__(self):
        return iter(self.endpoints)


class _FakeUsbDevice:
    """Descriptor side shared by the two modes (pyusb: iterate configurations -> interfaces -> endpoints)."""

    idVendor = 0x2E8A
    idProduct = 0
    interfaces: list = []

    def __init__(self, board):
        self.board = board
        self.bus = board.bus
        self.port_numbers = board.ports

    def __iter__(self):
        return iter([[_Itf(**vars(d)) for d in self.interfaces]])

    @property
    def serial_number(self):
        if not self.board.usb_access:
            raise ValueError("The device has no langid (permission issue, no string descriptors supported or "
                             "device error)")
        return self._serial()

    def _alive(self):
        if self is not self.board.current_device():
            raise no_device()


class FakePicoboot(_FakeUsbDevice):
    idProduct = 0x0003

    def __init__(self, board, msc: bool = True):
        super().__init__(board)
        self.itf = 1 if msc else 0
        self.interfaces = ([_desc(0, 0x08, 0x06, 0x50, [0x81, 0x02])] if msc else []) + [
            _desc(self.itf, 0xFF, 0x00, 0x00, [0x03, 0x84])]
        self.flash = board.flash
        self.sram = bytearray(SRAM_END - SRAM_BASE)
        self.xip_sram = bytearray(XIP_SRAM_END - XIP_SRAM_BASE)
        self.rom = bytes(random.Random(7).randrange(256) for _ in range(0x4000))
        self.halted = {0x03: False, 0x84: False}
        self.status = (0, 0, 0, 0)  # token, code, cmd, in_progress
        self.exclusive = 0
        self.xip_exited = False
        self.phase = None  # ("in", bytes) or ("out", addr, remaining, direct)
        self.page_buf = bytearray(256)
        self.page_fill = 0
        self.ack = None  # "to_host": a ZLP waits on 0x84; "from_host": the device waits for a short OUT packet
        self.pending_reboot = None
        self.commands = []  # (name, token, args) of every valid command
        self.controls = []
        self.n_commands = 0
        self.n_pages = 0
        self.write_bytes = 0
        self.erased_sectors = 0
        self.faults = dict(board.faults)

    def _serial(self):
        return "E0C9125B0D9B"  # the bootrom's: the same on every RP2040

    # -- helpers --------------------------------------------------------------------------------------
    def _halt_both(self):
        self.halted[0x03] = self.halted[0x84] = True

    def _set_status(self, code=None, in_progress=None):
        t, c, cmd, p = self.status
        self.status = (t, c if code is None else code, cmd, p if in_progress is None else in_progress)

    def _flash_off(self, addr):
        return (addr - FLASH_BASE) % len(self.flash)  # the chip has 24 address bits: beyond its size it wraps

    @staticmethod
    def _is_ram(a):
        return SRAM_BASE <= a <= SRAM_END or XIP_SRAM_BASE <= a <= XIP_SRAM_END

    @staticmethod
    def _is_flash(a):
        return FLASH_BASE <= a <= SRAM_BASE

    def _check_rw(self, addr, size, write):
        end = addr + size
        if (self._is_ram(addr) and self._is_ram(end)) or (not write and addr < 8192 and end < 8192):
            return OK, True
        if self._is_flash(addr) and self._is_flash(end):
            return (BAD_ALIGNMENT if addr & 0xFF else OK), False
        return INVALID_ADDRESS, False

    def _mem(self, addr):
        if SRAM_BASE <= addr < SRAM_END:
            return self.sram, addr - SRAM_BASE
        if XIP_SRAM_BASE <= addr < XIP_SRAM_END:
            return self.xip_sram, addr - XIP_SRAM_BASE
        return None, addr

    def _program_page(self, addr, page):
        self.n_pages += 1
        if not self.xip_exited:
            return  # SSI still in XIP mode: the page program never reaches the chip
        if self.faults.get("corrupt_page") == self.n_pages:
            page = bytearray(page)
            page[17] ^= 0x04
        off = self._flash_off(addr)
        for i, b in enumerate(page):
            self.flash[off + i] &= b  # NOR: programming only clears bits

    def _read_flash(self, addr, size):
        if not self.xip_exited:
            return bytes(size)  # nothing sensible comes back through the SSI in XIP mode
        out = bytearray()
        for a in range(addr, addr + size):
            out.append(self.flash[self._flash_off(a)])
        return bytes(out)

    def _erase(self, addr, size):
        if addr & 0xFFF or size & 0xFFF:
            return BAD_ALIGNMENT
        if not (self._is_flash(addr) and self._is_flash(addr + size)):
            return INVALID_ADDRESS
        if self.xip_exited:
            for s in range(addr, addr + size, 4096):
                off = self._flash_off(s)
                self.flash[off:off + 4096] = b"\xff" * 4096
                self.erased_sectors += 1
        return OK

    def _maybe_vanish(self):
        n = self.faults.get("disappear_after_commands")
        if n is not None and self.n_commands >= n:
            self.board.unplug()

    def _complete(self):
        """The command finished: queue the ACK (unless a fault drops it)."""
        self._set_status(in_progress=0)
        if self.faults.get("drop_ack_at") == self.n_commands:
            # OUT/no-data command: the ZLP never comes. IN command: the device never takes the host's ACK.
            self.ack = "lost" if self.status[2] & 0x80 else None
            return
        self.ack = "from_host" if self.status[2] & 0x80 else "to_host"

    # -- pyusb Device interface --------------------------------------------------------------------------
    def ctrl_transfer(self, bmRequestType, bRequest, wValue=0, wIndex=0, data_or_wLength=None, timeout=None):
        self._alive()
        self.controls.append((bmRequestType, bRequest, wValue, wIndex, data_or_wLength))
        if (bmRequestType, bRequest) == (0x41, 0x41) and wIndex == self.itf:  # PICOBOOT_IF_RESET
            self.halted = {0x03: False, 0x84: False}
            self.phase, self.ack, self.page_fill = None, None, 0
            self.status = (0, 0, 0, 0)
            self.exclusive = 0
            return 0
        if (bmRequestType, bRequest) == (0xC1, 0x42) and wIndex == self.itf and data_or_wLength == 16:
            return array.array("B", struct.pack("<IIBB6x", *self.status))
        if (bmRequestType, bRequest) == (0x82, 0x00) and wIndex in self.halted:  # GET_STATUS(endpoint)
            return array.array("B", [1 if self.halted[wIndex] else 0, 0])
        if (bmRequestType, bRequest, wValue) == (0x02, 0x01, 0) and wIndex in self.halted:  # CLEAR_FEATURE(HALT)
            self.halted[wIndex] = False
            return 0
        raise pipe_error()  # anything else: the control endpoint stalls

    def clear_halt(self, ep):
        self._alive()
        self.controls.append(("clear_halt", ep))
        self.halted[ep] = False

    def write(self, endpoint, data, timeout=None):
        self._alive()
        if endpoint != 0x03:
            raise usb.core.USBError("Invalid parameter", -2, errno.EINVAL)
        if self.halted[0x03]:
            raise pipe_error()
        data = bytes(data)
        if self.phase and self.phase[0] == "out":
            return self._data_out(data)
        if self.phase and self.phase[0] == "sink":
            _, remaining, code = self.phase
            if len(data) > remaining:
                raise usb.core.USBError("Overflow", -8, errno.EOVERFLOW)
            self.phase = ("sink", remaining - len(data), code)
            if remaining == len(data):  # data phase over: now the address check fails
                self.phase = None
                self._set_status(code)
                self.halted[0x03] = True
            return len(data)
        if self.ack == "from_host":
            if len(data) < 64:  # a short packet (picotool: 1 byte; a ZLP also works) completes the IN command
                self.ack = None
                return len(data)
        if self.ack or self.phase:  # not ready for a new command (or lost): the OUT endpoint NAKs
            raise timeout_error()
        return self._command(data)

    def _command(self, data):
        if len(data) != 32:
            self._halt_both()
            return len(data)
        magic, token, cmd, size, _unused, xfer, args = struct.unpack("<IIBBHI16s", data)
        if magic != MAGIC:
            self._halt_both()
            return 32
        self.status = (token, UNKNOWN_CMD, cmd, 0)
        cid = cmd & 0x7F
        if cid not in CMD_TABLE:
            self._halt_both()
            return 32
        want_size, has_data = CMD_TABLE[cid]
        if size != want_size:
            self._set_status(INVALID_CMD_LENGTH)
            self._halt_both()
            return 32
        dsize = struct.unpack_from("<I", args, 4)[0] if has_data else 0
        if xfer != dsize:
            self._set_status(INVALID_TRANSFER_LENGTH)
            self._halt_both()
            return 32
        self._set_status(OK)
        self.n_commands += 1
        name = {1: "EXCLUSIVE_ACCESS", 2: "REBOOT", 3: "FLASH_ERASE", 4: "READ", 5: "WRITE", 6: "EXIT_XIP",
                7: "ENTER_CMD_XIP", 8: "EXEC", 9: "VECTORIZE_FLASH"}[cid]
        self.commands.append((name, token, args[:size]))
        self._maybe_vanish()
        if self is not self.board.current_device():
            return 32
        if cid in (4, 5):
            addr, n = struct.unpack_from("<II", args)
            code, direct = self._check_rw(addr, n, write=cid == 5)
            injected = self.faults.get("status_error_at")
            if injected and injected[0] == self.n_commands:
                code = injected[1]
            if code and cid == 4:
                self._set_status(code)
                self.halted[0x84] = True  # data endpoint halted, no ACK
                return 32
            if code:  # WRITE: the real bootrom takes the whole data phase, then halts EP 0x03 and sends no ACK
                self.phase = ("sink", n, code)
                return 32
            self._set_status(in_progress=1)
            if cid == 4:
                if direct:
                    mem, off = self._mem(addr)
                    payload = bytes(mem[off:off + n]) if mem is not None else self.rom[addr:addr + n]
                else:
                    payload = self._read_flash(addr, n)
                self.phase = ("in", payload)
            else:
                self.phase = ("out", addr, n, direct)
                self.page_fill = 0
            return 32
        if cid == 1:
            self.exclusive = args[0]
        elif cid == 2:
            self.pending_reboot = struct.unpack_from("<III", args)
        elif cid == 3:
            addr, n = struct.unpack_from("<II", args)
            self._erase(addr, n)  # result ignored by the ACK callback: a bad erase is acked, status stays OK
        elif cid == 6:
            self.xip_exited = True
        self._complete()
        return 32

    def _data_out(self, data):
        _, addr, remaining, direct = self.phase
        if len(data) > remaining:
            raise usb.core.USBError("Overflow", -8, errno.EOVERFLOW)
        halt_at = self.faults.get("halt_after_write_bytes")
        if halt_at is not None and self.write_bytes + len(data) > halt_at:
            self.write_bytes = halt_at
            self._set_status(UNKNOWN_ERROR)
            self.halted[0x03] = True
            raise pipe_error()
        self.write_bytes += len(data)
        if direct:
            mem, off = self._mem(addr)
            mem[off:off + len(data)] = data
            addr += len(data)
        else:
            for b in data:
                self.page_buf[self.page_fill] = b
                self.page_fill += 1
                if self.page_fill == 256:
                    self._program_page(addr, self.page_buf)
                    addr += 256
                    self.page_fill = 0
        remaining -= len(data)
        self.phase = ("out", addr, remaining, direct)
        if remaining == 0:
            if self.page_fill:  # a partial last page: the bootrom programs its whole 256-byte buffer
                self._program_page(addr, self.page_buf)
                self.page_fill = 0
            self.phase = None
            self._complete()
        return len(data)

    def read(self, endpoint, size_or_buffer, timeout=None):
        self._alive()
        if endpoint != 0x84:
            raise usb.core.USBError("Invalid parameter", -2, errno.EINVAL)
        if self.halted[0x84]:
            raise pipe_error()
        size = size_or_buffer if isinstance(size_or_buffer, int) else len(size_or_buffer)
        if self.phase and self.phase[0] == "in":
            payload = self.phase[1]
            chunk, rest = payload[:size], payload[size:]
            if rest:
                self.phase = ("in", rest)
            else:
                self.phase = None
                self._complete()
            return array.array("B", chunk)
        if self.ack == "to_host":
            self.ack = None
            if self.pending_reboot is not None:
                self.board.schedule_reboot(*self.pending_reboot)
            return array.array("B")
        raise timeout_error()  # nothing to send: the host's read times out


class FakeApp(_FakeUsbDevice):
    """A pico-sdk app with USB stdio: CDC-ACM (interfaces 0+1) and the reset interface (2)."""

    idProduct = 0x000A

    def __init__(self, board):
        super().__init__(board)
        self.interfaces = [_desc(0, 0x02, 0x02, 0x00, [0x81]), _desc(1, 0x0A, 0x00, 0x00, [0x02, 0x82])]
        if board.reset_interface:
            self.interfaces.append(_desc(2, 0xFF, 0x00, 0x01, []))
        self.controls = board.app_controls  # survives re-enumeration, for the tests to look at

    def _serial(self):
        return self.board.serial

    def ctrl_transfer(self, bmRequestType, bRequest, wValue=0, wIndex=0, data_or_wLength=None, timeout=None):
        self._alive()
        self.controls.append((bmRequestType, bRequest, wValue, wIndex, data_or_wLength))
        if self.board.reset_interface and wIndex == 2 and bRequest in (0x01, 0x02):
            if bRequest == 0x01:
                self.board.enter_bootsel()
            else:
                self.board.schedule_reboot(0, 0, 100)
            if self.board.reset_vanishes:
                raise pipe_error()  # the device reset under the request
            return 0
        raise pipe_error()


class FakeBoard:
    """One RP2040 board: a persistent flash, a mode, a USB location; mode changes happen on the fake clock."""

    flash_bytes = 2 * 1024 * 1024

    def __init__(self, mode="bootsel", *, location=(1, (1, 3)), serial="E6614103E7452D2F", firmware=None,
                 usb_access=True, reset_interface=True, has_port=True, reset_vanishes=True, baud_reset=True,
                 drive_dir: Path | None = None, faults=None, bootsel_delay=0.3, boot_delay=0.4, msc=True):
        self.flash = bytearray(b"\xff" * self.flash_bytes)
        if firmware:
            self.flash[:len(firmware)] = firmware
        self.mode = mode
        self.bus, self.ports = location
        self.serial = serial
        self.usb_access = usb_access
        self.reset_interface = reset_interface
        self.has_port = has_port
        self.reset_vanishes = reset_vanishes
        self.baud_reset = baud_reset
        self.drive_dir = Path(drive_dir) if drive_dir else None
        self.faults = faults or {}
        self.bootsel_delay = bootsel_delay
        self.boot_delay = boot_delay
        self.msc = msc
        self.app_controls = []
        self.touches = []
        self.history = [mode]
        self.pending = None  # (time, mode)
        self.clock = None  # set by the backend
        self.uf2_state = None
        self.picoboot_sessions = []
        self._device = None
        self._enter(mode)

    @property
    def location(self):
        return f"{self.bus}-{'.'.join(map(str, self.ports))}"

    @property
    def picoboot(self) -> FakePicoboot | None:
        return self.picoboot_sessions[-1] if self.picoboot_sessions else None

    def now(self):
        return self.clock.now if self.clock else 0.0

    def current_device(self):
        return self._device

    def _enter(self, mode):
        self.mode = mode
        if self.history[-1] != mode:
            self.history.append(mode)
        if mode == "bootsel":
            self._device = self.bootsel_device()
            self.picoboot_sessions.append(self._device)
            if self.drive_dir:
                self.drive_dir.mkdir(parents=True, exist_ok=True)
                (self.drive_dir / "INFO_UF2.TXT").write_text(self.info_text)
                (self.drive_dir / "INDEX.HTM").write_text("<html></html>")
                self.uf2_state = {"num": None, "seen": set()}
        else:
            if self.drive_dir and (self.drive_dir / "INFO_UF2.TXT").exists():
                for f in self.drive_dir.iterdir():
                    f.unlink()  # unmounted: the folder is empty
            self._device = self.app_device() if mode == "app" else None

    # the chip's devices (tests/fakes_picoboot2350.py overrides these for RP2350)
    info_text = INFO_TEXT

    def bootsel_device(self):
        return FakePicoboot(self, self.msc)

    def app_device(self):
        return FakeApp(self)

    def boots(self) -> bool:
        return crc32_mpeg2(bytes(self.flash[:252])) == struct.unpack_from("<I", self.flash, 252)[0]

    def unplug(self):
        self._enter("gone")
        self.pending = None

    def enter_bootsel(self):
        self._enter("gone")
        self.pending = (self.now() + self.bootsel_delay, "bootsel")

    def schedule_reboot(self, pc, sp, delay_ms):
        # the watchdog fires after delay_ms; then boot2 is checked: a valid image runs, else USB boot again
        self.pending = (self.now() + delay_ms / 1000.0, "reboot")

    def update(self):
        if self.mode == "bootsel" and self.drive_dir:
            self._drive_bootrom()
        while self.pending and self.now() >= self.pending[0]:
            at, what = self.pending
            self.pending = None
            if what == "reboot":
                self._enter("gone")
                self.pending = (at + self.boot_delay, "app" if self.boots() else "bootsel")
            else:
                self._enter(what)

    def _drive_bootrom(self):
        """The bootrom's UF2 handling (virtual_disk.c): take valid RP2040 flash blocks, ignore the rest."""
        for f in sorted(self.drive_dir.iterdir()):
            if f.name in ("INFO_UF2.TXT", "INDEX.HTM"):
                continue
            data = f.read_bytes()
            f.unlink()  # the drive never shows written files
            st = self.uf2_state
            for off in range(0, len(data) - 511, 512):
                m0, m1, flags, addr, size, no, num, fam = struct.unpack_from("<8I", data, off)
                mend = struct.unpack_from("<I", data, off + 508)[0]
                if (m0, m1, mend) != (0x0A324655, 0x9E5D5157, 0x0AB16F30) or not flags & 0x2000 \
                        or fam != UF2_RP2040 or flags & 1 or size != 256 or addr & 0xFF \
                        or not (FLASH_BASE <= addr < FLASH_BASE + len(self.flash)) or no >= num:
                    continue
                if st["num"] != num:
                    st.update(num=num, seen=set(), erased=set())
                if no in st["seen"]:
                    continue
                sector = (addr - FLASH_BASE) & ~0xFFF
                if sector not in st["erased"]:
                    self.flash[sector:sector + 4096] = b"\xff" * 4096
                    st["erased"].add(sector)
                o = addr - FLASH_BASE
                for i, b in enumerate(data[off + 32:off + 32 + 256]):
                    self.flash[o + i] &= b
                st["seen"].add(no)
                if len(st["seen"]) == num and not self.pending:
                    self.pending = (self.now() + 1.0, "reboot")  # reboots 1000 ms after the last block


class _Clock:
    def __init__(self):
        self.now = 1000.0


class FakeBackend:
    """Stands in for usbdevices.SystemBackend: USB device list, serial ports, mounts, opening, fake time."""

    def __init__(self, *boards, no_usb=False, extra_mounts=()):
        self.boards = list(boards)
        self.no_usb = no_usb
        self.clock = _Clock()
        self.extra_mounts = list(extra_mounts)
        self.opened = []
        self.touches = []
        self.polls = 0
        for b in self.boards:
            b.clock = self.clock

    def _update(self):
        for b in self.boards:
            b.update()

    def usb_devices(self):
        self.polls += 1
        self._update()
        if self.no_usb:
            raise NoUsbBackend("pyusb found no libusb backend, so PICOBOOT and the reset interface are unavailable",
                               "sudo apt-get install libusb-1.0-0")
        return [b.current_device() for b in self.boards if b.current_device() is not None]

    def serial_ports(self):
        self._update()
        return [SimpleNamespace(device=f"/dev/ttyACM{i}", vid=0x2E8A, pid=0x000A, serial_number=b.serial,
                                location=f"{b.location}:1.0")
                for i, b in enumerate(self.boards) if b.mode == "app" and b.has_port]

    def mounts(self):
        self._update()
        out = [("/dev/sda1", "/", "ext4")] + list(self.extra_mounts)
        for i, b in enumerate(self.boards):
            if b.mode == "bootsel" and b.drive_dir:
                out.append((f"/dev/sd{chr(98 + i)}1", str(b.drive_dir), "vfat"))
        return out

    def block_location(self, device):
        for i, b in enumerate(self.boards):
            if device == f"/dev/sd{chr(98 + i)}1":
                return b.location
        return None

    def _open(self, dev):
        if not dev.board.usb_access:
            raise UsbAccessDenied(f"access denied opening USB device {dev.idVendor:04x}:{dev.idProduct:04x}",
                                  "install the udev rule")
        self.opened.append(dev)
        return dev

    def open_picoboot(self, dev, interface):
        return self._open(dev)

    def open_reset(self, dev, interface):
        return self._open(dev)

    def close(self, transport):
        pass

    def touch_1200(self, port):
        self.touches.append(port)
        for i, b in enumerate(self.boards):
            if port == f"/dev/ttyACM{i}" and b.mode == "app":
                if not b.usb_access and b.faults.get("port_denied"):
                    raise UsbAccessDenied(f"no permission to open {port}", "join dialout")
                b.touches.append(1200)
                if b.baud_reset:
                    b.enter_bootsel()

    def sleep(self, seconds):
        self.clock.now += seconds
        self._update()

    def monotonic(self):
        return self.clock.now


def install(monkeypatch, *boards, **kw) -> FakeBackend:
    """Route the device layer's OS backend (discovery, transport, time) through a FakeBackend for a test."""
    be = FakeBackend(*boards, **kw)
    monkeypatch.setattr(usbdevices, "_backend", be)
    return be

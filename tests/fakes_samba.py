"""A fake Arduino Nano 33 BLE at the protocol level: the far end of a pty that answers as Arduino's "SAM-BA
extended" 2.0 bootloader does (the commands Arduino's BOSSA fork sends, src/Samba.cpp, and the answers a
published transcript of it against this board shows), plus the board's two USB identities.

What it models, honestly:
* app mode: a CDC port 2341:805A at USB location 1-2 with the board's serial number; a 1200-baud touch on it
  (through the device layer's backend, ``touch_1200``) re-enumerates the board as the bootloader, 2341:005A, on a
  *new* pty at the same location (unless ``faults["no_bootloader"]``: the app ignores the touch);
* bootloader mode: ``N#`` -> ``\\n\\r``, ``V#`` -> the version with its ``[Arduino:IKXYZ]`` extensions, ``I#`` ->
  ``nRF52840-QIAA``, ``X<off>#`` erases the application area from ``off`` (-> ``X\\n\\r``), ``S<addr>,<len>#``
  takes ``len`` raw bytes into the RAM buffer, ``Y<addr>,0#`` selects the copy source, ``Y<off>,<len>#`` copies
  the buffer into flash at the application start + ``off`` (NOR: bits only clear, so a missing erase shows),
  ``Z<off>,<len>#`` -> ``Z%08X#\\n\\r`` (CRC-16/XMODEM of that flash range), ``K#`` resets into the app;
* faults: ``corrupt_page`` (a 256-byte page index whose first byte is flipped when copied: the CRC check must
  catch it), ``drop_after`` (the board vanishes after that many ``S`` payload bytes), ``answers`` ({letter:
  bytes}: a wrong answer to that command), ``version`` / ``chip`` (other ``V#`` / ``I#`` answers),
  ``no_bootloader``.
It does not model timing, USB packet boundaries, or the bootloader's LED.
"""
from __future__ import annotations

import binascii
import os
import select
import threading
import time
import tty
from types import SimpleNamespace

from fwtool.devices import usb as usbdevices

APP_ID, BOOT_ID = (0x2341, 0x805A), (0x2341, 0x005A)
APP_START, FLASH_END, BUFFER = 0x10000, 0x100000, 0x34
VERSION = b"Arduino Bootloader (SAM-BA extended) 2.0 [Arduino:IKXYZ]"


class Pty:
    def __init__(self):
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        self.path = os.ttyname(self.slave)
        self.closed = False
        self.served = False  # a server thread owns the descriptors: it closes them when it stops

    def close(self):
        """Hang up. The descriptors are closed by their server thread (if any) once it has stopped, so a new pty
        that reuses the numbers is never read by an old thread."""
        if not self.closed:
            self.closed = True
            if not self.served:
                self.release()

    def release(self):
        for fd in (self.master, self.slave):
            try:
                os.close(fd)
            except OSError:
                pass


class FakeNano:
    def __init__(self, mode="app", *, serial="A1B2C3D4E5F60718", location="1-2", faults=None, app=b""):
        self.serial, self.location = serial, location
        self.faults = dict(faults or {})
        self.flash = bytearray(b"\xff" * FLASH_END)
        self.flash[:16] = b"BOOTLOADER-SAMBA"  # the bootloader's own bytes: must never change
        self.flash[APP_START:APP_START + len(app)] = app
        self.commands: list[str] = []
        self.resets = 0
        self._resetting = False
        self.mode = None
        self.pty: Pty | None = None
        self._thread = None
        self._enter(mode)

    # ---- USB identity --------------------------------------------------------------------------------------
    def _enter(self, mode):
        if self.pty is not None:
            self.pty.close()
        self.mode = mode
        self.pty = None if mode == "gone" else Pty()
        if mode == "bootloader":
            self.pty.served = True
            self._thread = threading.Thread(target=self._serve_and_release, args=(self.pty,), daemon=True)
            self._thread.start()

    def _reset_done(self):
        self._enter("app")
        self._resetting = False

    def port_info(self):
        if self.mode not in ("app", "bootloader"):
            return None
        vid, pid = APP_ID if self.mode == "app" else BOOT_ID
        return SimpleNamespace(device=self.pty.path, vid=vid, pid=pid, location=f"{self.location}:1.0",
                               serial_number=self.serial if self.mode == "app" else None,
                               description="Nano 33 BLE" if self.mode == "app" else "Nano 33 BLE bootloader")

    def touch(self):
        if self.mode == "app" and not self.faults.get("no_bootloader"):
            self._enter("bootloader")

    def double_tap(self):
        """The user double-taps reset: the bootloader, whatever ran (waits for a pending K# reset first)."""
        deadline = time.monotonic() + 2.0
        while self._resetting and time.monotonic() < deadline:
            time.sleep(0.01)
        self._enter("bootloader")

    def bootloader_intact(self) -> bool:
        return bytes(self.flash[:16]) == b"BOOTLOADER-SAMBA" and set(self.flash[16:APP_START]) == {0xFF}

    def app_bytes(self, n: int) -> bytes:
        return bytes(self.flash[APP_START:APP_START + n])

    # ---- the bootloader --------------------------------------------------------------------------------------
    def _serve_and_release(self, pty: Pty):
        try:
            self._serve(pty)
        finally:
            pty.closed = True
            pty.release()

    def _serve(self, pty: Pty):
        buf = b""
        source = BUFFER
        ram = bytearray(0x1000)
        received = 0
        while not pty.closed:
            try:
                r, _, _ = select.select([pty.master], [], [], 0.05)
                if not r:
                    continue
                chunk = os.read(pty.master, 8192)
            except OSError:
                return
            if pty.closed:
                return
            buf += chunk
            while b"#" in buf:
                cmd, _, buf = buf.partition(b"#")
                text = cmd.decode("ascii", "replace")
                letter, args = text[:1], text[1:]
                if letter == "K":
                    self._resetting = True
                self.commands.append(text + "#")
                answer = self.faults.get("answers", {}).get(letter)
                if letter == "S":
                    addr, size = (int(x, 16) for x in args.split(","))
                    while len(buf) < size:
                        drop = self.faults.get("drop_after")
                        if drop is not None and received + len(buf) >= drop:
                            self._enter("gone")  # unplugged mid-write
                            return
                        try:
                            r, _, _ = select.select([pty.master], [], [], 2.0)
                            if not r:
                                break
                            buf += os.read(pty.master, 8192)
                        except OSError:
                            return
                    data, buf = buf[:size], buf[size:]
                    received += len(data)
                    drop = self.faults.get("drop_after")
                    if drop is not None and received >= drop:
                        self._enter("gone")
                        return
                    ram[addr - BUFFER:addr - BUFFER + len(data)] = data
                    continue
                if answer is not None:
                    os.write(pty.master, answer)
                    continue
                if letter == "N":
                    out = b"\n\r"
                elif letter == "V":
                    out = self.faults.get("version", VERSION) + b"\n\r"
                elif letter == "I":
                    out = self.faults.get("chip", b"nRF52840-QIAA") + b"\n\r"
                elif letter == "X":
                    off = int(args, 16)
                    self.flash[APP_START + off:FLASH_END] = b"\xff" * (FLASH_END - APP_START - off)
                    out = b"X\n\r"
                elif letter == "Y":
                    a, n = (int(x, 16) for x in args.split(","))
                    if n == 0:
                        source = a
                    else:
                        at = APP_START + a
                        data = bytearray(ram[source - BUFFER:source - BUFFER + n])
                        bad = self.faults.get("corrupt_page")
                        if bad is not None and at <= APP_START + bad * 256 < at + n:
                            data[APP_START + bad * 256 - at] ^= 0x5A
                        for i, b in enumerate(data):
                            self.flash[at + i] &= b
                    out = b"Y\n\r"
                elif letter == "Z":
                    a, n = (int(x, 16) for x in args.split(","))
                    crc = binascii.crc_hqx(bytes(self.flash[APP_START + a:APP_START + a + n]), 0)
                    out = b"Z%08X#\n\r" % crc
                elif letter == "K":
                    self.resets += 1
                    self._resetting = True
                    threading.Timer(0.05, self._reset_done).start()
                    return
                else:
                    out = b""
                try:
                    os.write(pty.master, out)
                except OSError:
                    return


class _Clock:
    def __init__(self):
        self.now = 1000.0


class FakeBackend:
    """The device layer's OS backend for Nano boards: no pyusb devices (serial-only discovery, as on a machine
    without libusb permission), their CDC ports, the 1200-baud touch; time advances on sleep (plus a real pause
    for the pty threads)."""

    def __init__(self, *boards):
        self.boards = list(boards)
        self.clock = _Clock()
        self.touches: list[str] = []

    def usb_devices(self):
        return []

    def serial_ports(self):
        return [p for p in (b.port_info() for b in self.boards) if p is not None]

    def mounts(self):
        return []

    def block_location(self, device):
        return None

    def close(self, transport):
        pass

    def touch_1200(self, port):
        self.touches.append(port)
        for b in self.boards:
            if b.pty is not None and b.pty.path == port:
                b.touch()

    def sleep(self, seconds):
        self.clock.now += seconds
        time.sleep(min(seconds, 0.01))

    def monotonic(self):
        return self.clock.now


def install(monkeypatch, *boards) -> FakeBackend:
    be = FakeBackend(*boards)
    monkeypatch.setattr(usbdevices, "_backend", be)
    return be


def make_firmware(size: int, seed: int = 7) -> bytes:
    """Bytes that look like an application: a vector table (stack in RAM, Thumb reset handler in the app area)."""
    import random
    rnd = random.Random(seed)
    head = (0x20040000).to_bytes(4, "little") + (APP_START + 0x201).to_bytes(4, "little")
    return head + bytes(rnd.getrandbits(8) for _ in range(size - 8))

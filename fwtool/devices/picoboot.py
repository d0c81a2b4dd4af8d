"""PICOBOOT: the RP2040 and RP2350 bootroms' vendor USB interface, spoken from Python (a port of what picotool does).

RP2350 (pico-sdk 2.2.0 boot/picoboot.h, "RP2350 only below here"): the same 32-byte commands, status and control
requests, plus REBOOT2 (0x0a: dFlags, dDelayMS, dParam0, dParam1; boot/picoboot_constants.h REBOOT2_FLAG_*),
GET_INFO (0x8b), OTP_READ (0x8c) and OTP_WRITE (0x0d); its BOOTSEL USB id is 2E8A:000F (RP2040: 2E8A:0003) and
its SRAM runs to 0x20082000. fwtool reboots an RP2350 with REBOOT2 (normal boot, to the Arm cores), as picotool
does; flash erases are 4 KB sectors on both chips.

The protocol client lives with the devices (reset reboots a board in BOOTSEL through it); the flashing
algorithm that uses it to write an image is fwtool/flash/picoboot.py.

The client talks to a *transport* with pyusb's ``usb.core.Device`` shape: ``ctrl_transfer(bmRequestType, bRequest,
wValue, wIndex, data_or_wLength, timeout)``, ``write(ep, data, timeout)`` and ``read(ep, size, timeout)``, and
optionally ``clear_halt(ep)`` (libusb's, which also resets the host's data toggle). Errors are pyusb's
``usb.core.USBError`` (``errno`` EPIPE: halted endpoint, ENODEV: unplugged, EACCES: no permission; a
``USBTimeoutError``: no answer). Protocol facts: docs/notes/rp2040-flashing.md §2 (picoboot.h, usb_boot_device.c).
"""
from __future__ import annotations

import errno as errno_mod
import struct
from dataclasses import dataclass

import usb.core

from fwtool.core.errors import DeviceLost, FlashFailed, UsbAccessDenied
from fwtool.devices.permissions import udev_fix

MAGIC = 0x431FD10B
CMD = struct.Struct("<IIBBHI16s")  # dMagic dToken bCmdId bCmdSize _unused dTransferLength args[16]
STATUS = struct.Struct("<IIBB6x")  # dToken dStatusCode bCmdId bInProgress

EXCLUSIVE_ACCESS, REBOOT, FLASH_ERASE, READ, WRITE, EXIT_XIP, ENTER_CMD_XIP, EXEC, VECTORIZE_FLASH = (
    0x01, 0x02, 0x03, 0x84, 0x05, 0x06, 0x07, 0x08, 0x09)
CMD_NAMES = {EXCLUSIVE_ACCESS: "EXCLUSIVE_ACCESS", REBOOT: "REBOOT", FLASH_ERASE: "FLASH_ERASE", READ: "READ",
             WRITE: "WRITE", EXIT_XIP: "EXIT_XIP", ENTER_CMD_XIP: "ENTER_CMD_XIP", EXEC: "EXEC",
             VECTORIZE_FLASH: "VECTORIZE_FLASH"}
REBOOT2, GET_INFO, OTP_READ, OTP_WRITE = 0x0A, 0x8B, 0x8C, 0x0D  # RP2350 only
CMD_NAMES.update({REBOOT2: "REBOOT2", GET_INFO: "GET_INFO", OTP_READ: "OTP_READ", OTP_WRITE: "OTP_WRITE"})
REBOOT2_FLAG_REBOOT_TYPE_NORMAL, REBOOT2_FLAG_REBOOT_TYPE_BOOTSEL = 0x0, 0x2
REBOOT2_FLAG_REBOOT_TO_ARM = 0x10
NOT_EXCLUSIVE, EXCLUSIVE, EXCLUSIVE_AND_EJECT = 0, 1, 2

RP2350_SRAM_END = 0x20082000

IF_RESET = (0x41, 0x41)  # bmRequestType OUT|vendor|interface, bRequest
IF_CMD_STATUS = (0xC1, 0x42)  # IN|vendor|interface, wLength 16

STATUS_NAMES = ["OK", "UNKNOWN_CMD", "INVALID_CMD_LENGTH", "INVALID_TRANSFER_LENGTH", "INVALID_ADDRESS",
                "BAD_ALIGNMENT", "INTERLEAVED_WRITE", "REBOOTING", "UNKNOWN_ERROR", "INVALID_STATE",
                "NOT_PERMITTED", "INVALID_ARG", "BUFFER_TOO_SMALL", "PRECONDITION_NOT_MET", "MODIFIED_DATA",
                "INVALID_DATA", "NOT_FOUND", "UNSUPPORTED_MODIFICATION"]

PAGE = 256
SECTOR = 4096
SRAM_END = 0x20042000  # initial SP for REBOOT on RP2040 (picotool: reboot(0, 0x20042000, 500))
RAM_RANGES = ((0x20000000, SRAM_END), (0x15000000, 0x15004000))
CMD_TIMEOUT_MS = 3000  # picotool: command 3 s
DATA_TIMEOUT_MS = 10000  # data phase 10 s
ACK_TIMEOUT_MS = 10000  # a 4 KiB-sector erase + 16 page programs finish well inside this
READ_CHUNK = 4096


def status_name(code: int) -> str:
    return STATUS_NAMES[code] if 0 <= code < len(STATUS_NAMES) else f"status {code}"


@dataclass(frozen=True)
class CmdStatus:
    token: int
    code: int
    cmd: int
    in_progress: bool

    def __str__(self) -> str:
        cmd = CMD_NAMES.get(self.cmd, f"0x{self.cmd:02x}")
        return f"{status_name(self.code)} (token {self.token}, {cmd}{', in progress' if self.in_progress else ''})"


def _kind(e: Exception) -> str:
    if isinstance(e, usb.core.USBTimeoutError):
        return "timeout"
    no = getattr(e, "errno", None)
    if no == errno_mod.ENODEV or "No such device" in str(e):
        return "gone"
    if no == errno_mod.EPIPE or "Pipe error" in str(e):
        return "halted"
    if no == errno_mod.EACCES or "Access denied" in str(e):
        return "access"
    if no == errno_mod.ETIMEDOUT:
        return "timeout"
    return "io"


class ProtocolError(FlashFailed):
    """A PICOBOOT command failed; ``status`` is what CMD_STATUS said afterwards (if it could be read)."""

    def __init__(self, cause, fix=None, status: CmdStatus | None = None):
        super().__init__(cause, fix)
        self.status = status


AFTER_FAILURE_FIX = ("the board is still in BOOTSEL mode with its flash only partly written: run 'fwtool flash' "
                     "again; if it keeps failing, try another cable/port")


class PicobootClient:
    """One PICOBOOT connection. Every method either completes (ACK received) or raises a FwtoolError."""

    def __init__(self, transport, interface: int = 1, out_ep: int = 0x03, in_ep: int = 0x84):
        self.t = transport
        self.itf = interface
        self.out_ep = out_ep
        self.in_ep = in_ep
        self.token = 0

    # ---- control requests (EP0 keeps working while the bulk endpoints are halted) -------------------------
    def _ctrl(self, what: str, *args):
        try:
            return self.t.ctrl_transfer(*args, timeout=CMD_TIMEOUT_MS)
        except usb.core.USBError as e:
            raise self._usb_failure(what, e) from e

    def status(self) -> CmdStatus:
        data = bytes(self._ctrl("CMD_STATUS", IF_CMD_STATUS[0], IF_CMD_STATUS[1], 0, self.itf, 16))
        if len(data) != 16:
            raise ProtocolError(f"PICOBOOT CMD_STATUS returned {len(data)} bytes, not 16", AFTER_FAILURE_FIX)
        token, code, cmd, busy = STATUS.unpack(data)
        return CmdStatus(token, code, cmd, bool(busy))

    def _endpoint_halted(self, ep: int) -> bool:
        data = bytes(self._ctrl("GET_STATUS", 0x82, 0x00, 0, ep, 2))
        return bool(data and data[0] & 1)

    def _clear_halt(self, ep: int) -> None:
        if hasattr(self.t, "clear_halt"):
            try:
                self.t.clear_halt(ep)
                return
            except usb.core.USBError as e:
                raise self._usb_failure("CLEAR_HALT", e) from e
        self._ctrl("CLEAR_FEATURE", 0x02, 0x01, 0, ep, None)  # ENDPOINT_HALT

    def reset(self) -> None:
        """picotool's picoboot_reset: clear halted endpoints, then IF_RESET (aborts, clears status + exclusive)."""
        for ep in (self.in_ep, self.out_ep):
            if self._endpoint_halted(ep):
                self._clear_halt(ep)
        self._ctrl("IF_RESET", IF_RESET[0], IF_RESET[1], 0, self.itf, None)

    # ---- the command transaction -------------------------------------------------------------------------
    def _usb_failure(self, what: str, e: Exception) -> Exception:
        kind = _kind(e)
        if kind == "gone":
            return DeviceLost(f"the board disconnected during {what}",
                              "check the cable and plug it back in, then run 'fwtool flash' again")
        if kind == "access":
            return UsbAccessDenied(f"access to the PICOBOOT interface was denied during {what}", udev_fix())
        return ProtocolError(f"{what} failed: {e}", AFTER_FAILURE_FIX)

    def _fail(self, what: str, phase: str, e: Exception | None) -> Exception:
        """Name the cause (USB error + device status), put the interface back in a known state, return the error."""
        if e is not None and _kind(e) in ("gone", "access"):
            return self._usb_failure(what, e)
        try:
            st = self.status()
        except FlashFailed as se:
            if isinstance(se, DeviceLost):
                return se
            st = None
        try:
            self.reset()
        except DeviceLost as le:
            return le
        except FlashFailed:
            pass
        msg = f"{what}: {phase} failed"
        if e is not None:
            msg += {"timeout": " (no answer: timeout)", "halted": " (endpoint halted: the device stalled)",
                    "io": f" (USB I/O error: {e})"}.get(_kind(e), f" ({e})")
        msg += f"; device status {st}" if st else "; device status unreadable"
        return ProtocolError(msg,
                             AFTER_FAILURE_FIX, st)

    def command(self, cmd: int, args: bytes = b"", transfer_length: int = 0, data: bytes | None = None,
                what: str | None = None, ack_timeout_ms: int = ACK_TIMEOUT_MS) -> bytes:
        """Send one command, run its data phase, wait for the ACK. Returns the IN data (READ) or b""."""
        what = what or CMD_NAMES.get(cmd, f"command 0x{cmd:02x}")
        self.token += 1
        packet = CMD.pack(MAGIC, self.token, cmd, len(args), 0, transfer_length, args.ljust(16, b"\0"))
        try:
            n = self.t.write(self.out_ep, packet, timeout=CMD_TIMEOUT_MS)
        except usb.core.USBError as e:
            raise self._fail(what, "sending the command", e) from e
        if n != len(packet):
            raise self._fail(what, f"sending the command (only {n} of 32 bytes sent)", None)

        result = b""
        if transfer_length:
            try:
                if cmd & 0x80:
                    buf = bytearray()
                    while len(buf) < transfer_length:
                        chunk = self.t.read(self.in_ep, transfer_length - len(buf), timeout=DATA_TIMEOUT_MS)
                        if len(chunk) == 0:
                            raise ProtocolError(f"{what}: the device sent an empty packet after {len(buf)} of "
                                                f"{transfer_length} bytes", AFTER_FAILURE_FIX)
                        buf += bytes(chunk)
                    if len(buf) != transfer_length:
                        raise self._fail(what, f"data phase ({len(buf)} bytes, expected {transfer_length})", None)
                    result = bytes(buf)
                else:
                    assert data is not None and len(data) == transfer_length
                    n = self.t.write(self.out_ep, data, timeout=DATA_TIMEOUT_MS)
                    if n != transfer_length:
                        raise self._fail(what, f"data phase ({n} of {transfer_length} bytes accepted)", None)
            except usb.core.USBError as e:
                raise self._fail(what, "data phase", e) from e

        # ACK: one packet in the direction opposite to bit 7 of the command id
        try:
            if cmd & 0x80:
                self.t.write(self.out_ep, b"\0", timeout=ack_timeout_ms if not transfer_length else CMD_TIMEOUT_MS)
            else:
                ack = self.t.read(self.in_ep, 64, timeout=ack_timeout_ms if not transfer_length else CMD_TIMEOUT_MS)
                if len(ack) != 0:
                    raise self._fail(what, f"ACK (got {len(ack)} bytes instead of a zero-length packet)", None)
        except usb.core.USBError as e:
            raise self._fail(what, "waiting for the ACK", e) from e
        return result

    # ---- commands --------------------------------------------------------------------------------------------
    def exclusive(self, mode: int = EXCLUSIVE) -> None:
        self.command(EXCLUSIVE_ACCESS, bytes([mode]))

    def exit_xip(self) -> None:
        self.command(EXIT_XIP)

    def erase(self, addr: int, size: int, flash: tuple[int, int]) -> None:
        # The bootrom ACKs a misaligned/out-of-range erase and still reports OK: the host must check.
        check_flash_range("FLASH_ERASE", addr, size, flash, SECTOR)
        self.command(FLASH_ERASE, struct.pack("<II", addr, size), what=f"FLASH_ERASE 0x{addr:08X}+{size}")

    def read(self, addr: int, size: int, flash: tuple[int, int] | None = None) -> bytes:
        if flash is not None:
            check_flash_range("READ", addr, size, flash, PAGE)
        return self.command(READ, struct.pack("<II", addr, size), size, what=f"READ 0x{addr:08X}+{size}")

    def write(self, addr: int, data: bytes, flash: tuple[int, int] | None = None) -> None:
        if flash is not None:
            check_flash_range("WRITE", addr, len(data), flash, PAGE)
            if len(data) % PAGE:
                raise FlashFailed(f"internal: WRITE of {len(data)} bytes is not whole 256-byte pages")
        self.command(WRITE, struct.pack("<II", addr, len(data)), len(data), data,
                     what=f"WRITE 0x{addr:08X}+{len(data)}")

    def reboot(self, pc: int = 0, sp: int = SRAM_END, delay_ms: int = 500) -> None:
        self.command(REBOOT, struct.pack("<III", pc, sp, delay_ms))

    def reboot2(self, flags: int, delay_ms: int = 500, param0: int = 0, param1: int = 0) -> None:
        """RP2350's REBOOT2 (bCmdSize 16)."""
        self.command(REBOOT2, struct.pack("<IIII", flags, delay_ms, param0, param1))

    def reboot_normal(self, chip: str | None, delay_ms: int = 500) -> str:
        """Leave BOOTSEL for a normal boot: REBOOT on RP2040 (picotool's reboot(0, 0x20042000, delay)), REBOOT2
        NORMAL|TO_ARM on RP2350. Returns the command's name."""
        if chip == "RP2350":
            self.reboot2(REBOOT2_FLAG_REBOOT_TYPE_NORMAL | REBOOT2_FLAG_REBOOT_TO_ARM, delay_ms)
            return "REBOOT2"
        self.reboot(0, SRAM_END, delay_ms)
        return "REBOOT"



def check_flash_range(what: str, addr: int, size: int, flash: tuple[int, int], align: int) -> None:
    """Refuse what the bootrom would mis-handle silently: misaligned, empty, or past the chip's real flash
    (the bootrom accepts anything up to 0x20000000 and the flash chip wraps around)."""
    lo, hi = flash
    if size <= 0 or addr % align or size % (SECTOR if what == "FLASH_ERASE" else 1):
        raise FlashFailed(f"internal: {what} 0x{addr:08X}+{size} is not {align}-byte aligned (refused on the host)")
    if addr < lo or addr + size > hi:
        raise FlashFailed(f"internal: {what} 0x{addr:08X}+{size} is outside flash 0x{lo:08X}-0x{hi:08X}")

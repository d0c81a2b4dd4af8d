"""The SAM-BA wire format over a CDC serial port (what Arduino's BOSSA fork ``src/Samba.cpp`` sends and reads).

Commands are ASCII, end in ``#``, numbers are 8 upper-case hex digits. Answers (USB mode, ``N#`` first):
``N#`` -> ``\\n\\r``; ``V#`` / ``I#`` -> a printable line; ``X..#`` -> ``X\\n\\r``; ``Y..#`` -> ``Y\\n\\r``;
``Z..#`` -> ``Z%08X#\\n\\r``; ``S..#`` is followed by the raw bytes and answers nothing; ``K#`` answers nothing
(the board resets). A port that fails mid-exchange raises DeviceLost; an answer of the wrong shape raises
SambaProtocolError (a FlashFailed) naming the command and what came back.
"""
from __future__ import annotations

import time

import serial

from fwtool.core.errors import DeviceLost, FlashFailed

LOST_FIX = ("plug the board in again, double-tap its reset button to enter the bootloader (pulsing LED) and flash "
            "again; the bootloader itself is never written")


class SambaProtocolError(FlashFailed):
    """The bootloader answered something the protocol does not allow."""


def port_errors() -> tuple[type[BaseException], ...]:
    """What a serial port that vanished raises: OSError, pyserial's errors and, on POSIX, termios.error (tcdrain
    on a hung-up tty), which is not an OSError."""
    errors: list[type[BaseException]] = [OSError, serial.SerialException]
    try:
        import termios
        errors.append(termios.error)
    except ImportError:  # Windows
        pass
    return tuple(errors)


def printable(raw: bytes) -> str:
    """The printable prefix of an answer (BOSSA cuts ``V#``/``I#`` answers at the first non-printable byte)."""
    out = []
    for b in raw:
        if not 0x20 <= b < 0x7F:
            break
        out.append(chr(b))
    return "".join(out)


def hex8(n: int) -> str:
    return f"{n & 0xFFFFFFFF:08X}"


class SambaLink:
    """One open bootloader port: ``send`` a command, ``read_exact`` / ``read_line`` its answer."""

    def __init__(self, port, name: str = "the bootloader port"):
        self.port = port  # a pyserial Serial (or anything with read/write/timeout/close)
        self.name = name
        self.log: list[str] = []  # the commands sent, for messages and tests

    def _lost(self, what: str, e: Exception | None = None) -> DeviceLost:
        detail = f" ({e})" if e else ""
        return DeviceLost(f"{self.name} went away during {what}{detail}", LOST_FIX)

    def send(self, command: str, payload: bytes = b"") -> None:
        self.log.append(command)
        try:
            self.port.write(command.encode("ascii"))
            if payload:
                self.port.flush()  # BOSSA: command and data must not share a USB packet
                view = memoryview(payload)
                while view:
                    n = self.port.write(view[:4096])
                    if not n:
                        raise self._lost(f"'{command}'")
                    view = view[n:]
            self.port.flush()
        except port_errors() as e:
            raise self._lost(f"'{command}'", e) from e

    def read_exact(self, n: int, timeout: float, command: str) -> bytes:
        """Exactly ``n`` bytes within ``timeout`` seconds (fewer: SambaProtocolError with what came)."""
        buf = b""
        deadline = time.monotonic() + timeout
        try:
            while len(buf) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.port.timeout = min(left, 0.5)
                buf += self.port.read(n - len(buf))
        except port_errors() as e:
            raise self._lost(f"'{command}'", e) from e
        if len(buf) < n:
            raise SambaProtocolError(f"the bootloader answered '{command}' with {buf!r} within {timeout:.0f} s "
                                     f"(expected {n} bytes)", "double-tap reset to restart the bootloader, then "
                                     "flash again")
        return buf

    def read_line(self, timeout: float, command: str) -> str:
        """An answer that ends in ``\\n\\r`` (or whatever came within ``timeout``), as printable text."""
        buf = b""
        deadline = time.monotonic() + timeout
        try:
            while not buf.endswith(b"\n\r") and len(buf) < 256:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.port.timeout = min(left, 0.2)
                chunk = self.port.read(1)
                buf += chunk
        except port_errors() as e:
            raise self._lost(f"'{command}'", e) from e
        text = printable(buf)
        if not text:
            raise SambaProtocolError(f"the bootloader gave no answer to '{command}' ({buf!r})",
                                     "double-tap reset to restart the bootloader, then flash again")
        return text

    def expect(self, command: str, answer: bytes, timeout: float) -> None:
        """Send ``command`` and require exactly ``answer``."""
        self.send(command)
        got = self.read_exact(len(answer), timeout, command)
        if got != answer:
            raise SambaProtocolError(f"the bootloader answered '{command}' with {got!r}, expected {answer!r}",
                                     "double-tap reset to restart the bootloader, then flash again")

    def close(self) -> None:
        try:
            self.port.close()
        except port_errors():
            pass

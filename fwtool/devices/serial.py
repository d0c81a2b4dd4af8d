"""The serial layer: the one place a board's serial port is opened (found: fwtool.devices.ports.resolve_port).

* :func:`open_serial` / :func:`open_port`: the one opener (a device path or a pyserial URL). Exclusive lock on a
  posix device, the first bytes kept (no input flush at open), DTR asserted, ``socket://`` and ``rfc2217://`` URLs
  checked, ``rfc2217://`` opened the way ser2net/labgrid ports need (:func:`serial_open_args`).
  ``open_serial`` raises pyserial's errors (the monitor's reconnect loop retries on them); ``open_port`` turns them
  into one NoDevice (exit 6) with a fix, for the commands that open a port once.
* :func:`touch_1200`: pico-sdk's reset-to-BOOTSEL "magic" on a port that is not open yet.
* Reading: :class:`fwtool.core.lines.PortLines` / :func:`fwtool.core.lines.read_available` (the one read loop;
  it lives in core so the audio layer, below this one, reads the same way), re-exported here.
* Finding the port: :func:`fwtool.devices.ports.resolve_port`, "which board, on which port", with one rule for
  every command (``--port``/``--serial`` as given; else the board named, else the board flashed last, else the
  board built last, else any fwtool board over USB, preferring the board flashed last). It lives beside the port
  matching in ports.py, which lists ports through the USB backend (that backend's 1200-baud touch opens its port
  here, so this module imports neither).

Nothing else in fwtool calls ``serial.Serial(...)`` or ``serial.serial_for_url(...)``
(tests/test_serial_layer.py checks it).
"""
from __future__ import annotations

import os

import serial

from fwtool.core.errors import NoDevice, UsbAccessDenied
from fwtool.core.lines import PortClosed, PortLines, read_available, read_waiting
from fwtool.devices.permissions import serial_fix

BAUD = 115200  # ignored by USB CDC; a UART board's rate comes from its board file (uart_baud)

# what a port's failures raise: pyserial's own, the OS's, a socket:// peer closing, a handle closed under us
PORT_ERRORS = (serial.SerialException, OSError, ValueError, TypeError, AttributeError)

__all__ = ["BAUD", "PORT_ERRORS", "open_serial", "open_port", "check_url", "serial_open_args", "is_url",
           "touch_1200", "short_reason", "open_fix", "PortLines", "PortClosed", "read_available", "read_waiting"]


# ---- opening ---------------------------------------------------------------------------------------------------
def is_url(port: str) -> bool:
    """pyserial URL (socket://, rfc2217://, loop://, spy://, ...) rather than a device path."""
    return "://" in port


def serial_open_args(device: str, write_timeout: float | None = None) -> tuple[str, dict]:
    """(what to pass to ``serial.serial_for_url``, extra keyword arguments) for a device path or URL.

    ``rfc2217://`` (ser2net, labgrid's exported serial ports) needs two changes from a local port:
    pyserial's rfc2217 backend raises NotImplementedError for any ``write_timeout``, so none is passed; and
    ``ign_set_control`` is added to the URL unless it is there already: ser2net answers the SET_CONTROL request
    (DTR/RTS, which pico-sdk's USB stdio needs before it prints) with a value other than the one asked for, so
    pyserial waits its whole network timeout and fails ("... option 'control'"). With the option pyserial still
    sends DTR/RTS but does not wait for that answer."""
    scheme = device.partition("://")[0].lower() if is_url(device) else ""
    if scheme != "rfc2217":
        return device, ({} if write_timeout is None else {"write_timeout": write_timeout})
    base, _, query = device.partition("?")
    options = [o for o in query.split("&") if o]
    if not any(o.split("=", 1)[0] == "ign_set_control" for o in options):
        options.append("ign_set_control")
    return f"{base}?{'&'.join(options)}", {}


def _open_keeping_first_bytes(ser: serial.SerialBase) -> None:
    """Open without the input flush pyserial does at open (posix: after raising DTR; socket://: after connecting).
    A pico-sdk app starts printing its banner as soon as it sees DTR, and an emulator as soon as the socket
    connects, so those bytes were thrown away. Drivers only read while a port is open: nothing stale to flush."""
    noop = lambda *a, **k: None  # noqa: E731
    for name in ("_reset_input_buffer", "reset_input_buffer"):
        setattr(ser, name, noop)  # instance attributes shadow the class methods during open()
    try:
        ser.open()
    finally:
        for name in ("_reset_input_buffer", "reset_input_buffer"):
            try:
                delattr(ser, name)
            except AttributeError:
                pass


def check_url(device: str) -> None:
    """socket:// and rfc2217:// URLs need host:port with a port in 1..65535 (pyserial's own message for a bad
    one is an unrelated 'debug|info|warning|error')."""
    scheme, _, rest = device.partition("://")
    if scheme.lower() not in ("socket", "rfc2217"):
        return
    hostport = rest.split("?", 1)[0].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise serial.SerialException(f"port URL {device!r} needs {scheme}://HOST:PORT with PORT 1-65535")


def open_serial(device: str, baud: int = BAUD, timeout: float = 0.05, *,
                write_timeout: float | None = 1.0) -> serial.SerialBase:
    """Open a device path or pyserial URL. DTR is asserted (pico-sdk only sends once the host sets it).
    Raises ``serial.SerialException`` (or OSError) when it cannot."""
    url_given = is_url(device)
    kwargs = {"exclusive": True} if (os.name == "posix" and not url_given) else {}
    if url_given:
        check_url(device)
    try:
        url, extra = serial_open_args(device, write_timeout=write_timeout)  # rfc2217: no write timeout, ign_set_control
        ser = serial.serial_for_url(url, do_not_open=True, baudrate=baud, timeout=timeout, **extra, **kwargs)
    except (KeyError, ValueError) as e:  # pyserial's URL options parser raises these for unknown values
        raise serial.SerialException(f"port URL {device!r} is not valid ({e})") from e
    try:
        _open_keeping_first_bytes(ser)
    except KeyError as e:  # URL handlers (loop://, socket://) look options up in dicts when opening
        raise serial.SerialException(f"port URL {device!r} has an unknown option value {e}") from e
    return ser


def open_fix(message: str, fix: str | None = None) -> str:
    """The fix line for a port that would not open."""
    if "ermission" in message:
        return ("add yourself to the 'dialout' group (sudo usermod -aG dialout $USER, then log in again) or install "
                "a udev rule for the board")
    if "port URL" in message:
        return "pass a valid --port (a device path, or socket://HOST:PORT)"
    if "No such file or directory" in message or "[Errno 2]" in message:
        return "check the device name ('fwtool devices' lists the boards and their ports), or pass another --port"
    return fix or ("close other programs using the port (serial terminals, another fwtool monitor, ModemManager) "
                   "or pass another --port")


def open_port(device: str, baud: int = BAUD, timeout: float = 0.05, *, fix: str | None = None,
              write_timeout: float | None = 1.0) -> serial.SerialBase:
    """:func:`open_serial` for a command that opens its port once: a failure is one NoDevice (exit 6) naming the
    port, with ``fix`` (or the usual ones: permissions, a bad URL, another program holding the port)."""
    try:
        return open_serial(device, baud, timeout, write_timeout=write_timeout)
    except PORT_ERRORS as e:
        msg = str(e) or type(e).__name__
        raise NoDevice(f"cannot open {device}: {msg}", open_fix(msg, fix)) from e


def touch_1200(device: str) -> None:
    """Open ``device`` at 1200 baud and close it: pico-sdk apps reboot into BOOTSEL (rp2040-flashing §3.4).
    UsbAccessDenied (exit 4) when the OS refuses the port; the port vanishing while closing is expected."""
    try:
        ser = serial.serial_for_url(device, baudrate=1200)
    except serial.SerialException as e:
        if isinstance(e.__context__, PermissionError) or "Permission denied" in str(e):
            raise UsbAccessDenied(f"no permission to open {device}", serial_fix()) from e
        raise
    try:
        ser.close()
    except (OSError, serial.SerialException):
        pass  # the device vanished: expected


def short_reason(e: BaseException) -> str:
    """pyserial's disconnect messages are long and say the same thing: the port went away."""
    msg = str(e) or type(e).__name__
    if "returned no data" in msg or "Errno 5]" in msg or "Input/output error" in msg:
        return "port gone"
    if "socket disconnected" in msg or "Connection reset" in msg:
        return "connection closed"
    return msg

"""Rebooting a board without touching it: a running app into its bootloader (or a normal reboot), and BOOTSEL
back to the app. Facts: docs/notes/rp2040-flashing.md §3.4.

Reboot-to-bootloader strategies are classes (esptool's ResetStrategy), tried in the order the board file gives
(``[flash.reset] strategies = [...]``, default ``DEFAULT_STRATEGIES``):

1. ``reset_interface``: the vendor reset interface (class 0xFF/0x00/0x01, what ``picotool reboot -f -u`` uses):
   control OUT, bmRequestType 0x21, bRequest 0x01 RESET_REQUEST_BOOTSEL (0x02 RESET_REQUEST_FLASH = normal
   reboot), wIndex = the interface. The device resets mid-request, so pipe/IO/no-device errors are expected.
2. ``touch_1200``: open the CDC port at 1200 baud and close it.
3. ``manual``: nothing the host can do: the user holds BOOTSEL while plugging the board in.
Then poll (never a fixed sleep) until the board re-enumerates; it is recognised by its USB port path.

``reboot_board`` is the API (``fwtool flash`` reboots into BOOTSEL before writing, the monitor's Ctrl-R/Ctrl-B):
it lives with the devices, so the monitor reboots a board without importing the flash layer.
"""
from __future__ import annotations

import errno as errno_mod
import time

import usb.core

from fwtool.core.boards import Board, get_board
from fwtool.core.errors import DeviceLost, FlashFailed, NoDevice, NoUsbBackend, UsbAccessDenied, WaitTimeout
from fwtool.devices import boards_for
from fwtool.devices import usb as usbdevices
from fwtool.devices.device import Device
from fwtool.devices.permissions import udev_fix
from fwtool.devices.picoboot import SRAM_END, PicobootClient
from fwtool.devices.usb import scan, select

RESET_REQUEST_BOOTSEL = 0x01
RESET_REQUEST_FLASH = 0x02
RESET_BMREQUESTTYPE = 0x21  # CLASS | INTERFACE, as picotool sends it (the device only checks bRequest/wIndex)


def vendor_request(target: Device, request: int, w_value: int = 0) -> None:
    """Send the reset request; swallow the errors a vanishing device produces. Raises UsbAccessDenied."""
    be = usbdevices.backend()
    transport = be.open_reset(target.usb, target.reset_interface)
    try:
        transport.ctrl_transfer(RESET_BMREQUESTTYPE, request, w_value, target.reset_interface, None, timeout=2000)
    except usb.core.USBError as e:
        if getattr(e, "errno", None) == errno_mod.EACCES or "Access denied" in str(e):
            raise UsbAccessDenied("access denied sending the USB reset request", udev_fix()) from e
        # EPIPE / EIO / ENODEV / timeout: the device rebooted under the request, which is what we asked for
    finally:
        be.close(transport)


class ResetStrategy:
    """One way to get a running app into its bootloader. ``request`` returns how (for messages)."""

    name = ""
    how = ""
    automatic = True  # False: needs the user

    def applies(self, device: Device) -> bool:
        raise NotImplementedError

    def request(self, device: Device) -> str:
        raise NotImplementedError


class ResetInterfaceRequest(ResetStrategy):
    name = "reset_interface"
    how = "reset interface"

    def applies(self, device: Device) -> bool:
        return device.usb is not None and device.reset_interface is not None

    def request(self, device: Device) -> str:
        vendor_request(device, RESET_REQUEST_BOOTSEL)
        return self.how


class Touch1200(ResetStrategy):
    name = "touch_1200"
    how = "1200-baud touch"

    def applies(self, device: Device) -> bool:
        return bool(device.port)

    def request(self, device: Device) -> str:
        try:
            usbdevices.backend().touch_1200(device.port)
        except UsbAccessDenied:
            raise
        except Exception as e:
            if getattr(e, "errno", None) == errno_mod.ENOENT:
                raise DeviceLost(f"{device.port} went away before the 1200-baud touch", "plug the board in again")
            # the port vanishing while closing is the expected outcome; anything else: the wait decides
        return self.how


class ManualBootsel(ResetStrategy):
    name = "manual"
    how = "BOOTSEL button"
    automatic = False

    def applies(self, device: Device) -> bool:
        return True

    def request(self, device: Device) -> str:
        raise NoDevice(f"the running app ({device.describe()}) has neither a USB reset interface nor a serial port",
                       "hold BOOTSEL while plugging the board in, then run 'fwtool flash' again")


STRATEGIES: dict[str, ResetStrategy] = {s.name: s for s in (ResetInterfaceRequest(), Touch1200(), ManualBootsel())}
DEFAULT_STRATEGIES = ("reset_interface", "touch_1200", "manual")


def strategies_for(board=None) -> list[ResetStrategy]:
    """The board file's order (``[flash.reset] strategies``), else the default."""
    names = (getattr(board, "runner_settings", {}) or {}).get("reset", {}).get("strategies") or DEFAULT_STRATEGIES
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise NoDevice(f"unknown reset strategy '{unknown[0]}' in the board file",
                       f"use some of: {', '.join(STRATEGIES)} ([flash.reset] strategies)")
    return [STRATEGIES[n] for n in names]


def request_bootsel(target: Device, strategies: list[ResetStrategy] | None = None) -> str:
    """Ask a running app to reboot into its bootloader; the first strategy that applies and works wins.
    A failing automatic strategy falls through to the next automatic one that applies, else its error stands."""
    todo = [s for s in (strategies or strategies_for()) if s.applies(target)]
    for i, s in enumerate(todo):
        try:
            return s.request(target)
        except (UsbAccessDenied, NoUsbBackend, FlashFailed):
            if not any(t.automatic for t in todo[i + 1:]):
                raise  # nothing to fall back to
    raise NoDevice(f"cannot reboot {target.describe()} into its bootloader", "hold BOOTSEL while plugging it in")


def wait_for(boards, predicate, timeout: float, what: str, fix: str):
    """Poll the attached boards until ``predicate(scan)`` returns a Device; WaitTimeout after ``timeout`` s."""
    be = usbdevices.backend()
    deadline = be.monotonic() + timeout
    while True:
        found = usbdevices.scan(boards)
        hit = predicate(found)
        if hit is not None:
            return hit
        if be.monotonic() >= deadline:
            raise WaitTimeout(f"{what} within {timeout:.0f} s", fix)
        be.sleep(usbdevices.POLL_S)


def same_board(target: Device, before_keys: set):
    """A predicate for the board ``target`` once it is in BOOTSEL mode (found by USB location, else: new)."""
    def pred(found):
        cands = [t for t in found.targets if t.mode in ("bootsel", "drive")]
        if target.location:
            mine = [t for t in cands if t.location == target.location]
            if mine:
                return mine[0]
            loose = [t for t in cands if t.location is None and t.key() not in before_keys]
            return loose[0] if len(loose) == 1 else None
        new = [t for t in cands if t.key() not in before_keys]
        return new[0] if len(new) == 1 else None
    return pred


def manual_hint(board=None) -> str | None:
    """The board file's words for entering the bootloader by hand (``[flash.reset] manual``), or None."""
    return (getattr(board, "runner_settings", {}) or {}).get("reset", {}).get("manual")


def reboot_to_bootsel(target: Device, boards, timeout: float = 10.0, need=("bootsel", "drive"),
                      strategies: list[ResetStrategy] | None = None, found=None,
                      manual: str | None = None) -> tuple[Device, str]:
    """Running app -> BOOTSEL, tracked by USB location. Returns (the board in BOOTSEL mode, how it was asked).
    ``found``: the scan the caller just made (else one is made here), to tell boards already in BOOTSEL apart."""
    found = found if found is not None else usbdevices.scan(boards)
    before = {t.key() for t in found.targets if t.mode in ("bootsel", "drive")}
    how = request_bootsel(target, strategies)
    base = same_board(target, before)

    def pred(found):
        t = base(found)
        if t is None:
            return None
        if "bootsel" in need and t.mode == "bootsel" and (t.picoboot is not None or "drive" not in need):
            return t
        if "drive" in need and t.drive is not None:
            return t
        return None

    if manual:  # a board whose bootloader is entered another way by hand (the board file says how)
        new = wait_for(boards, pred, timeout, f"no board in bootloader mode after the {how} ({target.describe()})",
                       f"its firmware may not act on the {how}: {manual}")
    else:
        new = wait_for(boards, pred, timeout, f"the board did not come back in BOOTSEL mode after the {how}",
                       "its firmware may lack pico-sdk USB stdio reset support: hold BOOTSEL while plugging it in")
    new.serial = new.serial or target.serial
    return new, how


def wait_for_app(boards, location: str | None, timeout: float, before_keys: set | None = None) -> Device | None:
    """After a reboot: the app at ``location`` (None when it does not show up within ``timeout``).

    Raises if the board comes back in BOOTSEL mode instead (the image does not boot).
    """
    be = usbdevices.backend()
    deadline = be.monotonic() + timeout
    gone = False
    while True:
        found = usbdevices.scan(boards)
        apps = [t for t in found.targets if t.mode == "app" and
                ((location and t.location == location) or (not location and t.key() not in (before_keys or set())))]
        if apps:
            return apps[0]
        here = [t for t in found.targets if t.mode == "bootsel" and location and t.location == location]
        if not here:
            gone = True
        elif gone:
            raise FlashFailed(f"the flash was written and verified, but the board came back in BOOTSEL mode at "
                              f"usb {location}: the image does not start",
                              "check that it was built for this board (boot2, flash size); 'fwtool build' output")
        if be.monotonic() >= deadline:
            return None
        be.sleep(usbdevices.POLL_S)


def reboot(target: Device, bootsel: bool = False, strategies: list[ResetStrategy] | None = None) -> str:
    """Reboot a board: normal boot (default) or into BOOTSEL. Returns how. Does not wait."""
    if target.mode == "app":
        if bootsel:
            return request_bootsel(target, strategies)
        if target.usb is None or target.reset_interface is None:
            raise NoDevice(f"cannot reboot {target.describe()}: no USB reset interface visible "
                           "(pyusb backend or permission missing)", udev_fix())
        vendor_request(target, RESET_REQUEST_FLASH)
        return "reset interface"
    if target.mode == "bootsel" and target.picoboot is not None:
        if bootsel:
            return "already in BOOTSEL"
        be = usbdevices.backend()
        itf, out_ep, in_ep = target.picoboot
        transport = be.open_picoboot(target.usb, itf)
        try:
            client = PicobootClient(transport, itf, out_ep, in_ep)
            client.reset()
            client.reboot(0, SRAM_END, 100)
        finally:
            be.close(transport)
        return "PICOBOOT REBOOT"
    raise NoDevice(f"cannot reboot {target.describe()} from the host", "press reset or replug the board")


def reboot_board(serial: str | None = None, bootsel: bool = False, board=None, wait: bool = True,
                 timeout: float = 10.0) -> dict:
    """Reboot the (one, or ``serial``) board: normally, or into BOOTSEL. With ``wait``, return once it is back."""
    b = (board if isinstance(board, Board) else get_board(board)) if board else None
    boards = boards_for(b)
    strategies = strategies_for(b)
    target = select(scan(boards), serial)
    t0 = time.monotonic()
    if bootsel and target.mode == "app" and wait:
        new, how = reboot_to_bootsel(target, boards, timeout, strategies=strategies)
        return {"how": how, "mode": "bootsel", "location": new.location, "serial": target.serial,
                "seconds": round(time.monotonic() - t0, 3)}
    how = reboot(target, bootsel=bootsel, strategies=strategies)
    out = {"how": how, "mode": "bootsel" if bootsel else "app", "location": target.location,
           "serial": target.serial, "port": None}
    if wait and not bootsel:
        if target.mode == "app":  # the old instance must go away first
            wait_for(boards, lambda f: None if any(t.mode == "app" and t.location == target.location
                                                         for t in f.targets) else True,
                           3.0, "the board did not reset", "press reset or replug it")
        app = wait_for_app(boards, target.location, timeout)
        if app is None:
            raise WaitTimeout(f"the board did not come back as a USB app within {timeout:.0f} s",
                              "its firmware may not use USB stdio; check with 'fwtool devices'")
        out.update(serial=app.serial or target.serial, port=app.port)
    out["seconds"] = round(time.monotonic() - t0, 3)
    return out

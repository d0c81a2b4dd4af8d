"""Rebooting a board without touching it: a running pico-sdk app into BOOTSEL (or a normal reboot), and BOOTSEL
back to the app. Facts: shared/notes/rp2040-flashing.md §3.4.

1. Vendor reset interface (class 0xFF/0x00/0x01, what ``picotool reboot -f -u`` uses): control OUT, bmRequestType
   0x21, bRequest 0x01 RESET_REQUEST_BOOTSEL (0x02 RESET_REQUEST_FLASH = normal reboot), wIndex = the interface.
   The device resets mid-request, so pipe/IO/no-device errors are the expected outcome.
2. Fallback: open the CDC port at 1200 baud and close it.
Then poll (never a fixed sleep) until the board re-enumerates; it is recognised by its USB port path.
"""
from __future__ import annotations

import errno as errno_mod

import usb.core

from fwtool.devices import usb as usbdevices
from fwtool.flash.base import DeviceLost, FlashFailed, NoDevice, NoUsbBackend, Target, UsbAccessDenied, WaitTimeout

RESET_REQUEST_BOOTSEL = 0x01
RESET_REQUEST_FLASH = 0x02
RESET_BMREQUESTTYPE = 0x21  # CLASS | INTERFACE, as picotool sends it (the device only checks bRequest/wIndex)


def _vendor_request(target: Target, request: int, w_value: int = 0) -> None:
    """Send the reset request; swallow the errors a vanishing device produces. Raises UsbAccessDenied."""
    be = usbdevices.backend()
    transport = be.open_reset(target.usb, target.reset_interface)
    try:
        transport.ctrl_transfer(RESET_BMREQUESTTYPE, request, w_value, target.reset_interface, None, timeout=2000)
    except usb.core.USBError as e:
        if getattr(e, "errno", None) == errno_mod.EACCES or "Access denied" in str(e):
            raise UsbAccessDenied("access denied sending the USB reset request", usbdevices.udev_fix()) from e
        # EPIPE / EIO / ENODEV / timeout: the device rebooted under the request, which is what we asked for
    finally:
        be.close(transport)


def request_bootsel(target: Target) -> str:
    """Ask a running app to reboot into BOOTSEL. Returns how ("reset interface" | "1200-baud touch")."""
    if target.usb is not None and target.reset_interface is not None:
        try:
            _vendor_request(target, RESET_REQUEST_BOOTSEL)
            return "reset interface"
        except (UsbAccessDenied, NoUsbBackend, FlashFailed):
            if not target.port:
                raise  # nothing to fall back to
    if target.port:
        try:
            usbdevices.backend().touch_1200(target.port)
        except UsbAccessDenied:
            raise
        except Exception as e:
            if getattr(e, "errno", None) == errno_mod.ENOENT:
                raise DeviceLost(f"{target.port} went away before the 1200-baud touch", "plug the board in again")
            # the port vanishing while closing is the expected outcome; anything else: the wait below decides
        return "1200-baud touch"
    raise NoDevice(f"the running app ({target.describe()}) has neither a USB reset interface nor a serial port",
                   "hold BOOTSEL while plugging the board in, then run 'fwtool flash' again")


def wait_for(boards, predicate, timeout: float, what: str, fix: str):
    """Poll the attached boards until ``predicate(scan)`` returns a Target; WaitTimeout after ``timeout`` s."""
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


def same_board(target: Target, before_keys: set):
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


def reboot_to_bootsel(target: Target, boards, timeout: float = 10.0, need=("bootsel", "drive")) -> tuple[Target, str]:
    """Running app -> BOOTSEL, tracked by USB location. Returns (the board in BOOTSEL mode, how it was asked)."""
    before = {t.key() for t in usbdevices.scan(boards).targets if t.mode in ("bootsel", "drive")}
    how = request_bootsel(target)
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

    new = wait_for(boards, pred, timeout, f"the board did not come back in BOOTSEL mode after the {how}",
                   "its firmware may lack pico-sdk USB stdio reset support: hold BOOTSEL while plugging it in")
    new.serial = new.serial or target.serial
    return new, how


def wait_for_app(boards, location: str | None, timeout: float, before_keys: set | None = None) -> Target | None:
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
            from fwtool.flash.base import FlashFailed

            raise FlashFailed(f"the flash was written and verified, but the board came back in BOOTSEL mode at "
                              f"usb {location}: the image does not start",
                              "check that it was built for this board (boot2, flash size); 'fwtool build' output")
        if be.monotonic() >= deadline:
            return None
        be.sleep(usbdevices.POLL_S)


def reboot(target: Target, bootsel: bool = False) -> str:
    """Reboot a board: normal boot (default) or into BOOTSEL. Returns how. Does not wait."""
    if target.mode == "app":
        if bootsel:
            return request_bootsel(target)
        if target.usb is None or target.reset_interface is None:
            raise NoDevice(f"cannot reboot {target.describe()}: no USB reset interface visible "
                           "(pyusb backend or permission missing)", usbdevices.udev_fix())
        _vendor_request(target, RESET_REQUEST_FLASH)
        return "reset interface"
    if target.mode == "bootsel" and target.picoboot is not None:
        if bootsel:
            return "already in BOOTSEL"
        from fwtool.flash.picoboot import PicobootClient, SRAM_END

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

"""The OS backend and USB discovery: pyusb (BOOTSEL/PICOBOOT, app reset interface), pyserial's port list, mounted
drives, merged into one ``Device`` per physical board.

Everything that touches the operating system goes through one *backend* object (``SystemBackend``). Tests replace
it with a double at the protocol level (``fwtool.devices.usb._backend``, set by a pytest fixture); the product code
path above it is the same. The public entry point is ``fwtool.devices.discover``.
"""
from __future__ import annotations

import errno as errno_mod
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import usb.core
import usb.util
from serial.tools import list_ports

from fwtool.devices.device import Device
from fwtool.devices.chips import chip_of_usb
from fwtool.devices.drives import drive_chip, is_rp2_drive
from fwtool.core.errors import DeviceLost, FlashFailed, NoDevice, NoUsbBackend, UsbAccessDenied
from fwtool.devices.permissions import NO_BACKEND_MSG, no_backend_fix, udev_fix
from fwtool.devices.probes import is_probe_board, not_found_fix, scan_probes, wrong_mode_error
from fwtool.devices.serial import touch_1200

RESET_ITF = (0xFF, 0x00, 0x01)  # pico-sdk reset interface class/subclass/protocol
PICOBOOT_CLASS = 0xFF
POLL_S = 0.1  # how often waits look for a board (re)appearing
FAT_TYPES = {"vfat", "msdos", "fat", "exfat", "fuseblk"}
# Extra pyusb backends searched for USB devices (e.g. the virtual board's, fwtool.emulator.usb_backend), set with
# ``extra_backends``; while ``_system_usb`` is False the machine's own USB, serial ports and drives are left out.
_extra: list = []
_system_usb = True


@contextmanager
def extra_backends(backends: list, system: bool = False):
    """Within the block, discovery also (or, with ``system=False``, only) sees the devices of these pyusb backends."""
    global _extra, _system_usb
    saved = (_extra, _system_usb)
    _extra, _system_usb = list(backends), system
    try:
        yield
    finally:
        _extra, _system_usb = saved


def system_usb() -> bool:
    """False inside ``extra_backends(..., system=False)``: only those (virtual) devices are seen."""
    return _system_usb


class SystemBackend:
    """The real machine: pyusb + libusb, pyserial, the mount table."""

    def usb_devices(self) -> list:
        found = []
        if _system_usb:
            try:
                found = list(usb.core.find(find_all=True))
            except usb.core.NoBackendError as e:
                if not _extra:
                    raise NoUsbBackend(NO_BACKEND_MSG, no_backend_fix()) from e
        for be in _extra:
            found += list(usb.core.find(find_all=True, backend=be))
        return found

    def serial_ports(self) -> list:
        return list(list_ports.comports()) if _system_usb else []

    def mounts(self) -> list[tuple[str, str, str]]:
        """(device, mount point, fs type) of mounted volumes that could be a BOOTSEL drive."""
        if not _system_usb:
            return []
        if sys.platform.startswith("linux"):
            out = []
            try:
                text = Path("/proc/mounts").read_text()
            except OSError:
                return []
            for line in text.splitlines():
                parts = line.split()
                if len(parts) >= 3:
                    out.append((unescape_mount(parts[0]), unescape_mount(parts[1]), parts[2]))
            return out
        if sys.platform == "darwin":
            vols = Path("/Volumes")
            return [("", str(p), "") for p in sorted(vols.iterdir())] if vols.is_dir() else []
        if sys.platform == "win32":
            return [("", f"{c}:\\", "") for c in "DEFGHIJKLMNOPQRSTUVWXYZ" if os.path.exists(f"{c}:\\")]
        return []

    def block_location(self, device: str) -> str | None:
        """USB port path of the disk behind a block device node (Linux sysfs), e.g. /dev/sdb1 -> "1-1.3"."""
        if not device.startswith("/dev/") or not sys.platform.startswith("linux"):
            return None
        try:
            real = os.path.realpath(f"/sys/class/block/{Path(device).name}")
        except OSError:
            return None
        found = [p for p in real.split("/") if re.fullmatch(r"\d+-\d+(\.\d+)*", p)]
        return found[-1] if found else None

    def open_picoboot(self, dev, interface: int):
        """Claim the PICOBOOT interface; the pyusb Device then *is* the transport (ctrl_transfer/write/read)."""
        return self._claim(dev, interface)

    def open_reset(self, dev, interface: int):
        return self._claim(dev, interface)

    def _claim(self, dev, interface: int):
        try:
            try:
                dev.get_active_configuration()
            except usb.core.USBError as e:
                if getattr(e, "errno", None) is not None:  # a real failure, not "Configuration not set"
                    raise
                dev.set_configuration()
            if sys.platform.startswith("linux"):
                try:
                    if dev.is_kernel_driver_active(interface):
                        dev.detach_kernel_driver(interface)
                except (NotImplementedError, usb.core.USBError):
                    pass
            usb.util.claim_interface(dev, interface)
        except usb.core.USBError as e:
            if getattr(e, "errno", None) == errno_mod.EACCES or "Access denied" in str(e):
                raise UsbAccessDenied(f"access denied opening USB device {dev.idVendor:04x}:{dev.idProduct:04x}",
                                      udev_fix()) from e
            if getattr(e, "errno", None) == errno_mod.EBUSY:
                raise UsbAccessDenied(f"USB device {dev.idVendor:04x}:{dev.idProduct:04x} is busy (another "
                                      "program, e.g. picotool, has claimed it)", "close that program") from e
            if getattr(e, "errno", None) == errno_mod.ENODEV:
                raise DeviceLost(f"USB device {dev.idVendor:04x}:{dev.idProduct:04x} went away while opening it",
                                 "plug the board in again and retry") from e
            raise FlashFailed(f"cannot open USB device {dev.idVendor:04x}:{dev.idProduct:04x}: {e}",
                              "replug the board (another port or cable) and retry") from e
        return dev

    def close(self, transport) -> None:
        try:
            usb.util.dispose_resources(transport)
        except Exception:  # the device may have rebooted away already
            pass

    def touch_1200(self, port: str) -> None:
        """Open the CDC port at 1200 baud and close it: pico-sdk apps reboot into BOOTSEL (rp2040-flashing §3.4)."""
        touch_1200(port)  # the serial layer opens every port

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def monotonic(self) -> float:
        return time.monotonic()


_backend = None  # set by tests (pytest fixture) to a protocol-level double


def backend():
    global _backend
    if _backend is None:
        _backend = SystemBackend()
    return _backend


def unescape_mount(s: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), s)


# ---- discovery -------------------------------------------------------------------------------------------------

@dataclass
class Scan:
    """What discovery found: one Device per board, and why the list may be incomplete."""

    targets: list[Device] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # e.g. "no libusb backend": why the list may be incomplete
    usb_ok: bool = True
    probes_only: bool = False  # every board looked for is a probe board (PSoC 6 kits): how messages name them
    noun: str = "RP2040 board"  # how messages name the boards looked for


def usb_location(dev) -> str | None:
    ports = getattr(dev, "port_numbers", None)
    if not ports:
        return None
    return f"{dev.bus}-{'.'.join(str(p) for p in ports)}"


def _interfaces(dev) -> list[tuple[int, int, int, int, list[int]]]:
    out = []
    try:
        cfg = next(iter(dev))
        for intf in cfg:
            if intf.bAlternateSetting:
                continue
            out.append((intf.bInterfaceNumber, intf.bInterfaceClass, intf.bInterfaceSubClass,
                        intf.bInterfaceProtocol, [ep.bEndpointAddress for ep in intf]))
    except Exception:  # unreadable descriptors: treat as "not ours"
        return []
    return out


def _picoboot_interface(ifaces) -> tuple | None:
    # picotool: the vendor interface with 2 endpoints (interface 1, or 0 when mass storage is disabled)
    for num, cls, _sub, _proto, eps in ifaces:
        if cls == PICOBOOT_CLASS and len(eps) == 2:
            outs = [e for e in eps if not e & 0x80]
            ins = [e for e in eps if e & 0x80]
            if outs and ins:
                return num, outs[0], ins[0]
    return None


def _read_serial(dev) -> tuple[str | None, bool | None]:
    """(serial string, access). Reading a string descriptor needs the device opened: a permission probe."""
    try:
        return dev.serial_number, True
    except ValueError:  # pyusb: "The device has no langid (permission issue, ...)"
        return None, False
    except Exception as e:
        if getattr(e, "errno", None) == errno_mod.EACCES or "Access denied" in str(e):
            return None, False
        return None, None


def scan(boards) -> Scan:
    """Every board attached (RP2040 in whatever mode, PSoC 6 kits by their KitProg3), one Device per board."""
    be = backend()
    bootsel_ids = {b.usb_bootsel for b in boards if b.usb_bootsel}
    app_ids = {b.usb_app for b in boards if b.usb_app}
    serial_boot_ids = serial_bootloader_ids(boards)  # bootloaders that are a CDC port (Arduino SAM-BA)
    result = Scan(probes_only=bool(boards) and all(is_probe_board(b) for b in boards), noun=_noun(boards))

    def names(vid, pid) -> tuple:
        return tuple(b.name for b in boards if (vid, pid) in (b.usb_bootsel, b.usb_app))

    try:
        devices = be.usb_devices()
    except NoUsbBackend as e:
        devices = []
        result.usb_ok = False
        result.problems.append(f"{e.cause} (fix: {e.fix})")
    for dev in devices:
        vid, pid = dev.idVendor, dev.idProduct
        is_bootsel = (vid, pid) in bootsel_ids
        if not is_bootsel and (vid, pid) not in app_ids and vid not in {v for v, _ in app_ids}:
            continue
        ifaces = _interfaces(dev)
        loc = usb_location(dev)
        if is_bootsel and (vid, pid) in serial_boot_ids:  # its port is attached below
            result.targets.append(Device("bootsel", location=loc, vid=vid, pid=pid, usb=dev,
                                         product=serial_boot_ids[(vid, pid)], boards=names(vid, pid)))
            continue
        if is_bootsel:
            pb = _picoboot_interface(ifaces)
            if pb is None:
                result.problems.append(f"{vid:04X}:{pid:04X} at {loc} has no PICOBOOT interface (disabled?)")
            _serial, access = _read_serial(dev)
            result.targets.append(Device("bootsel", location=loc, vid=vid, pid=pid, usb=dev, picoboot=pb,
                                         access=access, product=f"{chip_of_usb(vid, pid) or 'RP2'} bootrom",
                                         boards=names(vid, pid)))
            continue
        reset = [num for num, cls, sub, proto, _ in ifaces if (cls, sub, proto) == RESET_ITF]
        if (vid, pid) in app_ids or reset:
            serial, access = _read_serial(dev)
            result.targets.append(Device("app", location=loc, serial=serial, vid=vid, pid=pid, usb=dev,
                                         reset_interface=reset[0] if reset else None, access=access,
                                         product="pico-sdk app", boards=names(vid, pid)))
    try:
        ports = be.serial_ports()
    except Exception as e:  # pyserial itself failing is not fatal for a listing
        ports = []
        result.problems.append(f"could not list serial ports: {e}")
    scan_probes(devices, ports, boards, result.targets, _read_serial, usb_location)
    for p in ports:
        if (p.vid, p.pid) in serial_boot_ids:
            _add_bootloader_port(result, p, serial_boot_ids[(p.vid, p.pid)], names(p.vid, p.pid))
            continue
        if (p.vid, p.pid) not in app_ids:
            continue
        loc = (p.location or "").split(":")[0] or None
        match = [t for t in result.targets if t.mode == "app" and (
            (loc and t.location == loc) or (p.serial_number and t.serial == p.serial_number))]
        if match:
            t = match[0]
            t.add_port(p.device)
            t.serial = t.serial or p.serial_number
        else:
            result.targets.append(Device("app", location=loc, serial=p.serial_number, vid=p.vid, pid=p.pid,
                                         port=p.device, ports=[p.device], product="pico-sdk app",
                                         boards=names(p.vid, p.pid)))
    loose = []
    for dev_node, mnt, fstype in be.mounts():
        if fstype and fstype not in FAT_TYPES:
            continue
        path = Path(mnt)
        if not is_rp2_drive(path):
            continue
        loc = be.block_location(dev_node)
        match = [t for t in result.targets if t.mode == "bootsel" and loc and t.location == loc]
        if match:
            match[0].drive = path
        else:
            loose.append(Device("drive", location=loc, drive=path, product=f"{drive_chip(path)} BOOTSEL drive"))
    unmatched = [t for t in result.targets if t.mode == "bootsel" and t.drive is None]
    if len(loose) == 1 and len(unmatched) == 1 and loose[0].location is None:
        unmatched[0].drive = loose[0].drive  # one of each and no way to tell: the same board
        loose = []
    result.targets.extend(loose)
    return result


def serial_bootloader_ids(boards) -> dict[tuple[int, int], str]:
    """{bootloader USB id: product label} of boards whose bootloader is a serial port (``[usb] bootloader =
    "samba"``: Arduino's SAM-BA extended on the Nano 33 BLE boards)."""
    return {b.usb_bootsel: "SAM-BA bootloader" for b in boards
            if b.usb_bootsel and b.usb.bootloader == "samba"}


def _add_bootloader_port(result: Scan, p, product: str, boards: tuple) -> None:
    """A serial bootloader's CDC port: joined to its USB device (same location), else a Device of its own."""
    loc = (p.location or "").split(":")[0] or None
    match = [t for t in result.targets if t.mode == "bootsel" and loc and t.location == loc]
    if match:
        match[0].add_port(p.device)
        return
    result.targets.append(Device("bootsel", location=loc, vid=p.vid, pid=p.pid, port=p.device, ports=[p.device],
                                 product=product, boards=boards))


def _noun(boards) -> str:
    """How messages name the boards looked for."""
    fams = {b.family for b in boards}
    if fams == {"nrf52"}:
        return "Arduino Nano 33 BLE board"
    return "RP2040 board"


def select(found: Scan, wanted: str | None = None,
           modes: tuple[str, ...] = ("bootsel", "app", "drive", "probe")) -> Device:
    """The one board to use; several without --serial, or none, is an error that lists what is there."""
    cands = [t for t in found.targets if t.mode in modes]
    kits = found.probes_only or (bool(cands) and all(t.mode == "probe" for t in cands))
    noun = "PSoC 6 kit" if kits else found.noun
    if wanted:
        chosen = [t for t in cands if t.matches(wanted)]
        if not chosen:
            raise NoDevice(f"no {noun} matches --serial {wanted}" + _listing(cands),
                           "run 'fwtool devices' to see serials and USB locations")
        cands = chosen
    if not cands:
        wrong = [t for t in found.targets if t.mode == "wrong-mode"]
        if wrong:
            raise wrong_mode_error(wrong)
        hint = "; ".join(found.problems)
        if found.probes_only:
            raise NoDevice("no PSoC 6 kit found (no KitProg3 probe on USB)" + (f" ({hint})" if hint else ""),
                           not_found_fix())
        if noun != "RP2040 board":
            raise NoDevice(f"no {noun} found on USB" + (f" ({hint})" if hint else ""),
                           "plug the board in; if it runs no fwtool or Arduino app, double-tap its reset button to "
                           "enter the bootloader (the LED pulses)")
        raise NoDevice("no RP2040 board found" + (f" ({hint})" if hint else ""),
                       "plug the board in; if it runs no fwtool/pico-sdk USB app, hold BOOTSEL while plugging it in")
    if len(cands) > 1:
        raise NoDevice(f"{len(cands)} {noun}s are attached" + _listing(cands),
                       "choose one with --serial SERIAL|USB-LOCATION (see 'fwtool devices')")
    return cands[0]


def _listing(targets: list[Device]) -> str:
    return "" if not targets else ": " + " | ".join(t.describe() for t in targets)



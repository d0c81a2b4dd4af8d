"""Debug probes on USB: a PSoC 6 kit's KitProg3 (or a MiniProg4), found as one ``Device`` per kit.

A KitProg3 is one composite USB device: a CMSIS-DAP interface (what pyOCD/OpenOCD drive; its USB serial number is
the probe UID they select with ``-u`` / ``adapter serial``) and a CDC-ACM USB-UART bridge with the same VID:PID and
serial number (the kit's debug UART). Discovery merges both into one Device in mode ``"probe"``
(docs/notes/psoc6-flashing.md §3.3). The ids come from the board files (``[usb] probe`` and
``[usb] wrong_mode``), never from this module; the names below only label what was found.
"""
from __future__ import annotations

from typing import Callable, Iterable

from fwtool.core.errors import NoDevice
from fwtool.devices.device import Device

CYPRESS_VID = 0x04B4

# (vid, pid) -> what it is (labels only; which ids a board accepts is board data)
NAMES: dict[tuple[int, int], str] = {
    (CYPRESS_VID, 0xF155): "KitProg3 CMSIS-DAP bulk",
    (CYPRESS_VID, 0xF154): "KitProg3 CMSIS-DAP HID",
    (CYPRESS_VID, 0xF166): "KitProg3 CMSIS-DAP bulk + 2 UARTs",
    (CYPRESS_VID, 0xF151): "MiniProg4 CMSIS-DAP bulk",
    (CYPRESS_VID, 0xF152): "MiniProg4 CMSIS-DAP HID",
    (CYPRESS_VID, 0xF139): "KitProg2 in KitProg mode",
    (CYPRESS_VID, 0xF146): "KitProg2 bootloader",
}

SWITCH_FIX = ("put the kit's programmer in KitProg3 CMSIS-DAP mode: fw-loader --mode kp3-bulk (Infineon "
              "Firmware-loader; KitProg2 firmware first needs fw-loader --update-kp3), or press the kit's KitProg3 "
              "MODE button until it enumerates as KitProg3 CMSIS-DAP; 'fwtool devices' shows the mode")


class ProbeWrongMode(NoDevice):
    """A kit's programmer is attached, in a mode no runner can flash through (exit 6, like no device)."""


def parse_id(text: str) -> tuple[int, int]:
    vid, pid = str(text).split(":")
    return int(vid, 16), int(pid, 16)


def board_ids(board, key: str = "probe") -> tuple[tuple[int, int], ...]:
    """A board file's ``[usb] <key>`` list ("probe" or "wrong_mode") as (vid, pid) pairs."""
    return tuple(parse_id(i) for i in {"probe": board.usb.probe, "wrong_mode": board.usb.wrong_mode}[key])


def probe_ids(boards: Iterable) -> set[tuple[int, int]]:
    return {i for b in boards for i in board_ids(b, "probe")}


def wrong_mode_ids(boards: Iterable) -> set[tuple[int, int]]:
    return {i for b in boards for i in board_ids(b, "wrong_mode")}


def is_probe_board(board) -> bool:
    return bool(board_ids(board, "probe"))


def name_of(vid: int, pid: int) -> str:
    return NAMES.get((vid, pid), f"debug probe {vid:04X}:{pid:04X}")


def scan_probes(usb_devs: list, ports: list, boards: list, targets: list[Device],
                read_serial: Callable, location: Callable) -> None:
    """Add one Device per probe (mode "probe") or wrong-mode programmer (mode "wrong-mode") to ``targets``; each
    probe gets the CDC ports with its VID:PID and serial number."""
    usable, wrong = probe_ids(boards), wrong_mode_ids(boards)
    if not usable and not wrong:
        return

    def names(vid, pid) -> tuple:
        return tuple(b.name for b in boards if (vid, pid) in board_ids(b) + board_ids(b, "wrong_mode"))

    found: list[Device] = []
    for dev in usb_devs:
        vid, pid = dev.idVendor, dev.idProduct
        if (vid, pid) not in usable and (vid, pid) not in wrong:
            continue
        serial, access = read_serial(dev)
        mode = "probe" if (vid, pid) in usable else "wrong-mode"
        found.append(Device(mode, location=location(dev), serial=serial, vid=vid, pid=pid, usb=dev,
                            access=access, product=name_of(vid, pid), boards=names(vid, pid),
                            probe=name_of(vid, pid) if mode == "probe" else None))
    for p in sorted(ports, key=lambda p: (str(p.device))):
        if (p.vid, p.pid) not in usable:
            continue
        loc = (getattr(p, "location", None) or "").split(":")[0] or None
        match = [d for d in found if d.mode == "probe" and (
            (p.serial_number and d.serial == p.serial_number) or (loc and d.location == loc and not d.serial))]
        if match:
            match[0].add_port(p.device)
            match[0].serial = match[0].serial or p.serial_number
        else:  # no libusb (or no access): the port alone still names the kit and its probe UID
            found.append(Device("probe", location=loc, serial=p.serial_number, vid=p.vid, pid=p.pid,
                                port=p.device, ports=[p.device], product=name_of(p.vid, p.pid),
                                boards=names(p.vid, p.pid), probe=name_of(p.vid, p.pid)))
    targets.extend(found)


def wrong_mode_error(devs: list[Device]) -> ProbeWrongMode:
    listing = " | ".join(f"{d.product} ({d.usb_id}{', usb ' + d.location if d.location else ''})" for d in devs)
    return ProbeWrongMode(f"the kit's programmer is in a mode fwtool cannot flash through: {listing}", SWITCH_FIX)


def not_found_fix() -> str:
    return ("connect the kit's KitProg3 USB connector (not the target-USB one) with a data cable; on Linux allow "
            "access with the udev rule (fwtool devices --udev-rule); 'fwtool devices' lists what is attached")

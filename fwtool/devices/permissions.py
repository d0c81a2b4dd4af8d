"""USB permissions: the udev rule, the fixes named in errors, and the USB rows of 'fwtool doctor'."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from usb.backend import libusb0, libusb1, openusb

from fwtool.core.boards import all_boards
from fwtool.devices.probes import probe_ids

NO_BACKEND_MSG = "pyusb found no libusb backend, so PICOBOOT and the reset interface are unavailable"
NO_BACKEND_FIX = {"linux": "sudo apt-get install libusb-1.0-0 (Fedora: sudo dnf install libusb1)",
                  "darwin": "brew install libusb",
                  "win32": "pip install libusb-package, or put libusb-1.0.dll on PATH (and bind WinUSB with Zadig)"}


def no_backend_fix() -> str:
    return NO_BACKEND_FIX.get(sys.platform, NO_BACKEND_FIX["linux"])


RULE_FILE = "/etc/udev/rules.d/60-fwtool.rules"


def udev_rule(boards=None) -> str:
    if boards is None:
        boards = all_boards().values()
    boards = list(boards)
    ids = sorted({i for b in boards for i in (b.usb_bootsel, b.usb_app) if i} | probe_ids(boards))
    lines = ["# fwtool: let members of plugdev (and the logged-in desk user) use RP2040 boards over USB:",
             "# BOOTSEL (PICOBOOT) and pico-sdk apps with USB stdio (reset interface), and the KitProg3/MiniProg4",
             "# CMSIS-DAP probes of PSoC 6 kits (pyOCD, OpenOCD). Install with:",
             f"#   fwtool devices --udev-rule | sudo tee {RULE_FILE}",
             "#   sudo udevadm control --reload-rules && sudo udevadm trigger   (then replug the board)"]
    for vid, pid in ids:
        lines.append(f'SUBSYSTEM=="usb", ATTRS{{idVendor}}=="{vid:04x}", ATTRS{{idProduct}}=="{pid:04x}", '
                     'MODE="660", GROUP="plugdev", TAG+="uaccess"')
    for vid, pid in sorted(probe_ids(boards)):  # CMSIS-DAP v1 (HID) probes are opened through hidraw by pyOCD
        lines.append(f'KERNEL=="hidraw*", ATTRS{{idVendor}}=="{vid:04x}", ATTRS{{idProduct}}=="{pid:04x}", '
                     'MODE="660", GROUP="plugdev", TAG+="uaccess"')
    return "\n".join(lines) + "\n"


def udev_fix() -> str:
    if not sys.platform.startswith("linux"):
        return ("on Windows bind WinUSB to the 'RP2 Boot' interface 1 with Zadig; on macOS no setup is needed "
                "(close other programs using the board); 'fwtool doctor' shows the USB checks")
    return (f"install the udev rule for 2e8a:0003/000a: fwtool devices --udev-rule | sudo tee {RULE_FILE} && "
            "sudo udevadm control --reload-rules && sudo udevadm trigger, then replug the board "
            "(or join plugdev: sudo usermod -aG plugdev $USER, log in again); 'fwtool doctor' shows the USB checks")


def probe_udev_fix() -> str:
    """The fix when the OS refuses a KitProg3 (pyOCD then sees no probe at all)."""
    if not sys.platform.startswith("linux"):
        return "close other programs using the probe (ModusToolbox, another pyOCD/OpenOCD); 'fwtool doctor'"
    return (f"install the udev rule for the KitProg3 (04b4:f155/f154/f166): fwtool devices --udev-rule | sudo tee "
            f"{RULE_FILE} && sudo udevadm control --reload-rules && sudo udevadm trigger, then replug the kit")


def probe_rule_files() -> list[Path]:
    """udev rule files that grant access to a KitProg3 in its default mode (04b4:f155)."""
    return [f for f, text in _rule_texts() if "04b4" in text and "f155" in text]


def _rule_texts() -> list[tuple[Path, str]]:
    out = []
    for d in ("/etc/udev/rules.d", "/lib/udev/rules.d", "/usr/lib/udev/rules.d"):
        p = Path(d)
        if p.is_dir():
            for f in sorted(p.glob("*.rules")):
                try:
                    out.append((f, f.read_text(errors="replace").lower()))
                except OSError:
                    continue
    return out


def probe_doctor_rows() -> list[dict]:
    """The PSoC 6 probe-access row for 'fwtool doctor' (Linux only: elsewhere no rule is needed)."""
    if not sys.platform.startswith("linux"):
        return []
    root = hasattr(os, "geteuid") and os.geteuid() == 0
    rules = probe_rule_files()
    detail = (f"{rules[0]}" if rules else "running as root" if root else
              f"no udev rule for the KitProg3 (04b4:f155): fwtool devices --udev-rule | sudo tee {RULE_FILE}")
    return [{"name": "psoc6: udev rule for KitProg3", "ok": bool(rules) or root, "detail": detail}]


def serial_fix() -> str:
    return ("join the serial-port group: sudo usermod -aG dialout $USER (Arch: uucp), then log in again; "
            "'fwtool doctor' shows the USB checks")


def rule_files() -> list[Path]:
    """udev rule files that grant access to the RP2040 in BOOTSEL mode (2e8a:0003)."""
    return [f for f, text in _rule_texts() if "2e8a" in text and "0003" in text]


def _in_group(name: str) -> bool | None:
    try:
        import grp  # POSIX only

        gid = grp.getgrnam(name).gr_gid
    except (ImportError, KeyError):
        return None
    return gid in os.getgroups() or os.getgid() == gid


def doctor_rows() -> list[dict]:
    """USB rows for 'fwtool doctor' (informational: flashing needs them, building does not)."""
    rows = []
    try:
        have = any(m.get_backend() is not None for m in (libusb1, libusb0, openusb))
    except Exception:
        have = False
    rows.append({"name": "usb: libusb for pyusb", "ok": have,
                 "detail": "found (PICOBOOT flashing available)" if have else
                 f"missing, flashing falls back to the BOOTSEL drive: {no_backend_fix()}"})
    if sys.platform.startswith("linux"):
        root = hasattr(os, "geteuid") and os.geteuid() == 0
        rules = rule_files()
        ok = root or bool(rules)
        detail = ("running as root" if root and not rules else
                  f"{rules[0]}" if rules else
                  f"no udev rule for 2e8a:0003: fwtool devices --udev-rule | sudo tee {RULE_FILE}")
        rows.append({"name": "usb: udev rule for RP2040", "ok": ok, "detail": detail})
        dial = _in_group("dialout")
        if dial is not None:
            rows.append({"name": "usb: serial port group", "ok": root or dial,
                         "detail": "root" if root else "member of dialout" if dial else serial_fix()})
    return rows

"""What the debug-probe runners (pyOCD, OpenOCD, ``make program``) share: finding their tool, the probe Device
check, the image as the segments to write (an Intel HEX file), and the errors every probe runner maps to.

A PSoC 6 kit is flashed through its KitProg3 (a CMSIS-DAP probe, fwtool/devices/probes.py): no bootloader mode,
the running firmware is halted, programmed and reset by the debugger. The runners always pass the probe's UID
(the Device's USB serial number), so a tool never has to choose (or ask which) probe itself.
"""
from __future__ import annotations

import re
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

from fwtool.core import runner as proc
from fwtool.core.errors import FwtoolError, NoDevice, UsbAccessDenied
from fwtool.core.files import atomic_write
from fwtool.devices.device import Device
from fwtool.devices.permissions import probe_udev_fix
from fwtool.devices.probes import not_found_fix, wrong_mode_error
from fwtool.image import ihex
from fwtool.image.firmware import Image, read
from fwtool.flash.request import ProbeDetails, Written

def tool_dirs() -> list[Path]:
    """Where a Python-installed tool lives besides PATH: the interpreter's own bin/Scripts folder (a venv whose
    bin is not on PATH, e.g. fwtool started by its full path)."""
    return [Path(sys.executable).parent]


def find_tool(name: str) -> str | None:
    found = proc.which(name)
    if found:
        return found
    for d in tool_dirs():
        for cand in (d / name, d / f"{name}.exe"):
            if cand.is_file():
                return str(cand)
    return None


def probe_usable(device: Device) -> tuple[bool, str]:
    """(usable, why not) for any probe runner: a KitProg3 Device with a readable UID."""
    if device.mode == "wrong-mode":
        return False, f"{device.product} ({device.usb_id}) is in a mode no runner can use"
    if device.mode != "probe":
        return False, "not a debug probe (a PSoC 6 kit is flashed through its KitProg3)"
    if device.access is False:
        return False, "no permission to open the KitProg3 (udev rule)"
    if not device.serial:
        return False, "the probe's serial number (its UID) could not be read"
    return True, ""


def probe_refusal(label: str, device: Device, why: str) -> FwtoolError:
    if device.mode == "wrong-mode":
        return wrong_mode_error([device])
    if device.access is False:
        return UsbAccessDenied(f"no permission to open the {device.product or 'probe'} ({device.describe()})",
                               probe_udev_fix())
    return NoDevice(f"{label} cannot flash {device.describe()}: {why}", not_found_fix())


def file_segments(image: Image) -> list[tuple[int, bytes]] | None:
    """The image file's own segments when the file still holds exactly ``image`` (a HEX/ELF keeps its gaps
    unwritten), else None."""
    src = Path(image.source)
    if image.kind not in ("hex", "elf") or not src.is_file():
        return None
    try:
        fw = read(src, image.kind)
    except FwtoolError:
        return None
    if fw.placed and fw.flat() == (image.base, bytes(image.data)):
        return [(a, bytes(d)) for a, d in fw.segments]
    return None


def segments_of(image: Image) -> list[tuple[int, bytes]]:
    """The pieces to write: the file's segments (see ``file_segments``), else the flat image as one segment."""
    return file_segments(image) or [(image.base, bytes(image.data))]


@contextmanager
def hex_file(image: Image):
    """(Intel HEX path holding exactly ``image``, its segments): the source file itself when it is that HEX (so the
    logged command line can be pasted), else a temporary file written from the segments."""
    segs = file_segments(image)
    if image.kind == "hex" and segs is not None:
        yield Path(image.source).resolve(), segs
        return
    segs = segs or [(image.base, bytes(image.data))]
    with tempfile.TemporaryDirectory(prefix="fwtool-flash-") as tmp:
        path = Path(tmp) / "image.hex"
        atomic_write(path, ihex.write(segs))
        yield path, segs


def last_error_line(text: str) -> str:
    """The most telling line of a tool's output: its last error, else its last non-empty line."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errs = [ln for ln in lines if re.search(r"(^|\s)(E|C)\s|error|failed|fail", ln, re.I)]
    line = (errs or lines or [""])[-1]
    return re.sub(r"^\d{7} [A-Z] ", "", line)


def counters(image: Image, segs, verified: bool, rebooted: bool, seconds: float, probe: str | None,
             **extra) -> Written:
    """What a probe runner returns (fwtool/flash/__init__.py adds method, board, timing): the common core and the
    probe, the segments and ``extra`` (the runner's own facts) as its details."""
    written = sum(len(d) for _, d in segs)
    return Written(bytes_total=len(image.data), bytes_written=written, bytes_skipped=0, sectors_written=None,
                   sectors_skipped=None, verified=verified, rebooted=rebooted, write_seconds=round(seconds, 3),
                   details=ProbeDetails(probe=probe, segments=[f"0x{a:08X}+{len(d)}" for a, d in segs],
                                        extra=extra))

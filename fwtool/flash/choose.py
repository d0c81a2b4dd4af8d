"""Which runner writes the image: the board file's runners in order (``--method auto``), or the one asked for.

In ``auto`` the first runner that is usable on the device wins; when the preferred one is not, the next usable one
is taken and a note says why (e.g. "PICOBOOT unavailable (...): used the BOOTSEL drive, which cannot verify").
"""
from __future__ import annotations

from fwtool.core.errors import NoDevice, UsbAccessDenied
from fwtool.devices.device import Device
from fwtool.flash.base import Runner

NO_RUNNER_FIX = "hold BOOTSEL while plugging the board in; if it mounts as RPI-RP2, pass --drive PATH"


def cannot_verify(runner: Runner) -> str:
    return "" if runner.verifies else ", which cannot verify"


def ready_modes(runners: list[Runner]) -> tuple:
    """The device modes a reboot into the bootloader should wait for (any of them will do)."""
    out: list[str] = []
    for r in runners:
        out.extend(m for m in r.ready_modes if m not in out)
    return tuple(out)


def choose(runners: list[Runner], device: Device, found, boards, just_rebooted: bool, timeout: float,
           notes: list, step) -> Runner:
    """The runner to use on ``device`` (which may gain its drive on the way). Raises the first runner's error."""
    first = runners[0]
    ok, why = first.usable(device)
    if ok:
        return first
    if len(runners) == 1:  # asked for explicitly
        if first.can_wait:
            device.drive = first.wait_until_usable(device, boards, just_rebooted, timeout).drive
            return first
        raise first.refuse(device, found, why)
    for r in runners[1:]:
        if r.usable(device)[0]:
            notes.append(f"{first.label} unavailable ({why}): used {r.label}{cannot_verify(r)}")
            step(f"method    {first.label} unavailable ({why}); using {r.label}")
            return r
    if device.mode == "bootsel" and device.access is False:  # the OS refused the bootloader interface
        for r in runners[1:]:
            if r.can_wait:
                refusal = first.refuse(device, found, why)
                err = UsbAccessDenied(f"{refusal.cause} and {r.missing}", refusal.fix)
                device.drive = r.wait_until_usable(device, boards, just_rebooted, timeout, err).drive
                notes.append(f"{first.label} was not permitted: used {r.label}{cannot_verify(r)}")
                return r
    if not first.needs_bootloader:  # a debug-probe runner (PSoC 6): its own error (tool missing, probe mode, ...)
        raise first.refuse(device, found, why)
    raise NoDevice(f"cannot flash {device.describe()}: {why}", NO_RUNNER_FIX)


def fallback_after_denied(runners: list[Runner], chosen: Runner) -> Runner | None:
    """In auto: the runner to try when ``chosen`` was refused by the OS mid-way (one that can wait for its
    device), or None."""
    later = runners[runners.index(chosen) + 1:] if chosen in runners else []
    return next((r for r in later if r.can_wait), None)

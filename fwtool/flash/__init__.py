"""Putting firmware on a board: the runner the board file chooses, and the Python API other commands use.

API (used by ``fwtool flash``, ``fwtool run``, ``fwtool monitor``, ``fwtool validate``):

* ``flash_image(image_path, board, serial=None, method="auto", verify=True, progress=None, **options) -> dict``
  finds the board, reboots a running app into its bootloader, writes with the board's runners in order
  (``[flash] runners`` in boards/<board>.toml: PICOBOOT, verified by read-back, then the BOOTSEL drive), restarts
  the board and returns the result (method, serial, bytes_written/skipped, verified, seconds, ...).
* ``reboot_board(serial=None, bootsel=False, board=None, wait=True, timeout=10.0) -> dict`` reboots a board,
  normally (e.g. to see the boot banner again) or into BOOTSEL, with the board's reset strategies.
* ``list_devices(board=None) -> dict``: what is attached, in which mode (``fwtool.devices.discover``).
* ``runners.RUNNERS`` / ``runners.method_choices()``: the registry (fwtool/flash/runners/).

Every expected failure is a FwtoolError with a cause and a fix (exit codes in fwtool/core/errors.py).
"""
from __future__ import annotations

import time
from pathlib import Path

from fwtool import devices
from fwtool.core.boards import Board, all_boards, get_board
from fwtool.core.errors import BadInput
from fwtool.devices import last_flash
from fwtool.devices import usb as usbdevices
from fwtool.devices.device import Device
from fwtool.devices.drives import require_rp2_drive
from fwtool.devices.errors import (DeviceLost, FlashFailed, NoUsbBackend, UsbAccessDenied, WaitTimeout)
from fwtool.devices.permissions import NO_BACKEND_MSG, no_backend_fix
from fwtool.flash import choose, reset, runners
from fwtool.flash import image as image_mod
from fwtool.flash.base import Image, Progress, Runner, no_progress
from fwtool.image import uf2
from fwtool.image.firmware import FirmwareImage
from fwtool.image.uf2 import family_name

__all__ = ["flash_image", "reboot_board", "list_devices", "load_image", "resolve_board", "runners", "Runner",
           "Image", "Device", "FlashFailed", "DeviceLost", "WaitTimeout", "UsbAccessDenied", "NoUsbBackend"]


def resolve_board(board: Board | str | None, image_path: Path | FirmwareImage | None = None) -> Board:
    if isinstance(board, Board):
        return board
    if board:
        return get_board(board)
    fams: set = set()
    if isinstance(image_path, FirmwareImage):  # already read: its UF2 family ids (none for ELF/HEX/BIN)
        fams, image_path = set(image_path.uf2_families), image_path.source
    elif image_path is not None and Path(image_path).suffix.lower() == ".uf2":
        try:
            fams = uf2.family_of(Path(image_path))
        except (OSError, uf2.UF2Error):
            fams = set()
    if fams:
        cands = sorted((b for b in all_boards().values() if b.uf2_family_id in fams), key=lambda b: b.flash_bytes)
        if cands:
            return cands[0]  # the smallest flash of the family: the conservative range check
        raise BadInput(f"{image_path} is for UF2 family {', '.join(family_name(f) for f in sorted(fams))}, "
                       "which no fwtool board uses", "flash it with that chip's own tool, or pass --board")
    raise BadInput("cannot tell which board this image is for: pass --board", "see 'fwtool boards'")


def load_image(path: Path, board: Board, kind: str | None = None, boot2_check: bool = True) -> Image:
    return image_mod.for_board(image_mod.read_file(Path(path), kind), board, boot2_check)


def _app_at(boards, location):
    def seen() -> bool:
        if not location:
            return False
        return any(t.mode == "app" and t.location == location for t in usbdevices.scan(boards).targets)
    return seen


def flash_image(image_path, board=None, serial: str | None = None, method: str = "auto", verify: bool = True,
                progress: Progress | None = None, *, kind: str | None = None, drive: Path | None = None,
                skip_same: bool = True, reboot: bool = True, timeout: float = 10.0, wait_app: float | None = None,
                boot2_check: bool = True, on_step=None) -> dict:
    """Flash ``image_path`` (or an ``Image``) onto the board; see the module docstring. Returns the result dict."""
    t0 = time.monotonic()
    progress = progress or no_progress
    step = on_step or (lambda msg: None)
    if method not in runners.method_choices():
        raise BadInput(f"unknown flash method '{method}'", f"use one of: {', '.join(runners.method_choices())}")
    if drive is not None:
        if method not in ("auto", "drive"):
            raise BadInput(f"--drive and --method {method} exclude each other", "drop one of them")
        method = "drive"
    fw = None if isinstance(image_path, Image) else image_mod.read_file(Path(image_path), kind)  # before the board
    board = resolve_board(board, fw)
    tried = runners.for_board(board, method)
    img = image_path if fw is None else image_mod.for_board(fw, board, boot2_check)
    if method == "auto":  # the board's runners that take this kind of image (else the first one refuses it)
        tried = [r for r in tried if img.kind in r.image_kinds] or tried
    tried[0].accepts(img)  # refuse an image kind before anything happens on the board
    boards = devices.boards_for(board)
    notes: list[str] = []
    step(f"image     {img.source}  {len(img.data):,} B at 0x{img.base:08X} ({img.kind})")

    if drive is not None:
        target = Device("drive", drive=require_rp2_drive(Path(drive)))
        found = None
    else:
        found = devices.discover(boards)
        target = devices.select(found, serial)
        if method != "auto" and tried[0].needs_usb and not found.usb_ok:
            raise NoUsbBackend(NO_BACKEND_MSG, no_backend_fix())
    app_serial = target.serial if target.mode in ("app", "probe") else None  # a KitProg3's UID = its UART's serial
    step(f"board     {board.name}: {target.describe()}")

    how_reset = None
    if target.mode == "app" and any(r.needs_bootloader for r in tried):
        t_r = time.monotonic()
        target, how_reset = reset.reboot_to_bootsel(target, boards, timeout, choose.ready_modes(tried),
                                                    reset.strategies_for(board), reset.manual_hint(board))
        step(f"reboot    into BOOTSEL via the {how_reset} ({time.monotonic() - t_r:.1f} s): {target.describe()}")

    chosen = choose.choose(tried, target, found, boards, how_reset is not None, timeout, notes, step)
    chosen.accepts(img)
    flash_kwargs = dict(verify=verify, skip_same=skip_same, reboot=reboot, progress=progress, timeout=timeout,
                        app_seen=_app_at(boards, target.location))
    before_app = {t.key() for t in usbdevices.scan(boards).targets if t.mode == "app"} if reboot else set()
    try:
        result = chosen.flash(img, target, board, **flash_kwargs)
    except UsbAccessDenied:
        nxt = choose.fallback_after_denied(tried, chosen) if method == "auto" else None
        if nxt is None:
            raise
        nxt.accepts(img)
        target = nxt.wait_until_usable(target, boards, how_reset is not None, timeout)
        notes.append(f"{chosen.label} was not permitted (no udev rule): used {nxt.label}{choose.cannot_verify(nxt)}")
        step(f"method    {chosen.label} not permitted, falling back to {nxt.label}")
        chosen = nxt
        flash_kwargs["app_seen"] = _app_at(boards, target.location)
        result = chosen.flash(img, target, board, **flash_kwargs)

    started = None
    port = None
    if reboot:
        if wait_app is None:
            wait_app = 5.0 if board.stdio == "usb" else 0.0
        if wait_app > 0:
            app = reset.wait_for_app(boards, target.location, wait_app, before_app)
            if app is not None:
                started = True
                port = app.port
                app_serial = app.serial or app_serial
            else:
                notes.append(f"the app did not appear on USB within {wait_app:.0f} s "
                             "(expected if the firmware has no USB stdio)")
    seconds = time.monotonic() - t0
    out = {"ok": True, "method": chosen.name, "board": board.name, "serial": app_serial,
           "location": target.location, "drive": None if target.drive is None else str(target.drive),
           "image": img.to_dict(), **result, "reset": how_reset, "started": started, "port": port,
           "seconds": round(seconds, 3),
           "bytes_per_second": round(len(img.data) / result["write_seconds"]) if result.get("write_seconds") else None,
           "notes": notes}
    if app_serial:
        last_flash.remember(app_serial, board.name)
    return out


def _boards_or_all(board) -> list[Board]:
    return devices.boards_for(resolve_board(board) if board else None)


def list_devices(board=None) -> dict:
    found = devices.discover(_boards_or_all(board))
    return {"boards": [t.to_dict() for t in found.targets], "problems": found.problems, "targets": found.targets}


def reboot_board(serial: str | None = None, bootsel: bool = False, board=None, wait: bool = True,
                 timeout: float = 10.0) -> dict:
    """Reboot the (one, or ``serial``) board: normally, or into BOOTSEL. With ``wait``, return once it is back."""
    b = resolve_board(board) if board else None
    boards = devices.boards_for(b)
    strategies = reset.strategies_for(b)
    target = devices.select(devices.discover(boards), serial)
    t0 = time.monotonic()
    if bootsel and target.mode == "app" and wait:
        new, how = reset.reboot_to_bootsel(target, boards, timeout, strategies=strategies)
        return {"how": how, "mode": "bootsel", "location": new.location, "serial": target.serial,
                "seconds": round(time.monotonic() - t0, 3)}
    how = reset.reboot(target, bootsel=bootsel, strategies=strategies)
    out = {"how": how, "mode": "bootsel" if bootsel else "app", "location": target.location,
           "serial": target.serial, "port": None}
    if wait and not bootsel:
        if target.mode == "app":  # the old instance must go away first
            reset.wait_for(boards, lambda f: None if any(t.mode == "app" and t.location == target.location
                                                         for t in f.targets) else True,
                           3.0, "the board did not reset", "press reset or replug it")
        app = reset.wait_for_app(boards, target.location, timeout)
        if app is None:
            raise WaitTimeout(f"the board did not come back as a USB app within {timeout:.0f} s",
                              "its firmware may not use USB stdio; check with 'fwtool devices'")
        out.update(serial=app.serial or target.serial, port=app.port)
    out["seconds"] = round(time.monotonic() - t0, 3)
    return out

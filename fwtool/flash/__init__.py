"""Putting firmware on a board: method registry, method choice, and the Python API other commands use.

API (used by ``fwtool flash``, ``fwtool run``, ``fwtool monitor``):

* ``flash_image(image_path, board, serial=None, method="auto", verify=True, progress=None, **options) -> dict``
  finds the board, reboots a running app into BOOTSEL, writes with PICOBOOT (verified by read-back) or the BOOTSEL
  drive, restarts the board and returns the result (method, serial, bytes_written/skipped, verified, seconds, ...).
* ``reboot_board(serial=None, bootsel=False, board=None, wait=True, timeout=10.0) -> dict`` reboots a board,
  normally (e.g. to see the boot banner again) or into BOOTSEL.
* ``list_devices(board=None) -> dict``: what is attached, in which mode.

Every expected failure is a FwtoolError with a cause and a fix (exit codes in fwtool/errors.py).
"""
from __future__ import annotations

import time
from pathlib import Path

from fwtool.core.boards import Board, all_boards, get_board
from fwtool.core.errors import BadInput, FwtoolError
from fwtool.flash import image as image_mod
from fwtool.flash import reset
from fwtool.devices import usb as usbdevices
from fwtool.flash.base import (DeviceLost, FlashFailed, FlashMethod, Image, NoDevice, NoUsbBackend, Progress, Target, UsbAccessDenied, WaitTimeout, no_progress)
from fwtool.flash.drive import DriveMethod, require_rp2_drive
from fwtool.flash.picoboot import PicobootMethod

METHODS: dict[str, FlashMethod] = {}


def register(method: FlashMethod) -> None:
    METHODS[method.name] = method


register(PicobootMethod())  # preferred: verified, skips identical sectors, no drive needed
register(DriveMethod())

__all__ = ["flash_image", "reboot_board", "list_devices", "load_image", "METHODS", "register", "Image", "Target",
           "FlashFailed", "DeviceLost", "WaitTimeout", "UsbAccessDenied", "NoUsbBackend"]


def _boards_for(board: Board) -> list[Board]:
    """Boards whose USB ids discovery should look for: same family as ``board``."""
    return [b for b in all_boards().values() if b.family == board.family] or [board]


def resolve_board(board: Board | str | None, image_path: Path | None = None) -> Board:
    if isinstance(board, Board):
        return board
    if board:
        return get_board(board)
    if image_path is not None and Path(image_path).suffix.lower() == ".uf2":
        from fwtool.image import uf2

        try:
            fams = uf2.family_of(Path(image_path))
        except (OSError, uf2.UF2Error):
            fams = set()
        cands = sorted((b for b in all_boards().values() if b.uf2_family_id in fams), key=lambda b: b.flash_bytes)
        if cands:
            return cands[0]  # the smallest flash of the family: the conservative range check
        if fams:
            from fwtool.flash.drive import family_name

            raise BadInput(f"{image_path} is for UF2 family {', '.join(family_name(f) for f in sorted(fams))}, "
                           "which no fwtool board uses", "flash it with that chip's own tool, or pass --board")
    raise BadInput("cannot tell which board this image is for: pass --board", "see 'fwtool boards'")


def load_image(path: Path, board: Board, kind: str | None = None, boot2_check: bool = True) -> Image:
    kind = kind or Path(path).suffix.lower().lstrip(".")
    if kind not in ("uf2", "elf", "bin"):
        raise BadInput(f"{path}: unknown image type '.{kind}'", "pass a .uf2, .elf or .bin file")
    return image_mod.load(board, **{f"{kind}_path": Path(path)}, boot2_check=boot2_check)


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
    if method not in ("auto", *METHODS):
        raise BadInput(f"unknown flash method '{method}'", f"use one of: auto, {', '.join(METHODS)}")
    board = resolve_board(board, None if isinstance(image_path, Image) else image_path)
    img = image_path if isinstance(image_path, Image) else load_image(Path(image_path), board, kind, boot2_check)
    boards = _boards_for(board)
    notes: list[str] = []
    step(f"image     {img.source}  {len(img.data):,} B at 0x{img.base:08X} ({img.kind})")

    if drive is not None:
        if method == "picoboot":
            raise BadInput("--drive and --method picoboot exclude each other", "drop one of them")
        target = Target("drive", drive=require_rp2_drive(Path(drive)))
        method = "drive"
        found = None
    else:
        found = usbdevices.scan(boards)
        target = usbdevices.select(found, serial)
        if method == "picoboot" and not found.usb_ok:
            raise NoUsbBackend(usbdevices.NO_BACKEND_MSG, usbdevices.no_backend_fix())
    app_serial = target.serial if target.mode == "app" else None
    step(f"board     {board.name}: {target.describe()}")

    how_reset = None
    if target.mode == "app":
        need = {"picoboot": ("bootsel",), "drive": ("drive",)}.get(method, ("bootsel", "drive"))
        t_r = time.monotonic()
        target, how_reset = reset.reboot_to_bootsel(target, boards, timeout, need)
        step(f"reboot    into BOOTSEL via the {how_reset} ({time.monotonic() - t_r:.1f} s): {target.describe()}")

    chosen = _choose(method, target, found, boards, how_reset is not None, timeout, notes, step)
    flash_kwargs = dict(verify=verify, skip_same=skip_same, reboot=reboot, progress=progress, timeout=timeout)
    if chosen.name == "drive":
        flash_kwargs["app_seen"] = _app_at(boards, target.location)
    before_app = {t.key() for t in usbdevices.scan(boards).targets if t.mode == "app"} if reboot else set()
    try:
        result = chosen.flash(img, target, board, **flash_kwargs)
    except UsbAccessDenied:
        if method != "auto" or chosen.name != "picoboot":
            raise
        target = _wait_drive(target, boards, how_reset is not None, timeout)
        notes.append("PICOBOOT was not permitted (no udev rule): used the BOOTSEL drive, which cannot verify")
        step("method    PICOBOOT not permitted, falling back to the BOOTSEL drive")
        chosen = METHODS["drive"]
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
        _remember_flash(app_serial, board.name)
    return out


def _remember_flash(serial: str, board: str) -> None:
    """Record the board flashed last (build/.fwtool-last-flash.json) so 'fwtool monitor' prefers it."""
    import json
    import os

    from fwtool.devices.ports import LAST_FLASH_FILE

    try:
        LAST_FLASH_FILE.parent.mkdir(parents=True, exist_ok=True)
        tmp = LAST_FLASH_FILE.with_name(LAST_FLASH_FILE.name + ".tmp")
        tmp.write_text(json.dumps({"serial": serial, "board": board}))
        os.replace(tmp, LAST_FLASH_FILE)
    except OSError:  # a read-only folder only loses the preference
        pass


def _choose(method: str, target: Target, found, boards, just_rebooted: bool, timeout: float, notes: list, step):
    pb, dr = METHODS["picoboot"], METHODS["drive"]
    if method == "drive":
        if target.drive is None:
            target_drive = _wait_drive(target, boards, just_rebooted, timeout)
            target.drive = target_drive.drive
        return dr
    ok, why = pb.usable(target)
    if method == "picoboot":
        if ok:
            return pb
        if found is not None and not found.usb_ok:
            raise NoUsbBackend(usbdevices.NO_BACKEND_MSG, usbdevices.no_backend_fix())
        if target.access is False:
            raise UsbAccessDenied(f"no permission to open the RP2040 in BOOTSEL mode ({target.describe()})",
                                  usbdevices.udev_fix())
        raise NoDevice(f"PICOBOOT is not available: {why}", "hold BOOTSEL while plugging the board in")
    # auto
    if ok:
        return pb
    if target.drive is not None:
        notes.append(f"PICOBOOT unavailable ({why}): used the BOOTSEL drive, which cannot verify")
        step(f"method    PICOBOOT unavailable ({why}); using the BOOTSEL drive")
        return dr
    if target.mode == "bootsel" and target.access is False:
        t = _wait_drive(target, boards, just_rebooted, timeout, UsbAccessDenied(
            f"no permission to open the RP2040 in BOOTSEL mode ({target.describe()}) and no RPI-RP2 drive is "
            "mounted", usbdevices.udev_fix()))
        target.drive = t.drive
        notes.append("PICOBOOT was not permitted: used the BOOTSEL drive, which cannot verify")
        return dr
    raise NoDevice(f"cannot flash {target.describe()}: {why}",
                   "hold BOOTSEL while plugging the board in; if it mounts as RPI-RP2, pass --drive PATH")


def _wait_drive(target: Target, boards, just_rebooted: bool, timeout: float, error: FwtoolError | None = None):
    if target.drive is not None:
        return target
    if not just_rebooted:  # a board sitting in BOOTSEL is mounted by now if it ever will be
        found = usbdevices.scan(boards)
        drives = [t for t in found.targets if t.drive is not None and
                  (not target.location or t.location in (None, target.location))]
        if len(drives) == 1:
            return drives[0]
        raise error or NoDevice("no mounted RPI-RP2 drive for this board",
                                "mount it (desktop automount does) and pass --drive PATH, or use PICOBOOT")

    def pred(found):
        d = [t for t in found.targets if t.drive is not None and
             (not target.location or t.location in (None, target.location))]
        return d[0] if len(d) == 1 else None

    try:
        return reset.wait_for(boards, pred, timeout, "no RPI-RP2 drive was mounted",
                              "mount it and pass --drive PATH, or allow PICOBOOT (udev rule)")
    except WaitTimeout:
        if error is not None:
            raise error
        raise


def list_devices(board=None) -> dict:
    b = resolve_board(board) if board else None
    boards = _boards_for(b) if b else list(all_boards().values())
    found = usbdevices.scan(boards)
    return {"boards": [t.to_dict() for t in found.targets], "problems": found.problems, "targets": found.targets}


def reboot_board(serial: str | None = None, bootsel: bool = False, board=None, wait: bool = True,
                 timeout: float = 10.0) -> dict:
    """Reboot the (one, or ``serial``) board: normally, or into BOOTSEL. With ``wait``, return once it is back."""
    b = resolve_board(board) if board else None
    boards = _boards_for(b) if b else list(all_boards().values())
    target = usbdevices.select(usbdevices.scan(boards), serial)
    t0 = time.monotonic()
    if bootsel and target.mode == "app" and wait:
        new, how = reset.reboot_to_bootsel(target, boards, timeout)
        return {"how": how, "mode": "bootsel", "location": new.location, "serial": target.serial,
                "seconds": round(time.monotonic() - t0, 3)}
    how = reset.reboot(target, bootsel=bootsel)
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

"""Putting firmware on a board: the runner the board file chooses, and the Python API other commands use.

API (used by ``fwtool flash``, ``fwtool run``, ``fwtool monitor``, ``fwtool validate``):

* ``flash_image(request=FlashRequest(...))`` (or ``flash_image(image_path, board, serial=None, method="auto",
  verify=True, progress=None, **options)``) -> ``FlashResult``: finds the board (one USB scan), reboots a running
  app into its bootloader, writes with the board's runners in order (``[flash] runners`` in
  boards/<board>.toml: PICOBOOT, verified by read-back, then the BOOTSEL drive), restarts the board and returns
  the typed result (fwtool/flash/request.py; ``to_dict()`` is the ``--json`` object).
* ``list_devices(board=None) -> dict``: what is attached, in which mode (``fwtool.devices.discover``).
* ``runners.RUNNERS`` / ``runners.method_choices()``: the registry (fwtool/flash/runners/).

Every expected failure is a FwtoolError with a cause and a fix (exit codes in fwtool/core/errors.py).
"""
from __future__ import annotations

import time
from pathlib import Path

from fwtool import devices
from fwtool.core.boards import Board, all_boards, get_board
from fwtool.core.errors import BadInput, DeviceLost, FlashFailed, NoUsbBackend, UsbAccessDenied, WaitTimeout
from fwtool.devices import board_lock, last_flash
from fwtool.devices import usb as usbdevices
from fwtool.devices.device import Device
from fwtool.devices.chips import EXAMPLE_BOARD
from fwtool.devices.drives import require_rp2_drive
from fwtool.devices.permissions import NO_BACKEND_MSG, no_backend_fix
from fwtool.devices import reset
from fwtool.flash import choose, runners
from fwtool.flash import image as image_mod
from fwtool.flash.base import Image, Progress, Runner
from fwtool.flash.request import FlashRequest, FlashResult, WriteOptions, Written
from fwtool.image import uf2
from fwtool.image.firmware import FirmwareImage
from fwtool.image.uf2 import family_name

__all__ = ["flash_image", "FlashRequest", "FlashResult", "WriteOptions", "Written", "list_devices", "load_image", "resolve_board", "runners", "Runner",
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


def flash_image(image_path=None, board=None, serial: str | None = None, method: str = "auto", verify: bool = True,
                progress: Progress | None = None, *, request: FlashRequest | None = None, **options) -> FlashResult:
    """Flash an image onto the board; see the module docstring. Takes a :class:`FlashRequest` (``request=``), or
    builds one from the arguments (``options``: FlashRequest's other fields: kind, drive, skip_same, reboot,
    timeout, wait_app, boot2_check, on_step). Returns a :class:`FlashResult`."""
    if request is None:
        request = FlashRequest(image=image_path, board=board, device=serial, method=method, verify=verify,
                               progress=progress, **options)
    return _flash(request.checked())


def _flash(req: FlashRequest) -> FlashResult:
    t0 = time.monotonic()
    fw = None if isinstance(req.image, Image) else image_mod.read_file(Path(req.image), req.kind)  # before the board
    board = resolve_board(req.board, fw)
    tried = runners.for_board(board, req.method)  # refuses an unknown method or one the board does not list
    img = req.image if fw is None else image_mod.for_board(fw, board, req.boot2_check)
    if req.method == "auto":  # the board's runners that take this kind of image (else the first one refuses it)
        tried = [r for r in tried if img.kind in r.image_kinds] or tried
    tried[0].accepts(img)  # refuse an image kind before anything happens on the board
    boards = devices.boards_for(board)
    notes: list[str] = []
    req.step(f"image     {img.source}  {len(img.data):,} B at 0x{img.base:08X} ({img.kind})")

    if req.drive is not None:
        target = Device("drive", drive=require_rp2_drive(Path(req.drive), uf2.chip_of(board.uf2_family_id)))
        found = None
    else:
        found = devices.discover(boards)  # the one scan: every later wait compares against it
        target = devices.select(found, req.device)
        if req.method != "auto" and tried[0].needs_usb and not found.usb_ok:
            raise NoUsbBackend(NO_BACKEND_MSG, no_backend_fix())
    want_chip = uf2.chip_of(board.uf2_family_id)
    if want_chip and target.chip and target.chip != want_chip:  # a Pico for --board pico2, or the reverse
        raise BadInput(f"the attached board is an {target.chip} ({target.describe()}), but --board {board.name} is "
                       f"an {want_chip} board; nothing was written",
                       f"flash an image built for it (--board {EXAMPLE_BOARD[target.chip]}), or plug in the "
                       f"{want_chip} board")
    # one device, one user (devices/board_lock.py): queue behind another flash of this board, make a monitor let go
    waited: list[str] = []
    # (a virtual board's USB location is the same for every one: flash_virtual claims it by its flash file instead)
    ids = board_lock.of_device(target) if usbdevices.system_usb() else []
    with board_lock.claim(ids, on_event=lambda e: e in ("waiting", "asked") and
                          waited.append(e)):
        if waited and found is not None:  # the board may have been rebooted or re-flashed while this one waited
            found = devices.discover(boards)
            target = devices.select(found, target.location or target.serial or req.device)
        return _flash_claimed(req, board, img, tried, boards, found, target, notes, t0)


def _flash_claimed(req, board, img, tried, boards, found, target, notes, t0) -> FlashResult:
    app_serial = target.serial if target.mode in ("app", "probe") else None  # a KitProg3's UID = its UART's serial
    req.step(f"board     {board.name}: {target.describe()}")
    # apps on USB before the flash other than this board (a new one afterwards, at no known location, is ours)
    before_app = {t.key() for t in (found.targets if found else ()) if t.mode == "app" and t.key() != target.key()}

    how_reset = None
    if target.mode == "app" and any(r.needs_bootloader for r in tried):
        t_r = time.monotonic()
        target, how_reset = reset.reboot_to_bootsel(target, boards, req.timeout, choose.ready_modes(tried),
                                                    reset.strategies_for(board), found=found,
                                                    manual=reset.manual_hint(board))
        req.step(f"reboot    into BOOTSEL via the {how_reset} ({time.monotonic() - t_r:.1f} s): {target.describe()}")

    chosen = choose.choose(tried, target, found, boards, how_reset is not None, req.timeout, notes, req.step)
    chosen.accepts(img)
    try:
        written = chosen.flash(img, target, board, req.write_options(_app_at(boards, target.location)))
    except UsbAccessDenied:
        nxt = choose.fallback_after_denied(tried, chosen) if req.method == "auto" else None
        if nxt is None:
            raise
        nxt.accepts(img)
        target = nxt.wait_until_usable(target, boards, how_reset is not None, req.timeout)
        notes.append(f"{chosen.label} was not permitted (no udev rule): used {nxt.label}{choose.cannot_verify(nxt)}")
        req.step(f"method    {chosen.label} not permitted, falling back to {nxt.label}")
        chosen = nxt
        written = chosen.flash(img, target, board, req.write_options(_app_at(boards, target.location)))

    started = None
    port = None
    if req.reboot:
        wait_app = req.wait_app if req.wait_app is not None else (5.0 if board.stdio == "usb" else 0.0)
        if wait_app > 0:
            app = reset.wait_for_app(boards, target.location, wait_app, before_app)
            if app is not None:
                started = True
                port = app.port
                app_serial = app.serial or app_serial
            else:
                notes.append(f"the app did not appear on USB within {wait_app:.0f} s "
                             "(expected if the firmware has no USB stdio)")
    result = FlashResult(method=chosen.name, board=board.name, serial=app_serial, location=target.location,
                         drive=None if target.drive is None else str(target.drive), image=img.to_dict(),
                         written=written, reset=how_reset, started=started, port=port,
                         seconds=time.monotonic() - t0, notes=notes)
    if app_serial:
        last_flash.remember(app_serial, board.name)
    return result


def _boards_or_all(board) -> list[Board]:
    return devices.boards_for(resolve_board(board) if board else None)


def list_devices(board=None) -> dict:
    found = devices.discover(_boards_or_all(board))
    return {"boards": [t.to_dict() for t in found.targets], "problems": found.problems, "targets": found.targets}

"""Flashing the virtual board the way a real one is flashed: PICOBOOT through the real bootrom, then boot from flash.

* :func:`flash_virtual` powers on the virtual board from its kept flash (``virtual_usb.default_flash_state``),
  or attaches to one ``fwtool emulate --bootsel`` serves, and runs ``fwtool.flash.flash_image`` against it with
  discovery limited to it: reboot of a running app into BOOTSEL (its USB reset interface), PICOBOOT erase/write of
  the sectors that differ, read-back verify, REBOOT, the app re-enumerating. The result is flash_image's, plus
  ``virtual`` (what the emulated flash chip saw: sector erases, page programs).
* :func:`serve` / :func:`published`: a virtual board other fwtool processes find (``<cache>/emulator/
  virtual-board.json``: its USB control port, serial URL, pid).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from fwtool import flash as flash_api
from fwtool.flash.request import FlashResult, VirtualFlash
from fwtool.core.files import atomic_write
from fwtool.devices import board_lock
from fwtool.core.paths import cache_dir
from fwtool.emulator.usb_backend import VirtualBackend
from fwtool.emulator.virtual_usb import Rp2040jsUsbProcess, default_flash_state

BOOT_WAIT_S = 10.0  # wall seconds for the powered-on chip to show up on USB (app or BOOTSEL)
APP_USB_US = 500_000  # emulated time after which an app that has not enumerated never will (fire_alarm: 11 ms)


def registry_file() -> Path:
    return cache_dir() / "emulator" / "virtual-board.json"


def publish(board: Rp2040jsUsbProcess) -> Path:
    p = registry_file()
    atomic_write(p, json.dumps({"pid": os.getpid(), "usb_port": board.usb_port, "serial_url": board.url,
                                "flash_state": str(board.flash_state)}))  # a reader never sees half of it
    return p


def unpublish() -> None:
    p = registry_file()
    try:
        if json.loads(p.read_text()).get("pid") == os.getpid():
            p.unlink()
    except (OSError, ValueError):
        pass


def published() -> dict | None:
    """The board an `fwtool emulate --bootsel` process serves, if it is still alive."""
    try:
        info = json.loads(registry_file().read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


class _Attached(Rp2040jsUsbProcess):
    """A board someone else started (found through the registry): attach to it, never stop it."""

    def __init__(self, info: dict):
        super().__init__(Path(info["flash_state"]))
        self.usb_port = info["usb_port"]
        self.port = int(info["serial_url"].rsplit(":", 1)[1])
        self.backend = VirtualBackend(self.usb_port)

    def stop(self):
        if self.backend:
            self.backend.close()
        return None


def open_board(flash_state: Path | None = None, board_name: str = "pico", timing: str = "none",
               use_published: bool = True) -> Rp2040jsUsbProcess:
    """The served virtual board if there is one, else a new one powered on from its kept flash."""
    info = published() if use_published and flash_state is None else None
    if info and Path(info.get("flash_state", "")) == default_flash_state(board_name):  # the same board's flash
        return _Attached(info)
    return Rp2040jsUsbProcess(flash_state or default_flash_state(board_name), bootsel=False, timing=timing).start()


def _wait_usb(board: Rp2040jsUsbProcess) -> str:
    """Wait for the chip on USB; a flash without a USB app gets the virtual BOOTSEL button (as a user would).
    The app gets APP_USB_US of emulated time (a pico-sdk USB app enumerates within a few ms) or BOOT_WAIT_S."""
    deadline = time.monotonic() + BOOT_WAIT_S
    while time.monotonic() < deadline:
        if list(board.backend.enumerate_devices()):
            return ""
        if (board.state().get("emulated_us") or 0) > APP_USB_US:
            break
        time.sleep(0.05)
    board.replug(bootsel=True)
    board.wait_enumerated(BOOT_WAIT_S)
    return "the app in the virtual board's flash did not show up on USB: it was restarted holding BOOTSEL"


def flash_virtual(image, board_name: str = "pico", *, verify: bool = True, board: Rp2040jsUsbProcess | None = None,
                  flash_state: Path | None = None, on_step=None, wait_app: float | None = 10.0,
                  timing: str = "none", **options) -> tuple[FlashResult, Rp2040jsUsbProcess]:
    """Flash ``image`` into the virtual board through PICOBOOT. Returns (result, the board, still running)."""
    own = board is None
    board = board or open_board(flash_state, board_name, timing)
    try:
        note = _wait_usb(board)
        before = board.state().get("totals", {})
        t0 = time.monotonic()
        # one user of this virtual board at a time (fwtool/devices/board_lock.py), known by its kept flash
        with board_lock.claim([f"virtual {Path(board.flash_state).resolve()}"]), board.attached():
            result = flash_api.flash_image(image, board=board_name, method="picoboot", verify=verify,
                                           on_step=on_step, wait_app=wait_app, **options)
        after = board.state().get("totals", {})
        result.virtual = VirtualFlash(
            bootrom="RP2040 B1 (rp2040js repository)", flash_chip="W25Q16JV model (2 MiB)",
            sector_erases=after.get("sectorErases", 0) - before.get("sectorErases", 0),
            page_programs=after.get("pagePrograms", 0) - before.get("pagePrograms", 0),
            flash_state=str(board.flash_state), serial_url=board.url, seconds=round(time.monotonic() - t0, 3))
        if note:
            result.notes.append(note)
        return result, board
    except BaseException:
        if own:
            board.stop()
        raise

"""The virtual board with a USB port: rp2040js running the real bootrom, flashed through PICOBOOT like hardware.

``Rp2040jsUsbProcess`` starts ``node runner.mjs --usb-bridge`` (bridge.mjs): the chip powers on through the B1
bootrom, from its emulated SPI NOR flash (kept in ``flash_state`` between runs) or, with ``bootsel=True``, in
BOOTSEL mode. Its USB port is reached through the pyusb backend in :mod:`.usb_backend`; inside
``with board.attached():`` fwtool's device discovery sees it (and only it) as a board at USB location
``250-1``, so ``fwtool.flash.flash_image`` and the reset code run unchanged against the real bootrom.
The app's serial output (UART and USB CDC) is on ``board.url`` (socket://127.0.0.1:PORT) for fwtool monitor.
"""
from __future__ import annotations

import atexit
import json
import os
import threading
import time
import weakref
from contextlib import contextmanager
from pathlib import Path

from fwtool.core import runner
from fwtool.core.errors import FwtoolError
from fwtool.core.paths import cache_dir
from fwtool.devices import usb as usbdevices
from fwtool.emulator import bootrom as bootrom_mod
from fwtool.emulator import node as node_mod
from fwtool.emulator.session import CLOCK_MHZ, RUNNER_JS
from fwtool.emulator.usb_backend import BUS, PORT, VirtualBackend

LOCATION = f"{BUS}-{PORT}"
FLASH_BYTES = 2 * 1024 * 1024  # the Pico's W25Q16JV

_live: "weakref.WeakSet[Rp2040jsUsbProcess]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:  # last resort: never leave a node process behind
    for board in list(_live):
        board.stop()


def default_flash_state(board: str = "pico") -> Path:
    """Where the virtual board keeps its flash between runs (like a board on the desk keeps its firmware);
    ``FWTOOL_VIRTUAL_FLASH`` names another file (and then no served board is looked for)."""
    env = os.environ.get("FWTOOL_VIRTUAL_FLASH")
    return Path(env) if env else cache_dir() / "emulator" / f"virtual-flash-{board}.bin"


class Rp2040jsUsbProcess:
    """One rp2040js process of the chip with a USB port (was ``VirtualUsbBoard``): what the ``rp2040js`` target
    serves when flashed through the bootloader, and what ``fwtool emulate --bootsel`` publishes for ``fwtool flash
    --virtual`` (a device to discover, like a board on the desk)."""

    def __init__(self, flash_state: Path | None = None, *, bootsel: bool = True, timing: str = "none",
                 max_wall_s: float = 1800.0, on_event=None):
        self.flash_state = Path(flash_state or default_flash_state())
        self.bootsel = bootsel
        self.timing = timing
        self.max_wall_s = max_wall_s
        self.on_event = on_event
        self.events: list[dict] = []
        self.port = None
        self.usb_port = None
        self.backend: VirtualBackend | None = None
        self._proc = None
        self._ready = threading.Event()
        self._thread = None

    def start(self, ready_timeout: float = 30.0) -> "Rp2040jsUsbProcess":
        n = node_mod.find_node()
        pkg = node_mod.ensure_rp2040js()
        rom = bootrom_mod.bootrom_file()
        self.flash_state.parent.mkdir(parents=True, exist_ok=True)
        cmd = [n.path, str(RUNNER_JS), "--rp2040js", str(pkg.entry), "--bootrom", str(rom), "--usb-bridge",
               "--flash-state", str(self.flash_state), "--flash-timing", self.timing, "--mhz", str(CLOCK_MHZ),
               "--max-wall-s", f"{self.max_wall_s:g}"]
        if self.bootsel:
            cmd.append("--bootsel")
        self._proc = runner.spawn(cmd)
        _live.add(self)
        self._thread = threading.Thread(target=self._read_events, daemon=True)
        self._thread.start()
        if not self._ready.wait(ready_timeout) or self.usb_port is None:
            self.stop()
            raise FwtoolError("the virtual board did not start: " + (self._last_log() or "no answer"),
                              "check 'node --version' (>= 18); re-run with FWTOOL_DEBUG=1")
        self.backend = VirtualBackend(self.usb_port)
        return self

    def _read_events(self) -> None:
        assert self._proc and self._proc.stderr
        for raw in self._proc.stderr:
            text = raw.decode("utf-8", errors="replace").rstrip("\n")
            try:
                ev = json.loads(text) if text.startswith("{") else {"event": "log", "level": "stderr", "text": text}
            except ValueError:
                ev = {"event": "log", "level": "stderr", "text": text}
            self.events.append(ev)
            if ev.get("event") == "listening":
                self.port, self.usb_port = ev["port"], ev["usb_port"]
                self._ready.set()
            if self.on_event:
                self.on_event(ev)
        self._ready.set()

    def _last_log(self) -> str:
        texts = [e.get("text") or e.get("detail") or "" for e in self.events if e.get("event") in ("log", "exit")]
        return texts[-1][:200] if texts else ""

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    @contextmanager
    def attached(self):
        """fwtool's device discovery sees this board (and no real one) inside the block."""
        with usbdevices.extra_backends([self.backend], system=False):
            yield self

    def wait_enumerated(self, timeout: float = 20.0, pid: int | None = None) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            devs = list(self.backend.enumerate_devices())
            if devs and (pid is None or devs[0].desc.idProduct == pid):
                return
            time.sleep(0.05)
        raise FwtoolError(f"the virtual board did not enumerate on USB within {timeout:g} s", None)

    # -- test hooks: faults in the emulated flash and hot-plug ------------------------------------------------
    def fault(self, kind: str, **kw) -> None:
        self.backend.bridge("fault", kind=kind, **kw)

    def unplug(self) -> None:
        self.backend.bridge("unplug")

    def replug(self, bootsel: bool = True) -> None:
        self.backend.bridge("replug", bootsel=bootsel)

    def state(self) -> dict:
        return self.backend.bridge("state")

    def flash_bytes(self) -> bytes:
        """The flash contents as saved by the bridge (current chip included)."""
        self.backend.bridge("save")
        return self.flash_state.read_bytes()

    def stop(self) -> dict | None:
        if self.backend:
            self.backend.close()
        if self._proc is not None:
            runner.stop(self._proc, grace=3.0)
            if self._thread:
                self._thread.join(timeout=5)
            self._proc = None
        _live.discard(self)
        return next((e for e in reversed(self.events) if e.get("event") == "exit"), None)

    def __enter__(self) -> "Rp2040jsUsbProcess":
        return self if self._proc is not None else self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

"""One labgrid place's board from fwtool's side: flash it through ``FwtoolFlashDriver`` and find its serial port
again afterwards; read a validation run from it.

Exporters on this machine (127.0.0.1, localhost: the virtual lab) are driven without ssh, with this Python's
fwtool; any other host goes through labgrid's ssh (``resource.wrap_command``) and the exporter's ``fwtool``.
"""
from __future__ import annotations

import shlex
import sys
import threading
import time
from pathlib import Path
from typing import Callable

from fwtool.core.errors import Exit, FwtoolError
from fwtool.lab.driver import register
from fwtool.lab.places import Lab, PlacePort
from fwtool.validate import target

LOOPBACK = ("127.0.0.1", "localhost", "::1")
PORT_WAIT_S = 20.0


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


def make_driver(pp: PlacePort, *, ssh: bool | None = None, fwtool: str | None = None, timeout: float = 180.0):
    """A labgrid Target holding the place's serial port resource and an active FwtoolFlashDriver bound to it."""
    from labgrid.factory import target_factory
    from labgrid.target import Target

    driver_cls = register()
    tgt = Target(pp.place)
    res = target_factory.make_resource(tgt, pp.cls, pp.cls, dict(pp.args))
    res.extra = dict(pp.extra)  # as labgrid's RemotePlace does (proxy settings)
    use_ssh = (not is_loopback(pp.host)) if ssh is None else ssh
    cmd = fwtool or ("fwtool" if use_ssh else f"{shlex.quote(sys.executable)} -m fwtool")
    drv = driver_cls(tgt, "fwtool", board=pp.board, serial=pp.tags.get("serial"), virtual=pp.virtual,
                     ssh=use_ssh, fwtool=cmd, timeout=timeout)
    tgt.activate(drv)
    return tgt, drv


def driver_error(e: Exception) -> FwtoolError:
    """labgrid's error from the driver back as fwtool's error (same exit code as a local flash)."""
    code = getattr(e, "fwtool_code", None)
    return FwtoolError(getattr(e, "cause", None) or getattr(e, "msg", None) or str(e), getattr(e, "fix", None),
                       Exit(code) if code is not None else Exit.FAILED)


class PlaceBoard:
    """A board on an acquired place. ``lock`` serializes the coordinator session between fleet threads."""

    def __init__(self, lab: Lab, place: str, lock: threading.Lock | None = None, *, ssh: bool | None = None,
                 fwtool: str | None = None, port_wait_s: float = PORT_WAIT_S):
        self.lab, self.place = lab, place
        self.lock = lock or threading.Lock()
        self.ssh, self.fwtool, self.port_wait_s = ssh, fwtool, port_wait_s
        with self.lock:
            self.port = lab.serial_port(place) or lab.wait_port(place, port_wait_s)

    @property
    def virtual(self) -> bool:
        return self.port.virtual

    @property
    def board(self) -> str:
        return self.port.board

    def flash(self, image: Path) -> dict:
        """Flash ``image`` through the driver; afterwards ``self.port`` is the port the board is on now."""
        before = self.port
        tgt, drv = make_driver(before, ssh=self.ssh, fwtool=self.fwtool)
        t0 = time.monotonic()
        try:
            result = drv.flash(str(image))
        except FwtoolError:
            raise
        except Exception as e:  # labgrid's ExecutionError / InvalidConfigError from the driver
            raise driver_error(e) from e
        finally:
            tgt.deactivate_all_drivers()
        with self.lock:
            self.port = self.lab.wait_port(self.place, self.port_wait_s, before=before,
                                           settle_s=0.0 if self.virtual else 2.0)
        return {**result, "place": self.place, "port": self.port.url, "seconds": round(time.monotonic() - t0, 3)}

    def validate_runner(self, timeout: float, flash: bool = True) -> Callable:
        """validate's ``board_runner``: flash the validation image here, read the run from the exported port."""
        def run(image: Path | None, on_line: Callable[[str], None], on_step: Callable[[str], None]):
            info: dict = {"kind": "board", "labgrid_place": self.place, "virtual": self.virtual}
            if flash and image is not None:
                on_step(f"flashing {self.place} through labgrid")
                res = self.flash(image)
                info.update({"flash_method": res.get("method"), "flash_seconds": res.get("seconds")})
            info["port"] = self.port.url
            on_step(f"reading results from {self.place} ({self.port.url})")
            t0 = time.monotonic()
            lines = target.read_port_until_done(self.port.url, timeout, on_line)
            info["wall_s"] = round(time.monotonic() - t0, 3)
            if self.virtual:
                info["name"] = f"virtual board {self.place} (rp2040js)"
            return lines, info
        return run

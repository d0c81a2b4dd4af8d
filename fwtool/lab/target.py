"""A labgrid place as a target (fwtool/targets/base.py): flash its board through ``FwtoolFlashDriver``, find its
serial port again afterwards, read its lines over the exported port (the physical target's reader).

Exporters on this machine (127.0.0.1, localhost: the virtual lab) are driven without ssh, with this Python's
fwtool; any other host goes through labgrid's ssh (``resource.wrap_command``) and the exporter's ``fwtool``.
"""
from __future__ import annotations

import shlex
import sys
import threading
import time
from pathlib import Path

from fwtool.core.errors import Exit, FwtoolError
from fwtool.emulator.targets import Rp2040js
from fwtool.lab.driver import register
from fwtool.lab.places import Lab, PlacePort
from fwtool.targets.base import PHYSICAL, VIRTUAL, TargetInfo
from fwtool.targets.physical import PortTarget, open_port

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


class PlaceTarget(PortTarget):
    """The board on an acquired place (virtual places: rp2040js behind a labgrid exporter). ``lock`` serializes
    the coordinator session between fleet threads. ``flash``: load() flashes the image (else it runs already)."""

    def __init__(self, lab: Lab, place: str, lock: threading.Lock | None = None, *, ssh: bool | None = None,
                 fwtool: str | None = None, port_wait_s: float = PORT_WAIT_S, flash: bool = True):
        super().__init__()
        self.lab, self.place = lab, place
        self.lock = lock or threading.Lock()
        self.ssh, self.fwtool, self.port_wait_s, self.flash_first = ssh, fwtool, port_wait_s, flash
        self.ser = None
        with self.lock:
            self.port = lab.serial_port(place) or lab.wait_port(place, port_wait_s)
        virtual = self.port.virtual
        self.info = TargetInfo(
            "labgrid", f"virtual board {place} (rp2040js)" if virtual else f"labgrid place {place}",
            VIRTUAL if virtual else PHYSICAL, cycle_accurate=not virtual, cores=Rp2040js.info.cores if virtual else 2,
            clock_hz=Rp2040js.info.clock_hz if virtual else None, timing_note=None, feeds=frozenset({"bytes"}))

    @property
    def virtual(self) -> bool:
        return self.port.virtual

    @property
    def board(self) -> str:
        return self.port.board

    @property
    def url(self) -> str:
        return self.port.url

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

    # -- the target lifecycle -----------------------------------------------------------------------------------
    def load(self, image: Path | None) -> None:
        super().load(image)
        if self.flash_first and self.image is not None:
            self.on_step(f"flashing {self.place} through labgrid")
            res = self.flash(self.image)
            self._details.update({"flash_method": res.get("method"), "flash_seconds": res.get("seconds")})

    def start(self) -> None:
        self._details["port"] = self.port.url
        self.on_step(f"reading results from {self.place} ({self.port.url})")
        self.ser = open_port(self.port.url)
        self._t0 = time.monotonic()

    def details(self) -> dict:
        """Reported as a board (kind "board"), virtual or not: validate compares it like one."""
        d = {**super().details(), "kind": "board", "labgrid_place": self.place, "virtual": self.virtual}
        if not self.virtual:
            d.pop("name", None)
        return d

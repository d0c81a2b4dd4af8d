"""labgrid places from fwtool's side: one coordinator session per process, acquire/reserve/release, and the
exported serial port of a place (re-read after the board re-enumerates).

Everything acquired or reserved through a :class:`Lab` is released/cancelled by :meth:`Lab.close` (the commands
call it in ``finally``, so also on errors and Ctrl-C): a reservation left behind blocks other users until the
coordinator's 60 s timeout. labgrid's own client methods print to stdout, so the coordinator's gRPC calls are made
here directly (fwtool's ``--json`` output stays clean).
"""
from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field

from fwtool.core.errors import BadInput, Exit, FwtoolError, MissingTool, NoDevice

DEFAULT_COORDINATOR = "127.0.0.1:20408"
SERIAL_CLASSES = ("NetworkSerialPort", "USBSerialPort", "RawSerialPort")
TAG = re.compile(r"^[a-z][a-z0-9_-]*=[a-z0-9_.:-]+$", re.I)


def parse_tags(pairs) -> dict[str, str]:
    """``("board=pico", "site=b1")`` -> dict; a bad pair is one BadInput line."""
    tags = {}
    for pair in pairs or ():
        for item in str(pair).replace(",", " ").split():
            if not TAG.match(item):
                raise BadInput(f"labgrid tag '{item}' is not KEY=VALUE", "write it like --labgrid-tags board=pico")
            k, v = item.split("=", 1)
            tags[k] = v
    return tags


def coordinator_address(given: str | None = None) -> str:
    return given or os.environ.get("LG_COORDINATOR") or DEFAULT_COORDINATOR


@dataclass
class PlacePort:
    """Where a place's serial console is reachable: a pyserial URL plus what the flash driver needs."""

    place: str
    url: str
    host: str
    port: int | None
    protocol: str
    cls: str
    args: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)

    @property
    def virtual(self) -> bool:
        return self.tags.get("virtual") in ("1", "true", "yes")

    @property
    def board(self) -> str:
        return self.tags.get("board", "pico")


def port_url(cls: str, args: dict) -> str:
    if cls == "NetworkSerialPort":
        scheme = "socket" if args.get("protocol") == "raw" else "rfc2217"
        return f"{scheme}://{args['host']}:{args['port']}"
    return str(args.get("port") or "")


class Lab:
    """A labgrid client session. ``with Lab() as lab:`` releases and cancels everything on exit."""

    def __init__(self, coordinator: str | None = None):
        try:
            from labgrid.remote.client import start_session
            from labgrid.remote.generated import labgrid_coordinator_pb2 as pb2
        except ImportError as e:
            raise MissingTool(f"labgrid is not installed ({e})", "pip install 'fwtool[labgrid]'") from e
        self.pb2 = pb2
        self.address = coordinator_address(coordinator)
        root = logging.getLogger()
        if not root.handlers:  # labgrid logs to the root logger; fwtool reports its errors itself (one line)
            root.addHandler(logging.NullHandler())
        try:
            self.session = start_session(self.address)
        except Exception as e:  # ConnectionRefused, grpc errors, labgrid's ServerError
            raise NoDevice(f"cannot reach the labgrid coordinator at {self.address}: {e or type(e).__name__}",
                           "start it ('labgrid-coordinator', or 'fwtool lab --virtual N') and set "
                           "LG_COORDINATOR=HOST:PORT") from e
        self.acquired: list[str] = []
        self.tokens: list[str] = []

    # ---- plumbing ---------------------------------------------------------------------------------------------
    def _call(self, what: str, method: str, request):
        async def go():
            await getattr(self.session.stub, method)(request)
            await self.session.sync_with_coordinator()

        try:
            return self.session.loop.run_until_complete(go())
        except Exception as e:  # grpc.aio.AioRpcError: the coordinator refused (details() says why)
            details = e.details() if callable(getattr(e, "details", None)) else str(e)
            raise FwtoolError(f"labgrid: {what} failed: {details}", "see 'labgrid-client places' / "
                              "'labgrid-client reservations'", Exit.NO_DEVICE) from e

    def _rpc(self, method: str, request):
        async def go():
            return await getattr(self.session.stub, method)(request)
        return self.session.loop.run_until_complete(go())

    def sync(self) -> None:
        self.session.loop.run_until_complete(self.session.sync_with_coordinator())

    def place(self, name: str):
        self.sync()
        p = self.session.places.get(name)
        if p is None:
            known = ", ".join(sorted(self.session.places)) or "none"
            raise NoDevice(f"labgrid place '{name}' does not exist (places: {known})",
                           "name an existing place (labgrid-client places), or set LG_PLACE")
        return p

    def places_with(self, tags: dict[str, str]) -> list[str]:
        self.sync()
        return sorted(n for n, p in self.session.places.items() if all(p.tags.get(k) == v for k, v in tags.items()))

    # ---- places -----------------------------------------------------------------------------------------------
    def create_place(self, name: str, patterns: list[str], tags: dict[str, str]) -> None:
        pb2 = self.pb2
        self._call(f"creating place {name}", "AddPlace", pb2.AddPlaceRequest(name=name))
        for pat in patterns:
            self._call(f"adding match {pat}", "AddPlaceMatch", pb2.AddPlaceMatchRequest(placename=name, pattern=pat))
        self._call("setting tags", "SetPlaceTags", pb2.SetPlaceTagsRequest(placename=name, tags=tags))

    def acquire(self, name: str) -> None:
        p = self.place(name)
        if p.acquired:
            raise NoDevice(f"labgrid place '{name}' is acquired by {p.acquired}",
                           f"wait, pick another place, or reserve by tags (--labgrid-tags); "
                           f"'labgrid-client -p {name} release' if it is yours")
        self._call(f"acquiring {name}", "AcquirePlace", self.pb2.AcquirePlaceRequest(placename=name))
        self.acquired.append(name)

    def release(self, name: str) -> None:
        if name in self.acquired:
            self.acquired.remove(name)
            self._call(f"releasing {name}", "ReleasePlace", self.pb2.ReleasePlaceRequest(placename=name))

    def reserve(self, tags: dict[str, str], count: int, wait_s: float, on_wait=None) -> list[str]:
        """Reserve ``count`` places matching ``tags`` (one reservation each), wait until all are allocated, and
        return their names. Cancelled again by close()."""
        from labgrid.remote.common import Reservation, ReservationState

        pb2 = self.pb2
        matching = self.places_with(tags)
        if len(matching) < count:
            raise NoDevice(f"{len(matching)} labgrid place(s) have the tags {_tags(tags)}, {count} wanted",
                           "ask for fewer --boards, or tag more places ('labgrid-client -p PLACE set-tags "
                           "board=pico')")
        for _ in range(count):
            req = pb2.CreateReservationRequest(filters={"main": pb2.Reservation.Filter(filter=tags)}, prio=0.0)
            try:
                res = Reservation.from_pb2(self._rpc("CreateReservation", req).reservation)
            except Exception as e:
                raise FwtoolError(f"labgrid: reserving {_tags(tags)} failed: {e}", None, Exit.NO_DEVICE) from e
            self.tokens.append(res.token)
        deadline = time.monotonic() + wait_s
        announced = False
        while True:
            places, waiting = [], 0
            for token in self.tokens:
                r = Reservation.from_pb2(self._rpc("PollReservation", pb2.PollReservationRequest(token=token))
                                         .reservation)
                if r.state is ReservationState.waiting:
                    waiting += 1
                else:
                    places += [n for names in r.allocations.values() for n in names]
            if not waiting:
                return places
            if time.monotonic() >= deadline:
                raise FwtoolError(f"{waiting} of {count} place(s) with {_tags(tags)} were not free within "
                                  f"{wait_s:g} s", "wait longer (--labgrid-wait), or ask for fewer --boards",
                                  Exit.TIMEOUT)
            if on_wait and not announced:
                on_wait(f"waiting up to {wait_s:g} s for {waiting} labgrid place(s) with {_tags(tags)}…")
                announced = True
            time.sleep(0.5)

    def reservations(self) -> list:
        """The coordinator's open reservations (labgrid Reservation objects)."""
        from labgrid.remote.common import Reservation

        res = self._rpc("GetReservations", self.pb2.GetReservationsRequest()).reservations
        return [Reservation.from_pb2(r) for r in res]

    def close(self) -> None:
        """Release acquired places, cancel reservations, end the session (also after errors)."""
        for name in list(self.acquired):
            try:
                self.release(name)
            except FwtoolError:
                pass
        for token in self.tokens:
            try:
                self._rpc("CancelReservation", self.pb2.CancelReservationRequest(token=token))
            except Exception:  # already gone (coordinator restarted, or it expired)
                pass
        self.tokens = []
        try:
            self.session.loop.run_until_complete(self.session.stop())
            self.session.loop.run_until_complete(self.session.close())
        except Exception:
            pass

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- resources --------------------------------------------------------------------------------------------
    def serial_port(self, name: str) -> PlacePort | None:
        """The place's serial console, or None while it is not available (the board re-enumerating)."""
        p = self.place(name)
        for (_rname, cls), entry in self.session.get_target_resources(p).items():
            if cls in SERIAL_CLASSES:
                args = dict(entry.args)
                if not entry.avail or (cls == "NetworkSerialPort" and not args.get("port")):
                    return None
                return PlacePort(place=name, url=port_url(cls, args), host=args.get("host", "localhost"),
                                 port=args.get("port"), protocol=args.get("protocol", "rfc2217"), cls=cls, args=args,
                                 extra=dict(entry.extra or {}), tags=dict(p.tags))
        raise NoDevice(f"labgrid place '{name}' has no serial port resource",
                       "add a USBSerialPort (exported through ser2net) or a NetworkSerialPort to its exporter group")

    def wait_port(self, name: str, wait_s: float, before: PlacePort | None = None, settle_s: float = 2.0) -> PlacePort:
        """The place's serial port after a flash: waits while it is unavailable (the board re-enumerating, the
        exporter restarting ser2net on a new TCP port); a port that stayed the same is taken after ``settle_s``."""
        t0 = time.monotonic()
        while True:
            now = self.serial_port(name)
            changed = now is not None and (before is None or now.url != before.url)
            if changed or (now is not None and time.monotonic() - t0 >= min(settle_s, wait_s)):
                return now
            if time.monotonic() - t0 >= wait_s:
                raise FwtoolError(f"the serial port of labgrid place '{name}' did not come back within {wait_s:g} s",
                                  "check the board on the exporter ('labgrid-client -p PLACE show')", Exit.LOST_DEVICE)
            time.sleep(0.2)


def _tags(tags: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in tags.items()) or "(any)"

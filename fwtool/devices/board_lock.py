"""One device, one user: the board lock (issue 29 item 4; docs/concurrency.md "One board, one user").

A board is known by its stable identities (:func:`identities`): its USB port path ("usb 1-1.3", which survives the
re-enumeration between app and BOOTSEL mode), its USB serial number (the app's flash unique id, a probe's UID), and
failing both its port (a device path or a ``socket://``/``rfc2217://`` URL). Each identity has two lock files
(``core/locks.py`` flocks, released by the kernel when a process dies in any way):

* ``<id>.lock``, the board: held by whoever uses the board now — a flash, a ``validate --device`` run from its flash
  to its last line read, or a monitor;
* ``<id>.want``, the queue of exclusive users: a flash (or validate) takes it first, so two of them on one board
  are one after the other (the second waits with one line naming the first, or exits 11 with ``--no-wait``).

A monitor holds the board *yieldably* (:class:`Yieldable`): its record says so, and while it reads it looks at the
``.want`` lock on every poll. When an exclusive user holds that (a flash it did not start), the monitor closes the
port and lets go of the board; the flash, which was waiting on ``.lock``, gets it. The flash holds ``.want`` until it
ends, so the monitor knows the flash is still going; once ``.want`` is free again the monitor takes the board back
and reopens the port the way it does after a reset (the reconnect logic in monitor/reader.py). An exclusive user
never exits 11 because of a monitor: the monitor always yields.

The lock files live in ``FWTOOL_BOARD_LOCKS`` or the per-user runtime folder (``/run/user/UID/fwtool/boards``;
:func:`lock_dir` for the fallbacks).
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from fwtool.core import locks, ui
from fwtool.core.errors import Busy
from fwtool.core.paths import cache_dir

YIELDS = "(yields the board to a flash)"  # in a monitor's holder record
YIELD_LIMIT_S = 15.0  # a monitor lets go on its next poll; one that has not by then is stopped or hung
# a Linux board's output over SSH is a stream of its own for every reader (journalctl -f / the program's output)
UNLOCKED_SCHEMES = ("ssh://",)
_keep: list[contextlib.ExitStack] = []  # open keep() sessions of this process (innermost last)


def lock_dir() -> Path:
    """``FWTOOL_BOARD_LOCKS``; else the user's runtime folder (``$XDG_RUNTIME_DIR`` or ``/run/user/UID``, one per
    user for every process whatever its cache); else a private folder in the temporary folder; else the cache."""
    env = os.environ.get("FWTOOL_BOARD_LOCKS")
    if env:
        return Path(env)
    for runtime in (os.environ.get("XDG_RUNTIME_DIR", ""), f"/run/user/{os.getuid()}"):
        if runtime and os.path.isdir(runtime) and os.access(runtime, os.W_OK):
            return Path(runtime) / "fwtool" / "boards"
    private = Path(tempfile.gettempdir()) / f"fwtool-{os.getuid()}"
    try:
        private.mkdir(mode=0o700, exist_ok=True)
        if private.stat().st_uid == os.getuid() and not private.is_symlink():
            return private / "boards"
    except OSError:
        pass
    return cache_dir() / "boards"


def identities(serial: str | None = None, location: str | None = None, port: str | None = None) -> list[str]:
    """The identities of one board, most stable first: "usb 1-1.3", "serial E6614103E7452D2F"; "port
    /dev/ttyACM0" (its real path) only when neither is known. A pyserial location's interface part ("1-1.3:1.0")
    is dropped: every interface of a board is one board."""
    out = []
    loc = (location or "").split(":")[0].strip()
    if loc:
        out.append(f"usb {loc}")
    if serial and str(serial).strip():
        out.append(f"serial {str(serial).strip()}")
    if not out and port and not port.lower().startswith(UNLOCKED_SCHEMES):
        out.append(f"port {port if '://' in port else os.path.realpath(port)}")
    return out


def of_device(device) -> list[str]:
    """:func:`identities` of a :class:`fwtool.devices.device.Device` (flash) or a PortInfo (monitor)."""
    if hasattr(device, "mode"):  # a Device: its port, or the mounted BOOTSEL drive (flash --drive)
        port = device.port or (str(device.drive) if device.drive is not None else None)
    else:
        port = getattr(device, "device", None)
    return identities(getattr(device, "serial", None) or getattr(device, "serial_number", None),
                      getattr(device, "location", None), port)


def lock_file(identity: str, kind: str = "lock") -> Path:
    """The board lock file (``kind`` "lock") or queue lock file ("want") of one identity."""
    return _file(identity, f".{kind}")


def _file(identity: str, suffix: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", identity)[:60]
    return lock_dir() / f"{safe}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}{suffix}"


def describe(ids: Iterable[str]) -> str:
    ids = list(ids)
    return "board " + (", ".join(ids) if ids else "(unknown)")


def _yieldable(record: str | None) -> bool:
    return bool(record) and YIELDS in record


@contextlib.contextmanager
def claim(ids: list[str], *, wait: bool | None = None, on_event: Callable[[str], None] | None = None,
          on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
    """Use the board alone while the block runs (a flash, a validate): queue behind another exclusive user (wait,
    or Busy: exit 11), then ask a monitor holding the board to let go and wait until it has. Inside a
    :func:`keep` session the board stays claimed until the session ends. ``on_event`` gets "waiting" (queued
    behind another user), "asked" (a monitor was asked to yield), "acquired"."""
    ids = sorted(set(ids))
    if not ids:
        yield
        return
    what = describe(ids)
    event = on_event or (lambda e: None)
    stack = contextlib.ExitStack()
    try:
        for i in ids:  # every exclusive user takes the queue locks first, in one order: no deadlock
            stack.enter_context(locks.hold(_file(i, ".want"), what, wait=wait, on_wait=on_wait,
                                           on_event=lambda e: e == "waiting" and event("waiting")))
        for i in ids:
            lock = _file(i, ".lock")
            try:
                stack.enter_context(locks.hold(lock, what, wait=False))
            except Busy:
                record = locks.holder(lock)
                if _yieldable(record) or not record:  # a monitor (or one that has not written its record yet,
                    # or a holder leaving): it lets go on its next poll, seeing the queue lock held
                    if record:
                        (on_wait or ui.info)(f"asking {record.replace(' ' + YIELDS, '')} to let go of {what}")
                        event("asked")
                    _after_yield(stack, lock, what, record or "another process")
                else:
                    stack.enter_context(locks.hold(lock, what, wait=wait, on_wait=on_wait))
        event("acquired")
    except BaseException:
        stack.close()
        raise
    try:
        yield
    finally:
        if _keep:
            _keep[-1].push(stack.pop_all().__exit__)  # released when the keep() session ends
        stack.close()


def _after_yield(stack: contextlib.ExitStack, lock: Path, what: str, record: str,
                 limit_s: float | None = None) -> None:
    """Take the board lock (onto ``stack``) once the monitor holding it has let go (it does on its next poll,
    within ~0.1 s); Busy naming it when it has not within ``limit_s`` (a stopped or hung monitor)."""
    limit_s = YIELD_LIMIT_S if limit_s is None else limit_s
    deadline = time.monotonic() + limit_s
    while True:
        try:
            stack.enter_context(locks.hold(lock, what, wait=False))
            return
        except Busy:
            if time.monotonic() >= deadline:
                who = record.replace(" " + YIELDS, "")
                raise Busy(f"{who} did not let go of {what} within {limit_s:g} s",
                           "stop that monitor (or resume it, if it was suspended) and run the command again") from None
            time.sleep(0.02)  # the monitor's poll interval: the lock itself decides who has the board


@contextlib.contextmanager
def keep() -> Iterator[None]:
    """The boards claimed inside this block stay claimed until it ends: ``validate --device`` holds its board from
    the flash to the last result line, so no other flash can come between."""
    stack = contextlib.ExitStack()
    _keep.append(stack)
    try:
        yield
    finally:
        _keep.remove(stack)
        stack.close()


class Yieldable:
    """A monitor's hold on its board (see the module docstring). ``acquire(wait)`` at the start (waits behind a
    flash, or Busy with ``--no-wait``); then the reader asks ``wanted()`` on every poll and, when True, closes its
    port and calls ``release()``; ``try_reacquire()`` is True once the flash is over and the board is its again."""

    def __init__(self, ids: list[str], on_event: Callable[[str], None] | None = None):
        self.ids = sorted(set(ids))
        self.what = describe(self.ids)
        self.on_event = on_event or (lambda e: None)
        self._stack: contextlib.ExitStack | None = None
        self.yielded_to = ""  # the record of the user it let go for

    @property
    def held(self) -> bool:
        return self._stack is not None or not self.ids

    def _take(self, wait: bool | None, on_wait=None) -> None:
        stack = contextlib.ExitStack()
        try:
            for i in self.ids:
                stack.enter_context(locks.hold(_file(i, ".lock"), self.what, wait=wait, note=YIELDS,
                                               on_wait=on_wait))
        except BaseException:
            stack.close()
            raise
        self._stack = stack

    def acquire(self, wait: bool | None = None, on_wait: Callable[[str], None] | None = None) -> None:
        """Take the board: at once, or after the flash holding it (waiting, or Busy with waiting off). Another
        monitor on it is refused at once (Busy): it would never end by itself."""
        if self.held:
            return
        try:
            self._take(False)
        except Busy:
            for i in self.ids:
                record = locks.holder(_file(i, ".lock"))
                if _yieldable(record):
                    raise Busy(f"{self.what} is in use by {record.replace(' ' + YIELDS, '')}",
                               "a board has one reader at a time: stop that monitor, or read its output there") \
                        from None
            self._take(wait, on_wait)
        self.on_event("acquired")

    def wanted(self) -> str | None:
        """The record of an exclusive user waiting for the board (a flash it did not start), or None."""
        if self._stack is None:
            return None
        for i in self.ids:
            want = _file(i, ".want")
            if locks.holds(want):  # this process's own flash ('fwtool run' keeps its claim while it monitors)
                continue
            record = locks.holder(want)
            if record is not None:
                return record or "another process"
        return None

    def release(self, to: str = "") -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            self.yielded_to = to
            stack.close()
            self.on_event("released")

    def try_reacquire(self) -> bool:
        """Take the board back if nobody queues for it and nobody holds it (never waits)."""
        if self.held:
            return True
        if any(not locks.holds(_file(i, ".want")) and locks.holder(_file(i, ".want")) is not None for i in self.ids):
            return False
        try:
            self._take(wait=False)
        except Busy:
            return False
        self.yielded_to = ""
        self.on_event("reacquired")
        return True

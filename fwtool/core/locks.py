"""One lock per thing two fwtool processes must not write at once: a build folder, a pinned tree's cache entry, a
cache file's read-modify-write, a board. The one helper for it (docs/concurrency.md).

Why ``fcntl.flock`` on a lock file (not a PID file, not the ``filelock`` package): the kernel releases a flock when
its process dies in any way (SIGKILL, OOM, power-off of a container), so a lock left by a killed process can never
block anyone — there is no staleness to guess from PIDs or ages. ``filelock``'s Unix lock is the same flock call;
using it would add a dependency for no behaviour fwtool needs. The lock file also records its holder ("fwtool build
pid 1234") so the process that waits can say whom it waits for; a record left behind by a killed holder is
reported as taken over.

The second process waits, with one line like cargo's "Blocking waiting for file lock on build directory", unless
waiting is off (``fwtool --no-wait``, ``build --no-wait`` or ``FWTOOL_NO_WAIT=1``): then it fails at once with
exit 11 (busy) naming the holder.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import sys
import threading
from pathlib import Path
from typing import Callable, Iterator

from fwtool.core import ui
from fwtool.core.errors import Busy, MissingTool

LOCK_NAME = ".fwtool.lock"  # the lock file inside a locked folder (outdir.BUILD_MARKERS knows it)
state = {"no_wait": False}  # set by 'fwtool --no-wait' / 'fwtool build --no-wait'
_held: dict[str, int] = {}  # lock files this process holds -> depth (a build inside 'fwtool run' re-enters)
_guard = threading.Lock()


def set_no_wait(enabled: bool) -> None:
    state["no_wait"] = bool(enabled) or state["no_wait"]


def no_wait() -> bool:
    return state["no_wait"] or os.environ.get("FWTOOL_NO_WAIT", "").strip().lower() in ("1", "true", "yes", "on")


def command_name() -> str:
    """``fwtool build`` / ``fwtool vendor sync`` (the command this process runs), for the holder record."""
    words = [a for a in sys.argv[1:] if not a.startswith("-")]
    return " ".join(["fwtool", *words[:2 if words[:1] in (["vendor"], ["lab"]) else 1]])  # groups: 'vendor sync'


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_record(fd: int) -> tuple[str, int | None]:
    """The holder record ("fwtool build pid 1234") and its pid; ("", None) when empty or unreadable."""
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        return "", None
    m = re.search(r"\bpid (\d+)", text)
    return text, int(m.group(1)) if m else None


def describe_holder(text: str) -> str:
    return text if text else "another process (it wrote no record yet)"


@contextlib.contextmanager
def hold(lock_file: Path, what: str, *, wait: bool | None = None,
         on_wait: Callable[[str], None] | None = None, on_event: Callable[[str], None] | None = None,
         remove_if_alone: bool = False, note: str = "") -> Iterator[None]:
    """Hold the exclusive lock ``lock_file`` while the block runs. ``what`` names the thing for messages ("build
    folder build/pico"). Busy → wait (one line on stderr via ``on_wait``) or, with waiting off, raise
    :class:`~fwtool.core.errors.Busy` (exit 11). ``on_event`` gets "acquired", "waiting", "took-over" (tests
    synchronise on these instead of sleeping). ``remove_if_alone``: the lock file's folder was made for it (a
    refused build into a new ``--out``): remove both at the end when nothing else was written there. ``note`` is
    added to the holder record ("fwtool monitor pid 12 (yields the board to a flash)")."""
    lock_file = Path(lock_file)
    key = os.path.abspath(lock_file)
    with _guard:
        if key in _held:  # this process already holds it (e.g. the build inside 'fwtool run')
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _guard:
                _held[key] -= 1
        return
    event = on_event or (lambda e: None)
    fd = _acquire(lock_file, what, wait, on_wait, event)
    try:
        text, pid = _read_record(fd)
        if text and pid is not None and pid != os.getpid() and not _pid_alive(pid):
            ui.info(f"took over the lock on {what}: its holder ({text}) is no longer running")
            event("took-over")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{command_name()} pid {os.getpid()}{' ' + note if note else ''}\n".encode(), 0)
        with _guard:
            _held[key] = 1
        event("acquired")
        try:
            yield
        finally:
            with _guard:
                _held.pop(key, None)
            with contextlib.suppress(OSError):
                # A clean release removes the lock file (still held: a waiter sees the unlink, _acquire re-checks
                # and starts over), so it leaves nothing behind; a killed holder's file stays and is "taken over".
                os.ftruncate(fd, 0)
                lock_file.unlink()
                if remove_if_alone:
                    lock_file.parent.rmdir()  # only if empty: the new folder a refused build made for its lock
    finally:
        os.close(fd)  # closing the last descriptor releases the flock


def _acquire(lock_file: Path, what: str, wait: bool | None, on_wait, event) -> int:
    """An open descriptor of ``lock_file`` holding its flock (waiting, or Busy). Re-opens when the file was
    removed or replaced while this process waited (the lock held would be on a file nobody else opens)."""
    announced = False
    while True:
        try:
            lock_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_file, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as e:
            raise MissingTool(f"cannot create the lock file for {what} ({lock_file}: {e.strerror})",
                              "make the folder writable, or choose another one") from e
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise
                holder = describe_holder(_read_record(fd)[0])
                if (no_wait() if wait is None else not wait):
                    raise Busy(f"{what} is in use by {holder}",
                               "wait for it to finish and run the command again, or run it without --no-wait to "
                               "wait for the lock") from None
                if not announced:
                    (on_wait or ui.info)(f"Blocking: waiting for the lock on {what} (held by {holder})")
                    event("waiting")
                    announced = True
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.fstat(fd).st_ino == os.stat(lock_file).st_ino
            except FileNotFoundError:
                same = False
            if same:
                return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)  # the holder removed the file as it left: lock the one that is there now


def folder_lock(folder: Path) -> Path:
    """The lock file of an output folder (inside it: the folder is the unit two builds must not share)."""
    return Path(folder) / LOCK_NAME


def sibling_lock(path: Path) -> Path:
    """The lock file for a cache entry or file ``path``: ``.<name>.lock`` beside it (it must outlive a rename or
    rmtree of ``path`` itself)."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def holds(lock_file: Path) -> bool:
    """True when this process holds ``lock_file`` (an outer hold of the same thing, e.g. 'fwtool run')."""
    with _guard:
        return os.path.abspath(lock_file) in _held


def holder(lock_file: Path) -> str | None:
    """The record of whoever holds ``lock_file`` now ("" when it wrote none yet), or None when nobody does (a look,
    not a claim: by the time the caller acts the holder may have changed, so it still waits on the lock itself).
    This process's own holds count as held."""
    lock_file = Path(lock_file)
    with _guard:
        if os.path.abspath(lock_file) in _held:
            return f"{command_name()} pid {os.getpid()}"
    try:
        fd = os.open(lock_file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None  # no file: a clean release removes it
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                return None
            return _read_record(fd)[0]
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)

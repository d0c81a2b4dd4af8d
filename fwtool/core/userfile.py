"""Reading a file the user named (model, --input, --labels, representative data, config): the one place that
checks it is a regular file of a sane size *before* reading it, so a directory, FIFO, device, socket or symlink
loop gets its own one-line cause instead of a hang, an unbounded read or "does not exist"."""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from fwtool.core.errors import BadInput, FwtoolError
from fwtool.core.escape import terminal


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check(path: Path | str, what: str, max_bytes: int, fix: str, error: type[FwtoolError] = BadInput) -> int:
    """Raise ``error`` unless ``path`` is a readable regular file of at most ``max_bytes``; return its size.

    ``what`` names it in the message ("model file", "labels file"); ``fix`` is the fix for a missing file."""
    shown = terminal(os.fspath(path))
    try:
        st = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise error(f"{what} {shown} is a symlink loop", "point the path at a real file") from e
        if e.errno == errno.ENAMETOOLONG:
            raise error(f"{what} path is too long ({len(os.fspath(path))} characters)", fix) from e
        if e.errno in (errno.EACCES, errno.EPERM):
            raise error(f"{what} {shown} cannot be read (permission denied)",
                        "give yourself read permission on it and on its folders") from e
        if e.errno == errno.ENOTDIR:
            raise error(f"{what} {shown} does not exist (a part of the path is a file, not a folder)", fix) from e
        if e.errno == errno.ENOENT:
            raise error(f"{what} {shown} does not exist", fix) from e
        raise error(f"{what} {shown} cannot be read ({e.strerror or type(e).__name__})", fix) from e
    except ValueError as e:  # embedded NUL
        raise error(f"{what} path contains a NUL byte", fix) from e
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {shown} is {_kind(st.st_mode)}, not a file", fix)
    if st.st_size > max_bytes:
        raise error(f"{what} {shown} is {st.st_size:,} bytes, more than the {max_bytes:,} fwtool accepts", fix)
    if not os.access(path, os.R_OK):
        raise error(f"{what} {shown} cannot be read (permission denied)", "give yourself read permission on it")
    return st.st_size


def read_bytes(path: Path | str, what: str, max_bytes: int, fix: str,
               error: type[FwtoolError] = BadInput) -> bytes:
    """:func:`check`, then read at most ``max_bytes`` (the file may grow between the two)."""
    check(path, what, max_bytes, fix, error)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as e:
        raise error(f"{what} {terminal(os.fspath(path))} cannot be read ({e.strerror or type(e).__name__})",
                    fix) from e
    if len(data) > max_bytes:
        raise error(f"{what} {terminal(os.fspath(path))} grew past {max_bytes:,} bytes while being read", fix)
    return data

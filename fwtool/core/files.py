"""Writing files so that a reader never sees half of one (the one helper for atomic writes), and the JSON files
fwtool keeps for itself (caches, records), read and written the one tolerant way."""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` unless ``path`` already holds it (so make/ninja rebuild only what changed); True if written."""
    path = Path(path)
    try:
        if path.is_file() and path.read_text() == text:
            return False
    except (OSError, UnicodeDecodeError):
        pass
    atomic_write(path, text)
    return True


def copy_atomic(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` atomically."""
    atomic_write(dst, Path(src).read_bytes())


def read_json(path: Path, max_bytes: int = 1 << 20):
    """The JSON value in ``path``, or None when it is missing, not a regular file (never blocks on a FIFO), larger
    than ``max_bytes``, unreadable or not JSON. For fwtool's own caches: the caller checks the value's shape."""
    path = Path(path)
    try:
        if not path.is_file() or path.stat().st_size > max_bytes:
            return None
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data, indent: int | None = None) -> bool:
    """:func:`atomic_write` of ``data`` as JSON; False (nothing written) when the folder is not writable — a cache
    that cannot be written only costs time."""
    try:
        atomic_write(path, json.dumps(data, indent=indent))
    except OSError:
        return False
    return True


def file_sha256(path: Path) -> str:
    """The sha256 (hex) of a file's bytes, read in 1 MiB blocks (e.g. the firmware image a check ran)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

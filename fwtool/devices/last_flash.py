"""The board flashed last (build/.fwtool-last-flash.json): written by flash, read by monitor and run."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from fwtool.core.files import atomic_write

LAST_FLASH_FILE = Path("build") / ".fwtool-last-flash.json"


def remember(serial: str, board: str, path: Path = LAST_FLASH_FILE) -> None:
    """Record the board flashed last so 'fwtool monitor' prefers it; a read-only folder only loses that."""
    try:
        atomic_write(path, json.dumps({"serial": serial, "board": board}))
    except OSError:
        pass


def read_last_flash(path: Path = LAST_FLASH_FILE) -> dict:
    """``{"serial": ..., "board": ..., "age_s": ...}``; {} when absent or unreadable."""
    try:
        d = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(d, dict):
        return {}
    d = {k: v for k, v in d.items() if k in ("serial", "board") and isinstance(v, str) and v}
    try:
        d["age_s"] = max(0.0, time.time() - os.stat(path).st_mtime)
    except OSError:
        pass
    return d

"""Output helpers shared by all commands: human text and progress on stderr, results (and --json) on stdout."""
from __future__ import annotations

import json
import sys

from rich.console import Console

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

state = {"json": False}


def set_json(enabled: bool) -> None:
    state["json"] = bool(enabled)


def is_json() -> bool:
    return state["json"]


def emit_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
    sys.stdout.flush()


def emit_json_line(obj) -> None:
    """One compact JSON object per line (a stream of records, like 'fwtool monitor --json')."""
    sys.stdout.write(json.dumps(obj, default=str) + "\n")
    sys.stdout.flush()


def info(msg: str) -> None:
    """Progress/status text: stderr, so stdout stays clean for --json."""
    err.print(msg)


def bar(used: int, total: int, width: int = 30) -> str:
    frac = 0 if total <= 0 else min(used / total, 1.0)
    filled = int(round(frac * width))
    return "[" + "=" * filled + " " * (width - filled) + "]"


def human(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"

"""Output helpers shared by all commands: human text and progress on stderr, results (and --json) on stdout.

Console text is text: both consoles are built with ``markup=False`` and status lines are wrapped in
``rich.text.Text``, so a label, a path or a device name containing ``[`` ``]`` or ``[/x]`` is printed exactly as
given (rich would otherwise drop ``[yes]`` as an unknown style and fail on ``[/x]``). Output that is styled on
purpose passes ``markup=True`` (and escapes the user text it embeds with ``rich.markup.escape``) or builds
``Text`` objects itself.
"""
from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.status import Status
from rich.text import Text


def _text(value):
    return Text(value) if isinstance(value, str) else value


class _TextStatus(Status):
    """rich's Status parses a str as markup (Spinner uses Text.from_markup); this one shows it as it is."""

    def __init__(self, status, **kw):
        super().__init__(_text(status), **kw)

    def update(self, status=None, **kw):
        super().update(_text(status) if status is not None else None, **kw)


class _TextConsole(Console):
    def status(self, status, *, spinner: str = "dots", spinner_style="status.spinner", speed: float = 1.0,
               refresh_per_second: float = 12.5) -> Status:
        return _TextStatus(status, console=self, spinner=spinner, spinner_style=spinner_style, speed=speed,
                           refresh_per_second=refresh_per_second)


err = _TextConsole(stderr=True, highlight=False, soft_wrap=True, markup=False)
out = _TextConsole(highlight=False, soft_wrap=True, markup=False)

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
    err.print(msg, markup=False)


def bar(used: int, total: int, width: int = 30) -> str:
    frac = 0 if total <= 0 else min(used / total, 1.0)
    filled = int(round(frac * width))
    return "[" + "=" * filled + " " * (width - filled) + "]"


def human(n: int) -> str:
    for unit, size in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if abs(n) >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"

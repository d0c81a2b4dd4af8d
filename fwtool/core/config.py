"""The per-user config file (TOML): ``offline`` and vendor overrides::

    offline = true                        # never fetch a missing pinned tree on first use (like fwtool --offline)

    [vendor.pico-sdk]
    path = "/home/me/pico/pico-sdk"       # use this checkout instead of the cache (like PICO_SDK_PATH)
    [vendor.pico-tflmicro]
    url = "/srv/mirrors/pico-tflmicro.git"   # clone from a mirror instead of the manifest URL
    [boards]
    dirs = ["~/pcbs/boards"]                 # folders of your own board files (docs/boards.md)

A config file fwtool cannot use (unreadable, not UTF-8, not TOML, wrong types) is a bad environment: exit 4 with
the file, the key and the fix.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from fwtool.core import userfile
from fwtool.core.errors import MissingTool
from fwtool.core.escape import terminal
from fwtool.core.paths import config_file
from fwtool.core.tomlcompat import tomllib

MAX_CONFIG_BYTES = 1024 * 1024
VENDOR_KEYS = {"path": str, "url": str}
BOARDS_KEYS = ("dirs",)


def _bad(path: Path, what: str) -> MissingTool:
    return MissingTool(f"config file {terminal(path)}: {what}",
                       "fix or delete that file, or point FWTOOL_CONFIG elsewhere (format: docs/sdk-trees.md)")


def _validate_boards(path: Path, d: dict) -> None:
    boards = d.get("boards", {})
    if not isinstance(boards, dict):
        raise _bad(path, f"'boards' must be a table ([boards] dirs = [...]), not {type(boards).__name__}")
    for key in boards:
        if key not in BOARDS_KEYS:
            raise _bad(path, f"unknown key 'boards.{terminal(key)}' (known: {', '.join(BOARDS_KEYS)})")
    dirs = boards.get("dirs", [])
    if not isinstance(dirs, list) or not all(isinstance(x, str) and x and "\0" not in x for x in dirs):
        raise _bad(path, f"'boards.dirs' must be a list of folder names, not {terminal(repr(dirs))[:60]}")


def _validate(path: Path, d: dict) -> dict:
    if "offline" in d and not isinstance(d["offline"], bool):
        raise _bad(path, f"'offline' must be true or false, not {type(d['offline']).__name__} "
                         f"{terminal(repr(d['offline']))[:60]}")
    _validate_boards(path, d)
    vendor = d.get("vendor", {})
    if not isinstance(vendor, dict):
        raise _bad(path, f"'vendor' must be a table ([vendor.NAME] sections), not {type(vendor).__name__}")
    for name, entry in vendor.items():
        if not isinstance(entry, dict):
            raise _bad(path, f"'vendor.{terminal(name)}' must be a table with path/url keys, "
                             f"not {type(entry).__name__}")
        for key, value in entry.items():
            want = VENDOR_KEYS.get(key)
            if want is None:
                raise _bad(path, f"unknown key 'vendor.{terminal(name)}.{terminal(key)}' (known: path, url)")
            if not isinstance(value, want) or not value:
                raise _bad(path, f"'vendor.{terminal(name)}.{key}' must be a non-empty string, "
                                 f"not {type(value).__name__} {terminal(repr(value))[:60]}")
            if "\0" in value:
                raise _bad(path, f"'vendor.{terminal(name)}.{key}' contains a NUL character")
    return d


@lru_cache(maxsize=1)
def load() -> dict:
    path = config_file()
    if not os.path.lexists(path):
        return {}
    raw = userfile.read_bytes(path, "config file", MAX_CONFIG_BYTES,
                              "fix the path in FWTOOL_CONFIG, or delete the config file", MissingTool)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _bad(path, f"not UTF-8 text (byte {e.start})") from e
    try:
        return _validate(path, tomllib.loads(text))
    except tomllib.TOMLDecodeError as e:
        raise _bad(path, f"not valid TOML ({terminal(e)})") from e


def vendor_override(name: str) -> dict:
    return dict(load().get("vendor", {}).get(name, {}))


def board_dirs() -> list[Path]:
    """``[boards] dirs``: folders of the user's own board files (relative ones: to the config file's folder)."""
    base = config_file().parent
    return [base / expand_path(x, "boards.dirs entry") for x in load().get("boards", {}).get("dirs", [])]


def expand_path(value: str, what: str) -> Path:
    """``~`` / ``~user`` expanded; an unknown user is a config error, not a silently missing folder."""
    try:
        p = Path(value).expanduser()
    except RuntimeError:  # pathlib: "Could not determine home directory" for ~unknownuser
        p = Path(value)
    if str(p).startswith("~"):
        user = str(p)[1:].split("/", 1)[0] or "(you)"
        raise MissingTool(f"{what} '{terminal(value)}' names user '{terminal(user)}', who does not exist here",
                          "use an absolute path (or ~/ for your own home folder)")
    return p

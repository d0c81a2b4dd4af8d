"""The build output folder: its default name (:func:`default_out_dir`, the one place that spells
``build/<board>[-suffix]``), refused when it is not a safe place for a build, and cleared of fwtool's previous
outputs at the start of every build attempt.

The rule (docs/exit-codes.md "Failure rules"): any failed or refused build leaves no ``firmware.*`` and no ``report.json`` in
its output folder, so ``fwtool build ...; fwtool flash`` can never flash an image of an earlier command. Only files
fwtool itself writes are removed; nothing else in the folder is touched.
"""
from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from fwtool.core.boards import get_board
from fwtool.core.errors import BadInput, FwtoolError, MissingTool
from fwtool.core import escape
from fwtool.core import locks
from fwtool.core.locks import LOCK_NAME
from fwtool.core.escape import terminal

BUILD_ROOT = Path("build")  # default output folders live under it, relative to the working folder
REPORT_NAME = "report.json"
# Every file a build may leave in its output folder. All are removed before a build writes new ones, so a failed
# or refused build never leaves an older image that looks current.
OUTPUT_NAMES = ("firmware.uf2", "firmware.hex", "firmware.elf", "firmware.bin", "firmware.map", REPORT_NAME)
# What a previous fwtool build leaves (any one of these marks the folder as fwtool's).
BUILD_MARKERS = (REPORT_NAME, "project", "cmake", "build.log", LOCK_NAME, *OUTPUT_NAMES)
NAME_MAX, PATH_MAX = 255, 4095
# Characters CMake or the pico-sdk's own CMake code cannot have in a build folder path (each was tried: try_compile
# breaks on '"', ';' splits lists, '$' is expanded by legacy source-file expansion, '#' is refused in BYPRODUCTS).
# Spaces, parentheses, braces and non-ASCII work and are accepted.
CMAKE_UNSAFE = set(';"$#\\')


def default_out_dir(board_name: str, suffix: str | None = None, *, model: Path | str | None = None,
                    **distinct) -> Path:
    """``build/<board>`` or ``build/<board>-<suffix>`` (e.g. ``emulator``, ``inference-emu``), relative to the
    working folder: where a command writes when the user names no ``--out``. The folders validate/profile/run
    choose for their own builds also pass ``model`` and whatever else makes the build different (app, options,
    embedded vectors): the name then ends in a short hash of them (``build/pico-validate-emu-3f2a9c01d4``), so two
    such jobs of different models in one checkout (a CI matrix) never share a folder (docs/concurrency.md)."""
    name = f"{board_name}-{suffix}" if suffix else board_name
    if model is not None or distinct:
        name += "-" + build_key(model, distinct)
    return BUILD_ROOT / name


def build_key(model: Path | str | None, distinct: dict) -> str:
    """10 hex digits of sha256 over the model's bytes (its name when it is not a file, e.g. ``example:NAME``) and
    the other values that make a build different."""
    h = hashlib.sha256()
    if model is not None:
        try:
            h.update(Path(model).read_bytes())
        except OSError:
            h.update(os.fspath(model).encode("utf-8", "surrogateescape"))
    for key in sorted(distinct):
        value = distinct[key]
        h.update(f"\0{key}=".encode())
        h.update(value if isinstance(value, (bytes, bytearray)) else repr(value).encode())
    return h.hexdigest()[:10]


def requested(out_dir: Path | str | None, board: str, model: Path | str | None = None) -> Path | None:
    """The folder a build of ``board`` writes to (``--out`` or ``build/<board>``); None when the board is unknown
    and no ``--out`` was given (the build is refused and there is no folder to clean)."""
    if out_dir is not None:
        return Path(os.path.abspath(os.fspath(out_dir)))
    try:
        return Path(os.path.abspath(default_out_dir(get_board(board, model).name)))
    except FwtoolError:
        return None


@contextmanager
def locked(folder: Path) -> Iterator[None]:
    """``folder`` checked (:func:`check`), then its build lock held for the block (core/locks.py): a second build
    into it waits, or fails with --no-wait. A new folder holding only the lock after a refused build is removed
    again (a refusal writes nothing)."""
    check(folder)
    with locks.hold(locks.folder_lock(folder), f"build folder {terminal(folder)}", remove_if_alone=not folder.exists()):
        yield


def check(out_dir: Path) -> None:
    """Refuse an output folder that is a filesystem root, the home folder, a file, read-only, too long, or a
    folder holding things that are not a previous fwtool build."""
    shown = terminal(out_dir)
    fix = "pass --out with a new or empty folder (or one a previous fwtool build wrote)"
    text = os.fspath(out_dir)
    if "\0" in text:
        raise BadInput("--out contains a NUL character", fix)
    if len(text.encode("utf-8", "surrogateescape")) > PATH_MAX or \
            any(len(part.encode("utf-8", "surrogateescape")) > NAME_MAX for part in out_dir.parts):
        raise BadInput(f"--out path is too long ({len(text)} characters; a name may have {NAME_MAX} bytes)", fix)
    try:
        escape.cmake_quoted(text)  # generated build files name paths inside it
    except escape.Unrepresentable as e:
        raise BadInput(f"--out path {e}, which generated build files cannot name", fix) from e
    bad = sorted({c for c in text if c in CMAKE_UNSAFE or ord(c) < 0x20 or ord(c) == 0x7F})
    if bad:
        raise BadInput(f"--out path contains {' '.join(repr(c) for c in bad)}, which the SDK's CMake build cannot "
                       "work with (in its own generated files)", "choose an output folder path without them")
    resolved = out_dir.resolve()
    if resolved.parent == resolved:
        raise BadInput(f"--out {shown} is a filesystem root; a build writes project/, cmake/ and firmware.* there",
                       fix)
    home = Path.home().resolve()
    if resolved == home:
        raise BadInput(f"--out {shown} is your home folder itself", fix)
    if resolved.exists() and not resolved.is_dir():
        raise BadInput(f"--out {shown} is an existing file, not a folder", fix)
    if resolved.is_dir():
        try:
            entries = sorted(os.listdir(resolved))
        except OSError as e:
            raise MissingTool(f"--out {shown} cannot be listed ({e.strerror})", "fix its permissions") from e
        if entries and not any(e in BUILD_MARKERS for e in entries):
            listed = ", ".join(terminal(e) for e in entries[:5]) + (f" and {len(entries) - 5} more"
                                                                    if len(entries) > 5 else "")
            raise BadInput(f"--out {shown} is not empty and holds no previous fwtool build ({listed})", fix)
        target = resolved
    else:
        target = resolved.parent
        while not target.exists() and target.parent != target:
            target = target.parent
    if not os.access(target, os.W_OK | os.X_OK):
        raise MissingTool(f"--out {shown} cannot be written ({terminal(target)} is read-only for you)",
                          "choose a folder you can write to, or fix its permissions")


def remove_outputs(out_dir: Path) -> list[str]:
    """Remove fwtool's previous outputs (only ``firmware.*`` and ``report.json``, only regular files or links) from
    ``out_dir``; return the names removed."""
    removed = []
    for name in OUTPUT_NAMES:
        path = out_dir / name
        if path.is_symlink() or path.is_file():
            path.unlink(missing_ok=True)
            removed.append(name)
    return removed

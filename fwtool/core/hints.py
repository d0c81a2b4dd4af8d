"""Fix texts that speak of the user's board: the board's name, the options that take its image and the USB ids it
is looked for by, all derived from the board a command resolved — or "any board" wording when none is known.

One helper for every hint, so a PSoC 6 user is never told to build for ``pico`` or pass ``--uf2``.
"""
from __future__ import annotations

from fwtool.core.boards import Board, all_boards

# The flash/emulate options that take an image of each kind (fwtool flash --uf2/--elf/--bin/--hex). A board's
# [image] kind comes first; an RP2040 build also writes the ELF its UF2 was made from, so --elf is offered too.
_OPTIONS_FOR_KIND = {"uf2": ("--uf2", "--elf"), "hex": ("--hex",), "elf": ("--elf",), "bin": ("--bin",)}


def board_arg(board: Board | None) -> str:
    """``--board NAME`` for a known board, else ``--board BOARD`` (any board: 'fwtool boards' lists them)."""
    return f"--board {board.name}" if board is not None else "--board BOARD"


def image_options(board: Board | None) -> str:
    """The options that take this board's image, e.g. ``--uf2/--elf`` (RP2040) or ``--hex`` (PSoC 6); for no
    known board, every kind the built-in boards flash (``--uf2/--elf/--hex``)."""
    if board is not None:
        return "/".join(_OPTIONS_FOR_KIND.get(board.image_kind, (f"--{board.image_kind}",)))
    seen: list[str] = []
    for b in all_boards().values():
        for opt in _OPTIONS_FOR_KIND.get(b.image_kind, (f"--{b.image_kind}",)):
            if opt not in seen:
                seen.append(opt)
    return "/".join(seen)


def image_name(board: Board | None) -> str:
    """``firmware.uf2`` / ``firmware.hex`` (the file a build for the board writes and runners flash)."""
    return f"firmware.{board.image_kind}" if board is not None else "the firmware image"


def build_first(board: Board | None) -> str:
    """The fix for "no build yet": build for THIS board, or pass its image."""
    return (f"run 'fwtool build {board_arg(board)} --model MODEL.tflite' first, or pass "
            f"{image_options(board)} PATH")


def rebuild(board: Board | None) -> str:
    """The fix for "the last build's image is gone"."""
    return f"run 'fwtool build {board_arg(board)}' again, or pass {image_options(board)} PATH"


def board_or_none(name: str | None) -> Board | None:
    """The board called ``name`` if there is one (a hint never fails for an unknown board: it says "any board")."""
    if not name:
        return None
    try:
        return all_boards().get(name)
    except Exception:  # noqa: BLE001 - a broken user board file: the hint falls back to "any board"
        return None

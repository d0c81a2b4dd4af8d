"""The image to flash: the one reader (fwtool/image/firmware.py) and board check (fwtool/image/check.py), seen as
the flat ``Image`` the runners write."""
from __future__ import annotations

from pathlib import Path

from fwtool.core.errors import BadInput
from fwtool.image.check import check_for_board
from fwtool.image.firmware import KINDS, FirmwareImage, Image, read

SKIP_HINT = "--no-boot2-check"


def kind_for(path: Path, kind: str | None = None) -> str | None:
    """The kind the caller asked for, else the one the file name says (None: detect it from the content)."""
    if kind:
        return kind
    suffix = Path(path).suffix.lower().lstrip(".")
    return {"ihex": "hex"}.get(suffix, suffix) if suffix in (*KINDS, "ihex") else None


def read_file(path: Path, kind: str | None = None) -> FirmwareImage:
    """Read ``path`` (refusing what is not a valid image of its kind) before any board question is asked."""
    return read(Path(path), kind_for(path, kind))


def for_board(img: FirmwareImage, board, boot2_check: bool = True) -> Image:
    """The flat image to write on ``board``, refused if the board would not run it."""
    img = check_for_board(img, board, boot_check=boot2_check, skip_hint=SKIP_HINT)
    flat = Image.of(img)
    if flat.base % 256:
        raise BadInput(f"{img.source} starts at 0x{flat.base:08X}, not at a 256-byte page boundary",
                       f"build it for {board.name}")
    return flat


"""The one board check for a firmware image, from board data only (no family tests): flash, the BOOTSEL drive and
the virtual board give the same verdict for the same file.

* every segment inside the board's flash ``[flash_base, flash_base + flash_bytes)``;
* a UF2's family id is the board's ``uf2_family_id`` (the bootrom silently ignores other blocks);
* the check the board's boot ROM applies, named by ``board.boot_check`` (``"rp2040-boot2"``).
"""
from __future__ import annotations

from fwtool.core.boards import all_boards
from fwtool.core.errors import BadInput
from fwtool.image import boot2, picobin
from fwtool.image.firmware import FILL, FirmwareImage
from fwtool.image.uf2 import chip_of, family_name


def _rp2040_boot2(data: bytes) -> str | None:
    if boot2.ok(data):
        return None
    return ("does not start with a valid RP2040 boot2 (CRC32 at offset 252 does not match): the bootrom would not "
            "start it and would stay in BOOTSEL mode")


def _rp2350_image_def(data: bytes) -> str | None:
    if picobin.ok(data):
        return None
    return ("has no RP2350 IMAGE_DEF block in its first 4 KB (pico-sdk embeds one): the RP2350 bootrom would not "
            "start it and would stay in BOOTSEL mode")


# board.boot_check -> (bytes at flash_base it needs, problem(bytes) -> None or why the boot ROM would not run it)
BOOT_CHECKS = {boot2.NAME: (boot2.BOOT2_BYTES, _rp2040_boot2),
               picobin.NAME: (picobin.SEARCH_BYTES, _rp2350_image_def)}
NO_BOOT = "no valid boot image"  # the note a skipped boot check leaves


def boards_for_family(family_id: int) -> list[str]:
    """Names of the built-in boards whose UF2 family is ``family_id`` (the --board a refusal suggests)."""
    return sorted(b.name for b in all_boards().values() if b.uf2_family_id == family_id)


def check_for_board(img: FirmwareImage, board, *, boot_check: bool = True, whole_flash: bool = False,
                    skip_hint: str = "") -> FirmwareImage:
    """``img`` (a raw .bin placed at the board's flash base) if ``board`` would run it; else BadInput.

    ``whole_flash``: the image is all the flash holds (the virtual board's flash is otherwise erased), so the boot
    check applies even when the image does not cover the flash base. ``boot_check=False`` only notes a failed boot
    check (``--no-boot2-check``); ``skip_hint`` names that option in the fix.
    """
    if not img.placed:
        img = img.at(board.flash_base)
    lo, hi = board.flash_base, board.flash_base + board.flash_bytes
    if img.kind == "uf2" and board.uf2_family_id is not None:
        if list(img.uf2_families) != [board.uf2_family_id] or img.uf2_unflagged:
            got = ", ".join(family_name(f) for f in img.uf2_families) or "no family id"
            if img.uf2_families and img.uf2_unflagged:
                got += f" and {img.uf2_unflagged} block(s) with no family id"
            theirs, ours = chip_of(img.uf2_families[0] if img.uf2_families else None), chip_of(board.uf2_family_id)
            if theirs and ours and theirs != ours:  # a Pico image for a Pico 2, or the reverse: name both chips
                others = boards_for_family(img.uf2_families[0])
                raise BadInput(f"{img.source} is an {theirs} image (UF2 family {got}), but {board.name} is an "
                               f"{ours} board ({family_name(board.uf2_family_id)}): its bootrom would silently "
                               "ignore it; nothing was written",
                               (f"flash it with --board {others[0]} ({theirs}), or " if others else "")
                               + f"rebuild it for {board.name} ('fwtool build --board {board.name}')")
            raise BadInput(f"{img.source} is for UF2 family {got}, not {family_name(board.uf2_family_id)} "
                           f"({board.name}): the bootrom would silently ignore it",
                           f"build it for {board.name} ('fwtool build --board {board.name}')")
    for addr, data in img.segments:
        if not (lo <= addr and addr + len(data) <= hi):
            raise BadInput(f"{img.source}: {len(data):,} bytes at 0x{addr:08X} lie outside flash (not in "
                           f"{board.name}'s flash 0x{lo:08X}-0x{hi:08X})",
                           f"pass a flash image built for {board.name} (not a RAM/no_flash build)")
    check = BOOT_CHECKS.get(board.boot_check) if board.boot_check else None
    if check is None or not (whole_flash or img.start <= lo < img.end):
        return img  # an image that does not start at the flash base leaves the board's boot code as it is
    need, problem = check
    why = problem(img.bytes_at(lo, need, FILL))
    if why is None:
        return img
    if boot_check:
        fix = ("flash a pico-sdk build ('fwtool build')" if board.boot_check in (boot2.NAME, picobin.NAME)
               else "rebuild it")
        raise BadInput(f"{img.source} {why}", fix + (f", or pass {skip_hint} to write it anyway" if skip_hint else ""))
    img.notes.append(NO_BOOT)
    return img

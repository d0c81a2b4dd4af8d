"""Which target runs an image: by registry name, or the one a command means for a board.

``TARGETS`` maps a name to its class; a family names its virtual target as data (``Family.virtual_target``).
A new target: its module (fwtool/emulator/ for a virtual one) and one line here.
"""
from __future__ import annotations

from fwtool.core.boards import get_board
from fwtool.core.errors import BadInput
from fwtool.emulator.linux_targets import LinuxNative, QemuAarch64
from fwtool.emulator.psoc6.target import Psoc6Unicorn
from fwtool.emulator.targets import QemuM4, QemuM33, Rp2040js
from fwtool.firmware.families import get_family
from fwtool.targets.base import Target
from fwtool.targets.physical import BoardTarget

TARGETS: dict[str, type[Target]] = {
    Rp2040js.info.name: Rp2040js,  # the virtual RP2040 (rp2040js on Node.js)
    QemuM4.info.name: QemuM4,  # the virtual Cortex-M4 (QEMU mps2-an386)
    QemuM33.info.name: QemuM33,  # the virtual Cortex-M33 (QEMU mps2-an505), for RP2350
    Psoc6Unicorn.info.name: Psoc6Unicorn,  # the virtual PSoC 6 (Unicorn): a kit's real firmware.hex
    BoardTarget.info.name: BoardTarget,  # a real board behind its serial port
    LinuxNative.info.name: LinuxNative,  # a linux-family program on this machine (fwtool/emulator/linux_targets.py)
    QemuAarch64.info.name: QemuAarch64,  # a static aarch64 program under qemu-aarch64-static
}
WHERE = ("emulator", "board")  # what commands call them (--emulator / --device, --port)


def by_name(name: str) -> type[Target]:
    try:
        return TARGETS[name]
    except KeyError:
        raise BadInput(f"unknown target '{name}'", f"use one of: {', '.join(sorted(TARGETS))}") from None


def virtual_for(board: str, model=None) -> type[Target]:
    """The virtual target of ``board``'s family (refused when the family has none). ``model``: where user board
    files beside the model are looked for (core.boards.get_board)."""
    spec = get_board(board, model)
    family = get_family(spec.family)
    name = family.virtual_target_for(spec)
    if not name:
        raise BadInput(f"the {family.name} family has no virtual target", "run on a board (--device/--port)")
    return by_name(name)


def target_class(board: str, where: str, model=None) -> type[Target]:
    """``where`` = "emulator" (the family's virtual target) or "board" (the physical board)."""
    if where not in WHERE:
        raise BadInput(f"unknown target '{where}'", "use --emulator (default) or a board (--port/--device)")
    return virtual_for(board, model) if where == "emulator" else BoardTarget


def default_cores(board: str, where: str, model=None) -> int:
    """TFLM cores when the user gave none: what the target runs (2 on the virtual RP2040, as on a Pico)."""
    return target_class(board, where, model).info.cores


def image_for(target: type[Target] | Target, board: str, image, model=None):
    """The file ``target`` runs for a build whose image is ``image`` (a family's virtual target may run another
    link of the same objects: the psoc6 family's mps2-an386 ELF)."""
    if image is None or not target.info.virtual:
        return image
    return get_family(get_board(board, model).family).image_for_target(image, target.info.name)

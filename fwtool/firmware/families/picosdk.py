"""The pico-sdk build, shared by the RP2040 and RP2350 families (composed, not inherited): the CMake configure
arguments, the tinyusb check, the build through cmake.py and the UF2 packaging.

A family passes what differs as data: the board's ``[sdk]`` table names ``PICO_BOARD`` and ``PICO_PLATFORM``, the
family the UF2 work-around block (RP2350-E10) it wants.
"""
from __future__ import annotations

from pathlib import Path

from fwtool.core.boards import Board
from fwtool.core.errors import BadInput, FwtoolError
from fwtool.firmware.families import cmake
from fwtool.firmware.families.base import CompiledFiles, CompileRequest
from fwtool.image import uf2


def check_platform(sdk_root: Path, board: Board) -> None:
    """The board's PICO_PLATFORM is one the pinned pico-sdk tree has a platform file for (else exit 3)."""
    platform = board.sdk.pico_platform
    name = "rp2350-arm-s" if platform == "rp2350" else platform  # pico-sdk's alias
    folder = Path(sdk_root) / "cmake" / "preload" / "platforms"
    if not folder.is_dir():  # a tree without pico-sdk 2.x's platform files: pico-sdk's own configure judges
        return
    if not (folder / f"{name}.cmake").is_file():
        known = sorted(p.stem for p in folder.glob("*.cmake"))
        raise BadInput(f"board {board.name}: pico-sdk at {sdk_root} does not know PICO_PLATFORM '{platform}' "
                       f"(it has {', '.join(known) or 'no platform files'})",
                       "fix [sdk] pico_platform in the board file, or 'fwtool vendor sync pico-sdk'")


def configure_args(request: CompileRequest) -> list[str]:
    """pico-sdk's configure: its path, tinyusb's, the board header and the platform."""
    paths = request.vendor_paths
    check_platform(paths["pico-sdk"], request.board)
    return cmake.configure_command(request, "-DCMAKE_BUILD_TYPE=Release", "-DPICO_NO_PICOTOOL=1",
                                   f"-DPICO_SDK_PATH={paths['pico-sdk']}",
                                   f"-DPICO_TINYUSB_PATH={paths['tinyusb']}",
                                   f"-DPICO_BOARD={request.board.sdk.pico_board}",
                                   f"-DPICO_PLATFORM={request.board.sdk.pico_platform}")


def compile_project(request: CompileRequest) -> CompiledFiles:
    def tinyusb_found(lines: list[str]) -> None:
        if any("USB support will be unavailable" in ln for ln in lines):
            raise FwtoolError(f"pico-sdk found no usable tinyusb at {request.vendor_paths['tinyusb']} "
                              "(USB stdio would be missing)",
                              "run 'fwtool vendor sync tinyusb' or point PICO_TINYUSB_PATH at a full checkout")

    elf = cmake.build(request, configure_args(request), check_configure=tinyusb_found)
    return CompiledFiles(elf=elf, bin=elf.parent / "firmware.bin", map=elf.parent / "firmware.elf.map")


def package_uf2(compiled: CompiledFiles, board: Board, abs_block_at: int | None = None) -> dict[str, bytes]:
    """firmware.uf2 from firmware.bin at the board's flash base, validated; ``abs_block_at``: prepend the RP2350-E10
    work-around block there, as pico-sdk's picotool call does (``--abs-block``)."""
    if compiled.bin is None:
        raise FwtoolError("the build produced no firmware.bin to make a UF2 from", "re-run 'fwtool build'")
    data = compiled.bin.read_bytes()
    image = uf2.from_bin(data, board.flash_base, board.uf2_family_id, abs_block_at=abs_block_at)
    uf2.validate(image, board.uf2_family_id, board.flash_base, expect=data)
    return {"uf2": image}

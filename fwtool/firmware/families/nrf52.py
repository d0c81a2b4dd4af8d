"""Nordic nRF52840 boards (Arduino Nano 33 BLE, BLE Sense, BLE Sense Rev2): a CMake+Ninja build of TFLM
(pico-tflmicro + CMSIS-NN with the Cortex-M4 DSP kernels, hard-float) on nrfx's MDK and drivers, TinyUSB's device
stack (USB CDC console with the 1200-baud reboot into Arduino's SAM-BA bootloader) and CMSIS 5 Core headers, with
Debian's arm-none-eabi-gcc, linked at 0x10000 by TinyUSB's linker script for the board. Output: firmware.hex and
firmware.bin (raw from 0x10000), flashed by the SAM-BA runner (fwtool/flash/runners/samba.py).

The same TFLM and app objects are also linked for QEMU's Cortex-M4 machine (mps2-an386): the family's virtual
target for ``fwtool validate`` / ``profile`` / ``run --emulator`` — an instruction-counting Cortex-M4F, not a cycle
model of the nRF52840 (no emulator of this chip ships in Debian or PyPI).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fwtool.core import vendor
from fwtool.core.boards import Board
from fwtool.core.errors import FwtoolError
from fwtool.core.toolchain import ARM_BUILD_TOOLS, Tool
from fwtool.firmware.families import cmake, tflm
from fwtool.firmware.families.base import (
    CompiledFiles,
    CompileRequest,
    Family,
    SourcePatch,
)
from fwtool.firmware.families.nrf52_sources import (
    ARCH_FLAGS,
    PICO_ONLY_SOURCES,
    board_values,
    validate_image,
)
from fwtool.image import elf as elf_image
from fwtool.image import ihex

if TYPE_CHECKING:
    from fwtool.firmware.plan import BuildPlan

VIRTUAL_ELF = "firmware_vm4.elf"  # the QEMU mps2-an386 link of the same objects, in the build tree


class NRF52Family(Family):
    """Composed of the shared parts: TFLM from pico-tflmicro (tflm.py, without the pico-only sources) and the
    CMake/Ninja driver (cmake.py); everything board-side is nrfx + TinyUSB (nrf52_sources.py)."""

    name = "nrf52"
    template_dir = "nrf52"
    arena_on_virtual_board = False  # the QEMU machine is another board: keep the host measurement + margin
    virtual_target = "qemu-mps2-an386"  # fwtool/emulator/targets.py: QEMU Cortex-M4F machine
    tools = [
        *ARM_BUILD_TOOLS,
        Tool("ninja", "ninja-build", "build"),
        Tool("git", "git", "build"),
        Tool("qemu-system-arm", "qemu-system-arm", "emulator"),
    ]
    context_keys = ("tflm_root", "tflm_version", "tflm_sources", "tflm_patched_sources", "tflm_includes",
                    "tflm_defines", "arch_flags", "board_sources", "board_includes", "board_defines",
                    "board_app_sources", "linker_script", "nrf52", "op_registrations", "op_registration_headers")
    # nrfx start-up/power + TinyUSB CDC + newlib + TFLM runtime and kernels (measured builds replace this).
    code_reserve_bytes = 160 * 1024
    # stack 8 KiB + heap 4 KiB (nrf52_sources.py), RAM_NVIC + crash data 512 B, TinyUSB buffers ~4 KiB, TFLM objects
    ram_reserve_bytes = 20 * 1024

    def extra_checks(self) -> list[dict]:
        return [cmake.doctor_row()]

    def vendor_paths(self) -> dict[str, Path]:
        return {d.name: vendor.require(d) for d in vendor.deps_for(self.name, "build")}

    def template_context(self, plan: BuildPlan, vendor_paths: dict[str, Path]) -> dict:
        root = vendor_paths["pico-tflmicro"]
        pdm = "fwt_mic.cpp" in plan.app.sources
        return {**tflm.template_values(plan, root, self.template_dir, tflm.TFLM_DEFINES, PICO_ONLY_SOURCES),
                "arch_flags": list(ARCH_FLAGS), **board_values(plan.board, vendor_paths, pdm)}

    def patches(self, plan: BuildPlan, vendor_paths: dict[str, Path], patch_dir: Path) -> list[SourcePatch]:
        """The resize fix for a model with that kernel; always the copy without pico's dual-core define."""
        return tflm.single_core_patches(plan, vendor_paths["pico-tflmicro"], patch_dir, "Cortex-M4")

    def configure_args(self, request: CompileRequest) -> list[str]:
        toolchain = request.project_dir / "arm-none-eabi.cmake"
        return cmake.configure_command(request, f"-DCMAKE_TOOLCHAIN_FILE={toolchain}", "-DCMAKE_BUILD_TYPE=")

    def compile(self, request: CompileRequest) -> CompiledFiles:
        elf = cmake.build(request, self.configure_args(request))
        out = {k: request.build_dir / f"firmware.{k}" for k in ("hex", "bin")}
        for kind, path in out.items():
            if not path.is_file():
                raise FwtoolError(f"the build finished but produced no firmware.{kind}", f"inspect {request.build_dir}")
        return CompiledFiles(elf=elf, hex=out["hex"], bin=out["bin"], map=request.build_dir / "firmware.map")

    def package(self, compiled: CompiledFiles, board: Board) -> dict[str, bytes]:
        """firmware.hex from the ELF's loadable segments and firmware.bin (the same bytes, raw from the application
        start), validated: inside the application region, a vector table at 0x10000."""
        try:
            segments = elf_image.segments(compiled.elf)
        except (FwtoolError, ValueError, OSError):
            if compiled.bin is None or not compiled.bin.is_file():
                raise
            segments = [(board.flash_base, compiled.bin.read_bytes())]
        text = ihex.write(segments).encode()
        img = validate_image(text, board)
        return {"hex": text, "bin": img.flat(origin=board.flash_base)[1]}

    progress = staticmethod(cmake.progress)

    def virtual_image(self, image: Path) -> Path:
        """The virtual-M4 ELF next to a build's ``image`` (firmware.hex): the same objects linked for mps2-an386,
        left in the build tree (``<out>/cmake``, fwtool/firmware/flow.py)."""
        elf = Path(image).parent / "cmake" / VIRTUAL_ELF
        if not elf.is_file():
            raise FwtoolError(f"no virtual Cortex-M4 image {elf}", "rebuild with 'fwtool build' (nrf52 builds link it)")
        return elf

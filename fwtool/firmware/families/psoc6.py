"""Infineon PSoC 6 boards (CM4 application): a CMake+Ninja build of TFLM (pico-tflmicro + CMSIS-NN with the
Cortex-M4 DSP kernels, hard-float) on the public PDL, the kit's BSP startup/system/linker script and Infineon's
prebuilt CM0+ image; output Intel HEX. No ModusToolbox tools package needed; with ModusToolbox installed, the
generated ModusToolbox application (Makefile + deps/*.mtb, see psoc6_sources.py) is built with MTB's own make.

The family's virtual target is the virtual PSoC 6 (fwtool/emulator/psoc6/, Unicorn): it runs the kit's real
``firmware.hex`` for ``fwtool run --emulator``, ``validate`` and ``profile``. The same TFLM objects are also
linked for QEMU's Cortex-M4 machine (mps2-an386, ``qemu_image``; registry target ``qemu-mps2-an386``), kept for
what the virtual PSoC 6 cannot do (docs/psoc6-virtual.md).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fwtool.core import escape, vendor
from fwtool.core.boards import Board
from fwtool.core.errors import FwtoolError, MissingTool
from fwtool.core.files import write_if_changed
from fwtool.core.toolchain import ARM_BUILD_TOOLS, Tool
from fwtool.image import ihex
from fwtool.image import elf as elf_image
from fwtool.firmware.families import cmake, psoc6_mic, tflm
from fwtool.firmware.families.base import CompiledFiles, CompileRequest, Family, SourcePatch
from fwtool.firmware.families.psoc6_sources import (ARCH_FLAGS, MTB_TOOLS_GLOBS, PICO_ONLY_SOURCES, SWITCH,
                                                 board_values, builder_choice, find_mtb_tools, mtb_build, mtb_files,
                                                 mtb_values,
                                                 validate_image)

if TYPE_CHECKING:
    from fwtool.firmware.plan import BuildPlan

VIRTUAL_ELF = "firmware_vm4.elf"  # the QEMU mps2-an386 link of the same objects, in the build tree


class PSoC6Family(Family):
    """Composed of the shared parts: TFLM from pico-tflmicro (tflm.py, without the pico-only sources) and the
    CMake/Ninja driver (cmake.py); everything board-side is PSoC 6 (psoc6_sources.py)."""

    name = "psoc6"
    template_dir = "psoc6"
    builders = ("cmake", "mtb")  # --builder (psoc6_sources.builder_choice: cmake unless the user asks for mtb)
    arena_on_virtual_board = False  # the QEMU machine is another board: keep the host measurement + margin
    virtual_target = "psoc6-unicorn"  # fwtool/emulator/psoc6/: the kit's real firmware.hex, both cores
    qemu_target = "qemu-mps2-an386"  # the virtual Cortex-M4 (QEMU) on qemu_image(): the same objects, another board
    tools = [
        *ARM_BUILD_TOOLS,
        Tool("ninja", "ninja-build", "build"),
        Tool("git", "git", "build"),
        Tool("qemu-system-arm", "qemu-system-arm", "emulator"),
    ]
    context_keys = ("tflm_root", "tflm_version", "tflm_sources", "tflm_patched_sources", "tflm_includes",
                    "tflm_defines", "arch_flags", "board_sources", "board_includes", "board_defines",
                    "linker_script", "psoc6", "mtb", "op_registrations", "op_registration_headers",
                    "board_app_sources", "app_vendor_libs")
    # BSP startup/system + PDL drivers + TFLM runtime + kernels (fire_alarm: ~120 KB) and the CM0+ image (the
    # BLE kit's BLESS image reserves 128 KiB of flash).
    code_reserve_bytes = 288 * 1024
    ram_reserve_bytes = 16 * 1024  # stack 4 KiB, PDL/newlib state, TFLM objects, the CM4 RAM vector table

    def extra_checks(self) -> list[dict]:
        tools = find_mtb_tools()
        builder, why = builder_choice()
        return [cmake.doctor_row(), {"name": "ModusToolbox", "ok": builder != "mtb" or tools is not None,
                 "detail": f"builder {builder} ({why}); ModusToolbox " + (str(tools) if tools else "not installed")
                 + f"; switch: {SWITCH}"}]

    def vendor_paths(self) -> dict[str, Path]:
        return {d.name: vendor.require(d) for d in vendor.deps_for(self.name, "build")}

    def template_context(self, plan: BuildPlan, vendor_paths: dict[str, Path]) -> dict:
        root = vendor_paths["pico-tflmicro"]
        values = tflm.template_values(plan, root, self.template_dir, tflm.TFLM_DEFINES, PICO_ONLY_SOURCES)
        board = board_values(plan.board, vendor_paths)
        mic = psoc6_mic.wants_mic(plan.app.sources)
        if mic:  # an audio app: the PDM-PCM block + the PWM LED (psoc6_mic.py), compiled per image (CMakeLists)
            pdl = vendor_paths["mtb-pdl-cat1"]
            defines = psoc6_mic.mic_defines(plan.board, pdl)
            board["board_sources"] += [escape.cmake_quoted((pdl / s).as_posix()) for s in psoc6_mic.PDL_SOURCES]
            board["board_defines"] += defines
            board["psoc6"]["fwt_defines"] += defines
        return {**values, "arch_flags": list(ARCH_FLAGS), **board,
                "board_app_sources": [psoc6_mic.MIC_SOURCE] if mic else [],
                "app_vendor_libs": psoc6_mic.dsp_libs(plan.app.vendor, vendor_paths),
                "mtb": mtb_values(plan.board, root, plan.out_dir / "project", values["tflm_includes"])}

    def patches(self, plan: BuildPlan, vendor_paths: dict[str, Path], patch_dir: Path) -> list[SourcePatch]:
        """The resize fix for a model with that kernel; always the copy without pico's dual-core define."""
        return tflm.single_core_patches(plan, vendor_paths["pico-tflmicro"], patch_dir, "Cortex-M4")

    def configure_args(self, request: CompileRequest) -> list[str]:
        toolchain = request.project_dir / "arm-none-eabi.cmake"
        return cmake.configure_command(request, f"-DCMAKE_TOOLCHAIN_FILE={toolchain}", "-DCMAKE_BUILD_TYPE=")

    def compile(self, request: CompileRequest) -> CompiledFiles:
        for name, text in mtb_files(request.board).items():  # the ModusToolbox app's dependency files
            write_if_changed(request.project_dir / name, text)
        builder, why = builder_choice(request.builder)
        tools = find_mtb_tools()
        if builder == "mtb":
            if tools is None:
                raise MissingTool(f"ModusToolbox's make was asked for ({why}) but no ModusToolbox 3.x tools folder "
                                  f"with make/start.mk was found ({', '.join(MTB_TOOLS_GLOBS)} or CY_TOOLS_PATHS)",
                                  f"install ModusToolbox 3.x, or build with CMake: --builder cmake ({SWITCH})")
            request.log(f"-- fwtool: builder mtb ({why}): ModusToolbox's make from {tools}; switch: {SWITCH}")
            return mtb_build(request, tools, {"name": "mtb", "why": why, "tools": str(tools)})
        request.log(f"-- fwtool: builder cmake ({why}): CMake+Ninja from the pinned Infineon trees; ModusToolbox's "
                    f"make{f' (found at {tools})' if tools else ''} only when asked: {SWITCH}")
        elf = cmake.build(request, self.configure_args(request))
        hex_path = request.build_dir / "firmware.hex"
        if not hex_path.is_file():
            raise FwtoolError("the build finished but produced no firmware.hex", f"inspect {request.build_dir}")
        return CompiledFiles(elf=elf, hex=hex_path, map=request.build_dir / "firmware.map",
                             builder={"name": "cmake", "why": why})

    def package(self, compiled: CompiledFiles, board: Board) -> dict[str, bytes]:
        """firmware.hex from the ELF's loadable segments (or a raw .bin at the flash base), validated: inside the
        flash region, the CM0+ image at the flash base and the CM4 vector table at the application start."""
        try:
            segments = elf_image.segments(compiled.elf)
        except (FwtoolError, ValueError, OSError):
            if compiled.bin is None or not compiled.bin.is_file():
                raise
            segments = [(board.flash_base, compiled.bin.read_bytes())]
        text = ihex.write(segments).encode()
        validate_image(text, board)
        return {"hex": text}

    progress = staticmethod(cmake.progress)

    def virtual_image(self, image: Path) -> Path:
        """The virtual PSoC 6 runs the flashable image itself (firmware.hex)."""
        return Path(image)

    def image_for_target(self, image: Path, target: str) -> Path:
        """firmware.hex on the virtual PSoC 6; the mps2-an386 link of the same objects on the QEMU M4."""
        return self.qemu_image(image) if target == self.qemu_target else self.virtual_image(image)

    def qemu_image(self, image: Path) -> Path:
        """The virtual-M4 ELF next to a build's ``image`` (firmware.hex): the same objects linked for mps2-an386,
        left in the build tree (``<out>/cmake``, fwtool/firmware/flow.py)."""
        elf = Path(image).parent / "cmake" / VIRTUAL_ELF
        if not elf.is_file():
            raise FwtoolError(f"no virtual Cortex-M4 image {elf}", "rebuild with 'fwtool build' (psoc6 builds link it)")
        return elf



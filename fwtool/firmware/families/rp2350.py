"""Raspberry Pi RP2350 boards (Pico 2, Arm cores): pico-sdk ``PICO_PLATFORM=rp2350-arm-s``, pico-tflmicro with
CMSIS-NN built for the Cortex-M33 with its DSP extension and FPU, UF2 with the RP2350 Arm family and the
RP2350-E10 work-around block.

Composed of the shared parts, no family inherits another: TFLM from pico-tflmicro (tflm.py), the CMake/Ninja driver
(cmake.py), the pico-sdk build shared with RP2040 (picosdk.py) and RP2040's app recipes (rp2040_apps.py: the
vendor libraries and the microphone are pico-sdk code that runs on either chip).

No RP2350 emulator exists: a single-core build also links the same tflm archive and app objects for QEMU's
Cortex-M33 machine (``mps2-an505``, with DSP and FPU), the family's virtual target (``virtual_target``), run by
fwtool/emulator/qemu.py for ``fwtool validate`` / ``profile`` / ``run --emulator``, as psoc6 uses mps2-an386.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fwtool.core import vendor
from fwtool.core.boards import Board
from fwtool.core.errors import FwtoolError
from fwtool.core.toolchain import ARM_BUILD_TOOLS, Tool
from fwtool.firmware.families import cmake, picosdk, tflm
from fwtool.firmware.families.base import CompiledFiles, CompileRequest, Family, SourcePatch
from fwtool.firmware.families.rp2040_apps import fast_sources, mic_values, vendor_libs
from fwtool.image import uf2

if TYPE_CHECKING:
    from fwtool.firmware.plan import BuildPlan

DEFINES = [*tflm.TFLM_DEFINES, "TF_LITE_STRIP_ERROR_STRINGS=1"]
# pico-tflmicro's platform files include pico-sdk headers: linked into the board image only (tflm_pico).
PICO_ONLY_SOURCES = ("src/tensorflow/lite/micro/system_setup.cpp", "src/tensorflow/lite/micro/micro_time.cpp")
VIRTUAL_ELF = "firmware_vm33.elf"  # the QEMU mps2-an505 link of the same objects, in the build tree
VIRTUAL_CLOCK_HZ = 20_000_000  # mps2-an505 SYSCLK as TIMER0 counts it (measured: 120,000 ticks per 6 M instructions)
# [sdk] dsp = false: TFLM and CMSIS-NN without the DSP extension (GCC: the last -mcpu/-march wins), to measure
# what CMSIS-NN's DSP paths (SMLAD & co., __ARM_FEATURE_DSP -> ARM_MATH_DSP) bring.
NO_DSP_FLAGS = ("-mcpu=cortex-m33+nodsp", "-march=armv8-m.main+fp")


def virtual_links(plan: BuildPlan) -> list[dict]:
    """The virtual M33 link for a single-core build (an audio app's microphone object, pico-sdk PIO code, is left
    out of it: on the virtual board the audio is the host's stream over UART0)."""
    if plan.options.tflm_cores != 1:
        return []
    # pico-sdk's toolchain appends .elf to executables: target firmware_vm33 -> firmware_vm33.elf
    return [{"target": Path(VIRTUAL_ELF).stem, "note": "not cycle-accurate: QEMU -icount counts instructions"}]


class RP2350Family(Family):
    name = "rp2350"
    template_dir = "rp2350"
    virtual_target = "qemu-mps2-an505"  # fwtool/emulator/targets.py: QEMU Cortex-M33 machine (no RP2350 emulator)
    arena_on_virtual_board = False  # QEMU's machine is another board: keep the host measurement + margin
    tools = [
        *ARM_BUILD_TOOLS,
        Tool("git", "git", "build"),
        Tool("qemu-system-arm", "qemu-system-arm", "emulator"),
    ]
    context_keys = ("tflm_root", "tflm_version", "tflm_sources", "tflm_patched_sources", "tflm_includes",
                    "tflm_defines", "app_vendor_libs", "mic", "tflm_fast_sources", "op_registrations",
                    "op_registration_headers", "tflm_unity_groups", "tflm_pico_sources", "tflm_pico_libs", "board_pico_libs",
                    "tflm_arch_flags", "tflm_arch_note", "pico_platform", "virtual_links", "vm33")
    # An upper bound, as RP2040's. Measured (fire_alarm on pico2, USB stdio, inference app): 97,436 B (RP2040: 62,980).
    code_reserve_bytes = 224 * 1024
    ram_reserve_bytes = 24 * 1024  # 2 x 2 KiB stacks, heap, SDK/tinyusb state, TFLM objects

    def extra_checks(self) -> list[dict]:
        return [cmake.doctor_row()]

    def vendor_paths(self) -> dict[str, Path]:
        return {d.name: vendor.require(d) for d in vendor.deps_for(self.name, "build")}

    def template_context(self, plan: BuildPlan, vendor_paths: dict[str, Path]) -> dict:
        root = vendor_paths["pico-tflmicro"]
        values = tflm.template_values(plan, root, self.template_dir, DEFINES, PICO_ONLY_SOURCES)
        dsp = plan.board.sdk.dsp
        return {**values, "tflm_unity_groups": tflm.unity_groups(values["tflm_sources"], plan.kernel_files),
                "tflm_pico_sources": list(PICO_ONLY_SOURCES),
                # the dual-core CMSIS-NN kernel calls pico_multicore; the single-core copy needs no pico-sdk. The
                # archive takes only the headers: pico-sdk's libraries are INTERFACE libraries carrying their
                # sources, which would otherwise be compiled into fwt_app (it links tflm) and again into the board
                # image (525 multiple definitions); the board image links the libraries themselves.
                "tflm_pico_libs": [] if plan.options.tflm_cores == 1 else ["pico_stdlib_headers",
                                                                            "pico_multicore_headers"],
                "board_pico_libs": [] if plan.options.tflm_cores == 1 else ["pico_multicore"],
                "tflm_arch_flags": [] if dsp else list(NO_DSP_FLAGS),
                "tflm_arch_note": ("Cortex-M33 with the DSP extension: CMSIS-NN's ARM_MATH_DSP paths" if dsp else
                                   "[sdk] dsp = false: without the DSP extension (CMSIS-NN's plain C paths)"),
                "pico_platform": plan.board.sdk.pico_platform, "virtual_links": virtual_links(plan),
                "vm33": {"clock_hz": VIRTUAL_CLOCK_HZ},
                "app_vendor_libs": vendor_libs(plan.app.vendor, vendor_paths), **mic_values(plan.board),
                "tflm_fast_sources": fast_sources(root, plan) if plan.audio is not None else []}

    def tflm_cores(self, board: Board, asked: int) -> int:
        """pico-tflmicro splits only CMSIS-NN's plain-C matmul across the cores; with the M33's DSP extension the
        ARM_MATH_DSP path runs, on core 0 alone. So two cores only with ``[sdk] dsp = false``."""
        return asked if not board.sdk.dsp else 1

    def patches(self, plan: BuildPlan, vendor_paths: dict[str, Path], patch_dir: Path) -> list[SourcePatch]:
        """The resize fix for every build that compiles that kernel; the single-core copy for --tflm-cores 1."""
        root = vendor_paths["pico-tflmicro"]
        compiled = [tflm.kernel_source(k) for k in plan.kernel_files]
        found = [tflm.resize_half_pixel_patch(compiled, root, patch_dir)]
        if plan.options.tflm_cores == 1:
            found.append(tflm.single_core_patch(root, patch_dir))
        return [p for p in found if p is not None]

    def compile(self, request: CompileRequest) -> CompiledFiles:
        return picosdk.compile_project(request)

    def package(self, compiled: CompiledFiles, board: Board) -> dict[str, bytes]:
        return picosdk.package_uf2(compiled, board, abs_block_at=uf2.ABS_BLOCK_ADDRESS)

    progress = staticmethod(cmake.progress)

    def virtual_image(self, image: Path) -> Path:
        """The virtual-M33 ELF next to a build's ``image`` (firmware.uf2), left in ``<out>/cmake``."""
        elf = Path(image).parent / "cmake" / VIRTUAL_ELF
        if not elf.is_file():
            raise FwtoolError(f"no virtual Cortex-M33 image {elf}",
                              "rebuild with 'fwtool build --tflm-cores 1' (single-core pico2 builds link it; "
                              "'fwtool validate' does this itself)")
        return elf

"""Raspberry Pi RP2040 boards: pico-sdk CMake project, pico-tflmicro with CMSIS-NN, UF2 output.

Composed of the shared parts: TFLM from pico-tflmicro (tflm.py), the CMake/Ninja driver (cmake.py) and the
pico-sdk build (picosdk.py: configure arguments, the tinyusb check, UF2), shared with RP2350; apps' vendor
libraries and the microphone are in rp2040_apps.py.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fwtool.core import vendor
from fwtool.core.boards import Board
from fwtool.core.toolchain import ARM_BUILD_TOOLS, Tool
from fwtool.firmware.families import cmake, picosdk, tflm
from fwtool.firmware.families.base import CompiledFiles, CompileRequest, Family, SourcePatch
from fwtool.firmware.families.rp2040_apps import fast_sources, mic_values, vendor_libs

if TYPE_CHECKING:
    from fwtool.firmware.plan import BuildPlan

# Release firmware: TFLM's own error strings and its printf-based DebugLog are compiled out (fwtool's FWT:ERROR
# causes stay); newlib's vfprintf/dtoa then drop out of the image.
RP2040_DEFINES = [*tflm.TFLM_DEFINES, "TF_LITE_STRIP_ERROR_STRINGS=1"]


class RP2040Family(Family):
    name = "rp2040"
    template_dir = "rp2040"
    virtual_target = "rp2040js"  # fwtool/emulator/targets.py: rp2040js with both cores (core1.mjs)
    tools = [
        *ARM_BUILD_TOOLS,
        Tool("git", "git", "build"),
        Tool("node", "nodejs npm", "emulator", (18,)),
    ]
    context_keys = ("tflm_root", "tflm_version", "tflm_sources", "tflm_patched_sources", "tflm_includes",
                    "tflm_defines", "app_vendor_libs", "mic", "tflm_fast_sources", "op_registrations",
                    "op_registration_headers", "tflm_unity_groups")
    # The fit check's code reserve when no build of the same app/op set was measured yet (firmware/codesize.py): an
    # upper bound. Measured (fire_alarm on pico, USB stdio): inference app 116,660 B, audio_classifier 211,600 B.
    code_reserve_bytes = 224 * 1024
    ram_reserve_bytes = 24 * 1024  # 2 x 2 KiB stacks, heap, SDK/tinyusb state, TFLM objects
    arena_on_virtual_board = True  # rp2040js runs the UF2 and the banner gives arena_used (emulator/arena_probe.py)

    def extra_checks(self) -> list[dict]:
        return [cmake.doctor_row()]

    def vendor_paths(self) -> dict[str, Path]:
        return {d.name: vendor.require(d) for d in vendor.deps_for(self.name, "build")}

    def template_context(self, plan: BuildPlan, vendor_paths: dict[str, Path]) -> dict:
        root = vendor_paths["pico-tflmicro"]
        values = tflm.template_values(plan, root, self.template_dir, RP2040_DEFINES)
        return {**values, "tflm_unity_groups": tflm.unity_groups(values["tflm_sources"], plan.kernel_files),
                "app_vendor_libs": vendor_libs(plan.app.vendor, vendor_paths), **mic_values(plan.board),
                # audio apps have a real-time budget per hop, and --opt speed asks for it: the model's kernels and
                # CMSIS-NN's hot folders at -O2, or speed_flags() under --opt speed (firmware/speed.py)
                "tflm_fast_sources": fast_sources(root, plan) if plan.audio is not None
                or plan.options.opt == "speed" else []}

    def tflm_cores(self, board: Board, asked: int) -> int:
        return asked  # the M0+ has no DSP extension: the plain-C matmul that pico-tflmicro splits is the one built

    def patches(self, plan: BuildPlan, vendor_paths: dict[str, Path], patch_dir: Path) -> list[SourcePatch]:
        """The resize fix for every build that compiles that kernel; the single-core copy for --tflm-cores 1; for the
        profile app of a dual-core build, the copy that times each core's share of the split."""
        root = vendor_paths["pico-tflmicro"]
        compiled = [tflm.kernel_source(k) for k in plan.kernel_files]
        found = [tflm.resize_half_pixel_patch(compiled, root, patch_dir)]
        if plan.options.tflm_cores == 1:  # the dual-core CMSIS-NN kernel without TF_LITE_PICO_MULTICORE
            found.append(tflm.single_core_patch(root, patch_dir))
        elif plan.app.tflm_profiler:  # the profile app: each core's share of the split timed (per-core time)
            found.append(tflm.split_timing_patch(root, patch_dir))
        return [p for p in found if p is not None]

    def configure_args(self, request: CompileRequest) -> list[str]:
        return picosdk.configure_args(request)

    def compile(self, request: CompileRequest) -> CompiledFiles:
        return picosdk.compile_project(request)

    def package(self, compiled: CompiledFiles, board: Board) -> dict[str, bytes]:
        return picosdk.package_uf2(compiled, board)

    progress = staticmethod(cmake.progress)

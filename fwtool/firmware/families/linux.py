"""Linux boards (Raspberry Pi 4/5/Zero 2 W on 64-bit OS, and the machine fwtool runs on): the same generated TFLM
apps as one static executable — Debian's aarch64-linux-gnu-g++ for the Pis, the host g++ for ``linux-host`` —
with TFLM's reference kernels and fwtool's Linux platform layer (templates/linux/).

CMSIS-NN is Cortex-M only (its kernels target the M-profile DSP/MVE extensions; pico-tflmicro's cmsis_nn/*.cpp
wrappers call it), so every op whose pico-tflmicro kernel is a CMSIS-NN wrapper is compiled from the pinned
tflite-micro tree's reference kernel instead (``tflite-micro:`` kernels, as the op table already does for LSTM).

Composed of the shared parts: TFLM from pico-tflmicro (tflm.py) and the CMake/Ninja driver (cmake.py). Its
virtual targets (fwtool/emulator/linux_targets.py): ``qemu-aarch64`` (user-mode QEMU) for an aarch64 program on
another machine, ``linux-native`` when the program's architecture is this machine's.
"""
from __future__ import annotations

import dataclasses
import io
import platform
import re
from pathlib import Path
from typing import TYPE_CHECKING

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from fwtool.core import runner, vendor
from fwtool.core.boards import Board
from fwtool.core.errors import BadInput, FwtoolError
from fwtool.core.toolchain import Tool
from fwtool.firmware.families import cmake, tflm
from fwtool.firmware.families.base import CompiledFiles, CompileRequest, Family, SourcePatch

if TYPE_CHECKING:
    from fwtool.firmware.plan import BuildPlan

# pico-tflmicro files that include pico-sdk headers; replaced by templates/linux/fwt_tflm_platform.cpp.j2
PICO_ONLY_SOURCES = ("src/tensorflow/lite/micro/system_setup.cpp", "src/tensorflow/lite/micro/micro_time.cpp")
# No CMSIS_NN: the reference kernels. ARDUINO=1 as pico-tflmicro defines it (its ported tree leaves out the
# TFLite-only headers under that define, e.g. kernel_util.cpp's tensorflow/lite/array.h).
LINUX_DEFINES = ["ARDUINO=1", "TF_LITE_STATIC_MEMORY=1", "TF_LITE_DISABLE_X86_NEON=1", "TF_LITE_USE_CTIME=1",
                 "TFLITE_USE_CTIME=1"]
REFERENCE_TREE = "tflite-micro"
_ELF_MACHINE = {"aarch64": "EM_AARCH64", "x86_64": "EM_X86_64"}


def host_arch() -> str:
    """This machine's ``uname -m``."""
    return platform.machine()


def board_arch(board: Board) -> str:
    """The architecture ``board``'s programs are built for (``host``: this machine's)."""
    return host_arch() if board.sdk.arch == "host" else board.sdk.arch


def reference_kernel(kernel: str) -> str:
    """The op-table kernel a Linux build compiles: a CMSIS-NN wrapper becomes tflite-micro's reference kernel."""
    if kernel.startswith("cmsis_nn/"):
        return f"{REFERENCE_TREE}:tensorflow/lite/micro/kernels/{Path(kernel).stem}.cc"
    return kernel


def reference_plan(plan: BuildPlan) -> BuildPlan:
    """``plan`` with every CMSIS-NN kernel swapped for its reference kernel (a copy; ``plan`` is unchanged)."""
    def swap(ops: list[dict]) -> list[dict]:
        return [{**op, "kernel": reference_kernel(op["kernel"])} for op in ops]

    pre = plan.preprocessor
    if pre is not None:
        pre = dataclasses.replace(pre, ops=swap(pre.ops))
    return dataclasses.replace(plan, ops=swap(plan.ops), preprocessor=pre)


_GPIO_LED = re.compile(r"^(?:/dev/)?(gpiochip\d{1,3}):(\d{1,4})$")
_LED_FILE = re.compile(r"^/[A-Za-z0-9/_.:+-]{1,200}$")


def led_parts(led: str | None) -> dict:
    """The board's ``[sdk] led`` as the platform layer takes it: a sysfs/GPIO value file (``file``), or a GPIO
    character-device line ``gpiochipN:LINE`` (``chip`` + ``line``, driven through the kernel's GPIO v2 uAPI, what
    libgpiod's tools use); BadInput for anything else."""
    if not led:
        return {"file": "", "chip": "", "line": -1}
    m = _GPIO_LED.match(led)
    if m:
        return {"file": "", "chip": f"/dev/{m.group(1)}", "line": int(m.group(2))}
    if led.startswith(("gpiochip", "/dev/gpiochip")) or not _LED_FILE.match(led) or ".." in led.split("/"):
        raise BadInput(f"[sdk] led = {led!r} is neither a GPIO line (gpiochipN:LINE) nor an absolute file path",
                       "write e.g. led = \"gpiochip0:17\" (BCM GPIO 17 on a Pi) or "
                       "led = \"/sys/class/leds/ACT/brightness\"")
    return {"file": led, "chip": "", "line": -1}


def compiler(board: Board) -> str:
    return f"{board.sdk.compiler_prefix}g++"


class LinuxFamily(Family):
    """A static Linux executable per build (image kind ``elf``): no flash layout, no startup code, no SDK."""

    name = "linux"
    template_dir = "linux"
    arena_on_virtual_board = False
    executable_kinds = ("elf",)
    features = frozenset({"pdm_mic"})  # the audio apps' microphone: raw S16LE 16 kHz mono on stdin (fwt_mic.cpp)
    virtual_target = "linux-native"  # per board: virtual_target_for (qemu-aarch64 when not this machine's arch)
    tools = [
        Tool("g++", "g++", "build"),
        Tool("aarch64-linux-gnu-g++", "g++-aarch64-linux-gnu", "build"),
        Tool("cmake", "cmake", "build"),
        Tool("ninja", "ninja-build", "build"),
        Tool("qemu-aarch64-static", "qemu-user-static", "emulator"),
        Tool("ssh", "openssh-client", "flash"),
    ]
    context_keys = ("tflm_root", "tflm_version", "tflm_sources", "tflm_patched_sources", "tflm_includes",
                    "tflm_defines", "arch_flags", "linux", "op_registrations", "op_registration_headers")
    code_reserve_bytes = 2 * 1024 * 1024  # glibc static (~800 KB), libstdc++ bits, TFLM runtime and kernels
    ram_reserve_bytes = 8 * 1024 * 1024

    def virtual_target_for(self, board: Board) -> str:
        """``linux-native`` when ``board``'s programs run on this machine, else ``qemu-<arch>``."""
        arch = board_arch(board)
        return "linux-native" if arch == host_arch() else f"qemu-{arch}"

    def extra_checks(self) -> list[dict]:
        return [cmake.doctor_row()]

    def vendor_paths(self) -> dict[str, Path]:
        return {d.name: vendor.require(d) for d in vendor.deps_for(self.name, "build")}

    def template_context(self, plan: BuildPlan, vendor_paths: dict[str, Path]) -> dict:
        root = vendor_paths["pico-tflmicro"]
        board = plan.board
        arch = board_arch(board)
        if board.sdk.arch != "host" and arch not in _ELF_MACHINE:
            raise BadInput(f"board '{board.name}': arch {arch} is not one fwtool builds for",
                           f"use one of: {', '.join(_ELF_MACHINE)} or host")
        values = tflm.template_values(reference_plan(plan), root, self.template_dir, LINUX_DEFINES,
                                      PICO_ONLY_SOURCES)
        return {**values, "arch_flags": list(board.sdk.cpu_flags),
                "linux": {"arch": arch, "prefix": board.sdk.compiler_prefix, "compiler": compiler(board),
                          "led": led_parts(board.sdk.led), "cross": arch != host_arch() or bool(board.sdk.compiler_prefix),
                          "deploy_dir": board.sdk.deploy_dir}}

    def patches(self, plan: BuildPlan, vendor_paths: dict[str, Path], patch_dir: Path) -> list[SourcePatch]:
        root = vendor_paths["pico-tflmicro"]
        compiled = [tflm.kernel_source(k) for k in reference_plan(plan).kernel_files]
        return [p for p in (tflm.resize_half_pixel_patch(compiled, root, patch_dir),) if p is not None]

    def configure_args(self, request: CompileRequest) -> list[str]:
        board = request.board
        args = ["-DCMAKE_BUILD_TYPE="]
        if board.sdk.compiler_prefix:
            args.append(f"-DCMAKE_TOOLCHAIN_FILE={request.project_dir / 'linux-toolchain.cmake'}")
        else:
            args += ["-DCMAKE_C_COMPILER=gcc", "-DCMAKE_CXX_COMPILER=g++"]
        return cmake.configure_command(request, *args)

    def compile(self, request: CompileRequest) -> CompiledFiles:
        if runner.which(compiler(request.board)) is None:
            pkg = "g++-aarch64-linux-gnu" if request.board.sdk.compiler_prefix else "g++"
            raise FwtoolError(f"{compiler(request.board)} was not found (it builds {request.board.name}'s program)",
                              f"sudo apt-get install {pkg}")
        elf = cmake.build(request, self.configure_args(request))
        return CompiledFiles(elf=elf, map=request.build_dir / "firmware.map")

    def package(self, compiled: CompiledFiles, board: Board) -> dict[str, bytes]:
        """The executable itself, checked: a static ELF for the board's architecture."""
        data = compiled.elf.read_bytes()
        check_executable(data, board_arch(board), str(compiled.elf))
        return {"elf": data}

    progress = staticmethod(cmake.progress)


def elf_facts(data: bytes) -> dict:
    """{machine, static, class} of an ELF's bytes (pyelftools), or BadInput for anything else."""
    try:
        elf = ELFFile(io.BytesIO(data))
        interp = any(seg["p_type"] == "PT_INTERP" for seg in elf.iter_segments())
        dynamic = any(seg["p_type"] == "PT_DYNAMIC" for seg in elf.iter_segments())
        return {"machine": elf["e_machine"], "static": not interp and not dynamic, "class": elf.elfclass,
                "type": elf["e_type"]}
    except (ELFError, ValueError) as e:
        raise BadInput(f"not an ELF executable: {e}", "build it with 'fwtool build --board rpi4'") from None


def check_executable(data: bytes, arch: str, source: str) -> dict:
    """``data`` is a static executable for ``arch`` (``uname -m``); else FwtoolError naming what it is."""
    facts = elf_facts(data)
    want = _ELF_MACHINE.get(arch)
    if want is not None and facts["machine"] != want:
        raise FwtoolError(f"{source} is an ELF for {facts['machine']}, not {arch}", "rebuild for the board")
    if not facts["static"]:
        raise FwtoolError(f"{source} is dynamically linked (a static executable was expected)",
                          "rebuild with 'fwtool build' (templates/linux links -static)")
    return facts

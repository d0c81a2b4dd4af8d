"""Raspberry Pi RP2040 boards: pico-sdk CMake project, pico-tflmicro with CMSIS-NN, UF2 output."""
from __future__ import annotations

import hashlib
import json
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Callable

from .. import runner, uf2, vendor
from ..errors import FwtoolError
from ..toolchain import DEBIAN_ARM, Tool
from .base import Artifacts, Family

_SRC = re.compile(r"\$\{CMAKE_CURRENT_LIST_DIR\}/(src/\S+\.(?:cpp|cc|c))\s*$", re.M)
_REGISTER = re.compile(r"^TFLMRegistration\s+Register_(\w+)\s*\(\s*\)\s*\{", re.M)
_PROGRESS = re.compile(r"^\[\s*(\d+)/(\d+)\]|^\[\s*(\d+)%\]")


@lru_cache(maxsize=8)
def _tflm_library_sources(root: str) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]]]:
    """Sources of the ``pico-tflmicro`` library target, as its own CMakeLists lists them.

    Returns (sources every build needs, {kernel file: ops it registers}) with paths relative to ``root``.
    The signal library (custom audio front-end ops) is left out; kernel files that register ops are returned
    separately so that a build compiles only the kernels its model uses.
    """
    cml = (Path(root) / "CMakeLists.txt").read_text()
    block = cml[cml.index("target_sources(pico-tflmicro"):]
    block = block[:block.index(")")]
    common, kernels = [], {}
    for rel in _SRC.findall(block):
        if rel.startswith(("src/signal/", "src/third_party/kissfft/")):
            continue
        if "/lite/micro/kernels/" in rel:
            ops = tuple(_REGISTER.findall((Path(root) / rel).read_text(errors="replace")))
            if ops:
                kernels[rel] = ops
                continue
        common.append(rel)
    return tuple(common), kernels


def tflm_sources(root: Path, kernel_files: list[str]) -> list[str]:
    """Library sources for a model whose ops are registered in ``kernel_files`` (names relative to kernels/)."""
    common, kernels = _tflm_library_sources(str(root))
    wanted = {f"src/tensorflow/lite/micro/kernels/{k}" for k in kernel_files}
    missing = wanted - set(kernels)
    if missing:
        raise FwtoolError(f"pico-tflmicro at {root} has no kernel source {sorted(missing)[0]}",
                          "use the pinned pico-tflmicro revision ('fwtool vendor sync') or regenerate the op table")
    return list(common) + sorted(wanted)


class RP2040Family(Family):
    name = "rp2040"
    template_dir = "pico"
    tools = [
        Tool("arm-none-eabi-gcc", DEBIAN_ARM, "build", (10,)),
        Tool("arm-none-eabi-g++", DEBIAN_ARM, "build", (10,)),
        Tool("arm-none-eabi-objcopy", "binutils-arm-none-eabi", "build"),
        Tool("arm-none-eabi-size", "binutils-arm-none-eabi", "build"),
        Tool("cmake", "cmake", "build", (3, 13)),
        Tool("git", "git", "build"),
        Tool("node", "nodejs npm", "emulator", (18,)),
    ]
    code_reserve_bytes = 96 * 1024  # SDK + USB stdio + TFLM runtime + a few kernels (fire_alarm: ~80 KB)
    ram_reserve_bytes = 24 * 1024  # 2 x 2 KiB stacks, heap, SDK/tinyusb state, TFLM objects
    output_suffix = ".uf2"

    def extra_checks(self) -> list[dict]:
        gen = "ninja" if runner.which("ninja") else "make" if runner.which("make") else None
        from ..flash.usbdevices import doctor_rows  # flashing: libusb, udev rule, serial group (informational)

        return [{"name": "cmake generator", "ok": gen is not None,
                 "detail": f"{gen} found" if gen else "neither make nor ninja: sudo apt-get install make"},
                *doctor_rows()]

    def vendor_paths(self, options: dict) -> dict[str, Path]:
        return {d.name: vendor.require(d) for d in vendor.deps_for(self.name, "build")}

    def kernel_sources(self, tflm_root: Path, kernel_files: list[str]) -> list[str]:
        return tflm_sources(tflm_root, kernel_files)

    def _generator(self) -> tuple[str, str]:
        if runner.which("ninja"):
            return "Ninja", "ninja"
        if runner.which("make"):
            return "Unix Makefiles", "make"
        raise FwtoolError("neither ninja nor make was found", "sudo apt-get install make (or ninja-build)")

    def configure_args(self, project_dir: Path, build_dir: Path, options: dict) -> list[str]:
        gen, _ = self._generator()
        paths = options["vendor_paths"]
        return ["cmake", "-S", str(project_dir), "-B", str(build_dir), "-G", gen,
                "-DCMAKE_BUILD_TYPE=Release", "-DPICO_NO_PICOTOOL=1",
                f"-DPICO_SDK_PATH={paths['pico-sdk']}", f"-DPICO_TINYUSB_PATH={paths['tinyusb']}",
                f"-DPICO_BOARD={options['board'].sdk['pico_board']}", *self._launcher()]

    @staticmethod
    def _launcher() -> list[str]:
        """Use ccache when installed: a new out dir or model then reuses the compiled SDK/TFLM objects."""
        if os.environ.get("FWTOOL_NO_CCACHE") or not runner.which("ccache"):
            return []
        return [f"-DCMAKE_{lang}_COMPILER_LAUNCHER=ccache" for lang in ("C", "CXX")]

    def compile(self, project_dir: Path, build_dir: Path, options: dict,
                on_line: Callable[[str], None]) -> Artifacts:
        build_dir.mkdir(parents=True, exist_ok=True)
        args = self.configure_args(project_dir, build_dir, options)
        stamp = build_dir / ".fwtool-configure"
        key = hashlib.sha256(json.dumps(args).encode()).hexdigest()
        if not (build_dir / "CMakeCache.txt").is_file() or not stamp.is_file() or stamp.read_text() != key:
            on_line("-- fwtool: configuring (cmake)")
            rc, lines = runner.stream(args, on_line=on_line)
            if rc != 0:
                stamp.unlink(missing_ok=True)
                raise FwtoolError(f"cmake configure failed: {_first_error(lines)}",
                                  f"see {build_dir}/CMakeFiles/CMakeError.log; 'fwtool doctor' checks the setup")
            if any("USB support will be unavailable" in ln for ln in lines):
                stamp.unlink(missing_ok=True)
                raise FwtoolError(f"pico-sdk found no usable tinyusb at {options['vendor_paths']['tinyusb']} "
                                  "(USB stdio would be missing)",
                                  "run 'fwtool vendor sync tinyusb' or point PICO_TINYUSB_PATH at a full checkout")
            stamp.write_text(key)
        jobs = str(options.get("jobs") or os.cpu_count() or 2)
        # The objects carry -g, so ccache would key on the build folder; these let other out dirs share them.
        env = {"CCACHE_NOHASHDIR": "1", "CCACHE_BASEDIR": str(build_dir.parent)}
        rc, lines = runner.stream(["cmake", "--build", str(build_dir), "--parallel", jobs], env=env,
                                  on_line=on_line)
        if rc != 0:
            raise FwtoolError(f"compile failed: {_first_error(lines)}", f"full log: {build_dir.parent}/build.log")
        elf = build_dir / "firmware.elf"
        if not elf.is_file():
            raise FwtoolError("the build finished but produced no firmware.elf", f"inspect {build_dir}")
        return Artifacts(elf=elf, bin=build_dir / "firmware.bin", map=build_dir / "firmware.elf.map")

    def package(self, artifacts: Artifacts, board, out_dir: Path) -> dict[str, Path]:
        data = artifacts.bin.read_bytes()
        image = uf2.from_bin(data, board.flash_base, board.uf2_family_id)
        uf2.validate(image, board.uf2_family_id, board.flash_base, expect=data)
        return {"uf2": image}

    @staticmethod
    def progress(line: str) -> tuple[int, int] | None:
        m = _PROGRESS.match(line)
        if not m:
            return None
        if m.group(3):
            return int(m.group(3)), 100
        return int(m.group(1)), int(m.group(2))


def _first_error(lines: list[str]) -> str:
    for i, ln in enumerate(lines):
        if "error:" in ln or "undefined reference" in ln:
            return ln.strip()[:240]
        if "CMake Error" in ln:  # the reason is on the following lines
            detail = " ".join(x.strip() for x in lines[i + 1:i + 4] if x.strip())
            return f"{ln.strip()} {detail}"[:240]
    return (lines[-1].strip() if lines else "no output")[:240]

"""Raspberry Pi RP2040 boards: pico-sdk CMake project, pico-tflmicro with CMSIS-NN, UF2 output."""
from __future__ import annotations

import hashlib
import json
import os
import re
from functools import lru_cache
from pathlib import Path

from fwtool.core import escape, runner, vendor
from fwtool.core.boards import Board
from fwtool.core.errors import FwtoolError
from fwtool.core.files import write_if_changed
from fwtool.core.toolchain import ARM_BUILD_TOOLS, Tool
from fwtool.image import uf2
from fwtool.firmware.families.base import CompiledFiles, CompileRequest, Family, SourcePatch, link_overflow
from fwtool.firmware import registrations, render, sources
from fwtool.firmware.families.rp2040_apps import fast_sources, mic_values, vendor_libs

TFLM_INCLUDES = ["src", "src/third_party/ruy", "src/third_party/gemmlowp", "src/third_party/flatbuffers/include",
                 "src/third_party/cmsis/CMSIS/Core/Include", "src/third_party/cmsis_nn",
                 "src/third_party/cmsis_nn/Include"]
TFLM_DEFINES = ["TF_LITE_DISABLE_X86_NEON=1", "TF_LITE_STATIC_MEMORY=1", "TF_LITE_USE_CTIME=1", "CMSIS_NN=1",
                "ARDUINO=1", "TFLITE_USE_CTIME=1"]  # as pico-tflmicro's own CMakeLists defines them
# Release firmware: TFLM's own error strings and its printf-based DebugLog are compiled out (fwtool's FWT:ERROR
# causes stay); newlib's vfprintf/dtoa then drop out of the image.
RP2040_DEFINES = [*TFLM_DEFINES, "TF_LITE_STRIP_ERROR_STRINGS=1"]
_SRC = re.compile(r"\$\{CMAKE_CURRENT_LIST_DIR\}/(src/\S+\.(?:cpp|cc|c))\s*$", re.M)
_REGISTER = re.compile(r"^TFLMRegistration\s+Register_(\w+)\s*\(\s*\)\s*\{", re.M)
_PROGRESS = re.compile(r"^\[\s*(\d+)/(\d+)\]|^\[\s*(\d+)%\]")


SIGNAL_DIRS = ("src/signal/", "src/third_party/kissfft/")  # the signal library and the FFT it wraps
SIGNAL_INCLUDES = ["src/third_party/kissfft"]  # its wrappers #include "kiss_fft.c" (pico-tflmicro's include list)
_INCLUDE = re.compile(r'^[ \t]*#[ \t]*include[ \t]*"([^"]+)"', re.M)
_SOURCE_SUFFIXES = (".c", ".cc", ".cpp")


@lru_cache(maxsize=8)
def _tflm_library_sources(root: str) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]], tuple[str, ...]]:
    """Sources of the ``pico-tflmicro`` library target, as its own CMakeLists lists them.

    Returns (sources every build needs, {kernel file: ops it registers}, signal-library sources) with paths
    relative to ``root``. Kernel files that register ops are returned separately so that a build compiles only the
    kernels its model uses; the signal library (custom audio front-end ops, and kissfft) only for a model that uses
    them (:func:`signal_sources`).
    """
    cml = (Path(root) / "CMakeLists.txt").read_text()
    block = cml[cml.index("target_sources(pico-tflmicro"):]
    block = block[:block.index(")")]
    common, kernels, signal = [], {}, []
    for rel in _SRC.findall(block):
        if rel.startswith(SIGNAL_DIRS):
            signal.append(rel)
            continue
        if "/lite/micro/kernels/" in rel:
            ops = tuple(_REGISTER.findall((Path(root) / rel).read_text(errors="replace")))
            if ops:
                kernels[rel] = ops
                continue
        common.append(rel)
    return tuple(common), kernels, tuple(signal)


@lru_cache(maxsize=256)
def _signal_includes(root: str, rel: str) -> tuple[str, ...]:
    """The signal-library / kissfft files ``rel`` #includes, resolved like the compiler (own folder, then the
    include path), relative to ``root``."""
    here = Path(rel).parent
    found = []
    for inc in _INCLUDE.findall((Path(root) / rel).read_text(errors="replace")):
        for base in (here, *map(Path, TFLM_INCLUDES), *map(Path, SIGNAL_INCLUDES)):
            cand = (base / inc).as_posix()
            if cand.startswith(SIGNAL_DIRS) and (Path(root) / cand).is_file():
                found.append(cand)
                break
    return tuple(found)


def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _implements(root: str, source: str, headers: set[str]) -> bool:
    """Does ``source`` define what a header in ``headers`` declares? Its own header: the one of the same stem in
    its folder (kiss_fft_int16.cpp -> kiss_fft_int16.h), else the same-folder header it includes whose stem is
    closest to its own (rfft_int16.cpp -> rfft.h, msb_32.cpp -> msb.h, fft_auto_scale_common.cpp ->
    fft_auto_scale_kernel.h)."""
    src = Path(source)
    own = (src.parent / (src.stem + ".h")).as_posix()
    if (Path(root) / own).is_file():
        return own in headers
    local = [h for h in _signal_includes(root, source) if Path(h).parent == src.parent and h.endswith(".h")]
    if not local:
        return False
    best = max(local, key=lambda h: _common_prefix(Path(h).stem, src.stem))
    return _common_prefix(Path(best).stem, src.stem) > 0 and best in headers


def signal_sources(root: Path, kernels: list[str]) -> list[str]:
    """Exactly the signal-library and kissfft sources the signal-op ``kernels`` (paths relative to ``root``) need.

    Derived from the tree: follow the kernels' #includes within the signal library; every library source that
    implements a reached header is compiled too (and its includes followed), until nothing new is reached. A file
    that another one #includes as code (the kissfft wrappers include kiss_fft.c) is not compiled on its own.
    """
    key = str(root)
    library = _tflm_library_sources(key)[2]
    selected, reached, textual = set(kernels), set(), set()
    todo = list(kernels)
    while todo:
        while todo:
            for inc in _signal_includes(key, todo.pop()):
                if inc not in reached:
                    reached.add(inc)
                    todo.append(inc)
                    if inc.endswith(_SOURCE_SUFFIXES):
                        textual.add(inc)
        for src in library:
            if src.endswith(_SOURCE_SUFFIXES) and src not in selected and _implements(key, src, reached):
                selected.add(src)
                todo.append(src)
    return sorted(selected - textual)


def kernel_source(kernel: str) -> str:
    """The tree path of an op-table kernel file: signal ops are relative to src/, builtins to kernels/. A kernel
    named ``<tree>:<path>`` (a reference kernel taken from another pinned tree, e.g. ``tflite-micro:``) is that
    tree's file, as an absolute path (it compiles against pico-tflmicro's headers)."""
    if ":" in kernel:
        tree, rel = kernel.split(":", 1)
        return (vendor.require(vendor.manifest()[tree]) / rel).as_posix()
    return f"src/{kernel}" if kernel.startswith("signal/") else f"src/tensorflow/lite/micro/kernels/{kernel}"


def outside_tree(compiled: list[str]) -> tuple[list[str], list[str]]:
    """(pico-tflmicro-relative sources, absolute ones from other trees) of a :func:`tflm_sources` list."""
    return [s for s in compiled if not Path(s).is_absolute()], [s for s in compiled if Path(s).is_absolute()]


def tflm_sources(root: Path, kernel_files: list[str], template_folders: list[Path] = ()) -> list[str]:
    """Library sources for a model whose ops are registered in ``kernel_files`` (op-table kernel paths): the
    kernels, the signal library they need, and only the runtime / CMSIS-NN sources they and the firmware
    reference (fwtool/firmware/sources.py)."""
    common, kernels, signal = _tflm_library_sources(str(root))
    wanted = {kernel_source(k) for k in kernel_files}
    missing = {w for w in wanted - set(kernels) - set(signal) if not (Path(w).is_absolute() and Path(w).is_file())}
    if missing:
        raise FwtoolError(f"pico-tflmicro at {root} has no kernel source {sorted(missing)[0]}",
                          "use the pinned pico-tflmicro revision ('fwtool vendor sync') or regenerate the op table")
    builtin = sorted(w for w in wanted if w in kernels or Path(w).is_absolute())
    sig = signal_sources(root, sorted(wanted - set(builtin)))
    needed = sources.needed_sources(Path(root), common, builtin + sig, TFLM_INCLUDES + SIGNAL_INCLUDES,
                                    _tree_revision(root), sources.template_roots(list(template_folders), root))
    return needed + builtin + sig


def unity_groups(compiled: list[str], kernel_files: list[str]) -> dict[str, list[str]]:
    """The TFLM library's C++ sources compiled as one unit per group (CMake UNITY_BUILD_MODE GROUP): every unit
    parses flatbuffers' schema and the runtime headers once instead of once per file (fire_alarm: 41 files in
    ~11 s of CPU instead of ~100 s). Only sources that register no op: the kernel files each define their own
    Init/Prepare/Eval in an anonymous namespace and stay separate, as do the signal library (its wrappers include
    kiss_fft.c as text) and C sources (CMSIS-NN). All of the pinned tree's such sources compile together, so any
    subset does. Groups: ``tflm_kernels`` (kernel helpers) and ``tflm_runtime`` (the rest), so the size report
    still tells them apart."""
    separate = {kernel_source(k) for k in kernel_files}
    groups: dict[str, list[str]] = {"tflm_runtime": [], "tflm_kernels": []}
    for src in compiled:
        if src in separate or not src.endswith((".cpp", ".cc")) or src.startswith(SIGNAL_DIRS):
            continue
        groups["tflm_kernels" if "/kernels/" in src else "tflm_runtime"].append(src)
    return {name: srcs for name, srcs in groups.items() if srcs}


def _tree_revision(root: Path) -> str:
    """The pinned revision of the pico-tflmicro tree at ``root`` (its folder name carries it), for caches."""
    try:
        return vendor.manifest()["pico-tflmicro"].rev
    except (KeyError, FwtoolError):
        return Path(root).name


def tflm_includes(kernel_files: list[str]) -> list[str]:
    """pico-tflmicro include folders for the build (kissfft's only when signal ops are compiled)."""
    uses_signal = any(k.startswith("signal/") for k in kernel_files)
    return list(TFLM_INCLUDES) + (list(SIGNAL_INCLUDES) if uses_signal else [])


# pico-tflmicro hard-defines TF_LITE_PICO_MULTICORE here (core 1 computes part of each matrix product). Single-core
# builds (--tflm-cores 1, and every image for the emulator, which has no core 1) compile a copy without that line.
MULTICORE_SOURCE = "src/third_party/cmsis_nn/Source/NNSupportFunctions/arm_nn_mat_mult_nt_t_s8.c"
_MULTICORE_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+TF_LITE_PICO_MULTICORE\b[^\n]*$", re.M)


def _patched_copy(rel: str, patched: str, patch_dir: Path, what: str) -> Path:
    """Write ``patched`` (a changed copy of pico-tflmicro's ``rel``) to ``patch_dir``; return its path."""
    dst = Path(patch_dir) / Path(rel).name
    write_if_changed(dst, f"// Generated by fwtool from pico-tflmicro's {rel}: {what}.\n"
                          f"// Do not edit; re-run fwtool build.\n" + patched)
    return dst


def single_core_patch(tflm_root: Path, patch_dir: Path) -> SourcePatch:
    """A copy of MULTICORE_SOURCE in ``patch_dir`` without the define (or a note that none is needed)."""
    src = Path(tflm_root) / MULTICORE_SOURCE
    text = src.read_text()
    patched, n = _MULTICORE_DEFINE.subn("/* fwtool --tflm-cores 1: the TF_LITE_PICO_MULTICORE define was removed here */", text)
    if n == 0:
        if "TF_LITE_PICO_MULTICORE" in text:
            raise FwtoolError(f"{src.name} in {tflm_root} mentions TF_LITE_PICO_MULTICORE but fwtool found no "
                              "'#define' line to remove", "use the pinned pico-tflmicro ('fwtool vendor sync')")
        return SourcePatch(MULTICORE_SOURCE, None, f"--tflm-cores 1: {src.name} has no TF_LITE_PICO_MULTICORE "
                                                   "define (already single-core); unchanged")
    dst = _patched_copy(MULTICORE_SOURCE, patched, patch_dir, "single-core TFLM")
    return SourcePatch(MULTICORE_SOURCE, dst,
                       f"--tflm-cores 1: compiled a copy of pico-tflmicro's {src.name} without TF_LITE_PICO_MULTICORE "
                       f"(core 1 unused; required for the emulator) from {dst}")


# pico-tflmicro dfea53b's RESIZE_NEAREST_NEIGHBOR ignores the op's half_pixel_centers flag (hard-coded false; upstream
# TFLM and TFLite honour it), so a model converted with it (fire_alarm is) samples other pixels than the reference.
# Found by `fwtool validate`. Every build that compiles this kernel uses a copy that reads the flag.
RESIZE_NN_SOURCE = "src/tensorflow/lite/micro/kernels/resize_nearest_neighbor.cpp"
_RESIZE_NN_BUG = re.compile(r"op_params\.half_pixel_centers\s*=\s*false\s*;")


def resize_half_pixel_patch(sources: list[str], tflm_root: Path, patch_dir: Path) -> SourcePatch | None:
    """A copy of RESIZE_NN_SOURCE that honours half_pixel_centers; None when not in ``sources`` or not needed."""
    if RESIZE_NN_SOURCE not in sources:
        return None
    src = Path(tflm_root) / RESIZE_NN_SOURCE
    patched, n = _RESIZE_NN_BUG.subn("op_params.half_pixel_centers = params->half_pixel_centers;  // fwtool fix",
                                     src.read_text())
    if n == 0:  # a fixed upstream: nothing to do
        return None
    dst = _patched_copy(RESIZE_NN_SOURCE, patched, patch_dir, "honours half_pixel_centers")
    return SourcePatch(RESIZE_NN_SOURCE, dst,
                       f"RESIZE_NEAREST_NEIGHBOR: compiled a copy of pico-tflmicro's {src.name} that honours the op's "
                       "half_pixel_centers flag (pico-tflmicro ignores it, unlike TFLM and TFLite)")


class RP2040Family(Family):
    name = "rp2040"
    template_dir = "rp2040"
    virtual_target = "rp2040js"  # fwtool/emulator/targets.py: rp2040js, single core (no core 1)
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
        gen = "ninja" if runner.which("ninja") else "make" if runner.which("make") else None
        return [{"name": "cmake generator", "ok": gen is not None,
                 "detail": f"{gen} found" if gen else "neither make nor ninja: sudo apt-get install make"}]

    def vendor_paths(self) -> dict[str, Path]:
        return {d.name: vendor.require(d) for d in vendor.deps_for(self.name, "build")}

    def template_context(self, plan, vendor_paths: dict[str, Path]) -> dict:
        root = vendor_paths["pico-tflmicro"]
        compiled, other = outside_tree(tflm_sources(root, plan.kernel_files, render.layers(self.template_dir, plan.app)))
        return {"tflm_root": escape.cmake_quoted(root.as_posix()), "tflm_version": vendor.manifest()["pico-tflmicro"].version,
                "tflm_sources": compiled, "tflm_unity_groups": unity_groups(compiled, plan.kernel_files),
                "tflm_patched_sources": [escape.cmake_quoted(s) for s in other],
                "tflm_includes": tflm_includes(plan.kernel_files), "tflm_defines": list(RP2040_DEFINES),
                "app_vendor_libs": vendor_libs(plan.app.vendor, vendor_paths), **mic_values(plan.board),
                **registrations.template_values(plan.model, plan.ops, root, kernel_source),
                # audio apps have a real-time budget per hop: the model's kernels and CMSIS-NN at -O2
                "tflm_fast_sources": fast_sources(root, plan) if getattr(plan, "audio", None) is not None else []}

    def patches(self, plan, vendor_paths: dict[str, Path], patch_dir: Path) -> list[SourcePatch]:
        """The resize fix for every build that compiles that kernel; the single-core copy for --tflm-cores 1."""
        root = vendor_paths["pico-tflmicro"]
        compiled = [kernel_source(k) for k in plan.kernel_files]
        found = [resize_half_pixel_patch(compiled, root, patch_dir)]
        if plan.options.tflm_cores == 1:  # the dual-core CMSIS-NN kernel without TF_LITE_PICO_MULTICORE
            found.append(single_core_patch(root, patch_dir))
        return [p for p in found if p is not None]

    @staticmethod
    def _generator() -> tuple[str, str]:
        if runner.which("ninja"):
            return "Ninja", "ninja"
        if runner.which("make"):
            return "Unix Makefiles", "make"
        raise FwtoolError("neither ninja nor make was found", "sudo apt-get install make (or ninja-build)")

    def configure_args(self, request: CompileRequest) -> list[str]:
        gen, _ = self._generator()
        paths = request.vendor_paths
        return ["cmake", "-S", str(request.project_dir), "-B", str(request.build_dir), "-G", gen,
                "-DCMAKE_BUILD_TYPE=Release", "-DPICO_NO_PICOTOOL=1",
                f"-DPICO_SDK_PATH={paths['pico-sdk']}", f"-DPICO_TINYUSB_PATH={paths['tinyusb']}",
                f"-DPICO_BOARD={request.board.sdk['pico_board']}", *self._launcher()]

    @staticmethod
    def _launcher() -> list[str]:
        """Use ccache when installed: a new out dir or model then reuses the compiled SDK/TFLM objects."""
        if os.environ.get("FWTOOL_NO_CCACHE") or not runner.which("ccache"):
            return []
        return [f"-DCMAKE_{lang}_COMPILER_LAUNCHER=ccache" for lang in ("C", "CXX")]

    def compile(self, request: CompileRequest) -> CompiledFiles:
        build_dir, log = request.build_dir, request.log
        build_dir.mkdir(parents=True, exist_ok=True)
        args = self.configure_args(request)
        stamp = build_dir / ".fwtool-configure"
        key = hashlib.sha256(json.dumps(args).encode()).hexdigest()
        if not (build_dir / "CMakeCache.txt").is_file() or not stamp.is_file() or stamp.read_text() != key:
            log("-- fwtool: configuring (cmake)")
            rc, lines = runner.stream(args, on_line=log, on_command=log)
            if rc != 0:
                stamp.unlink(missing_ok=True)
                raise FwtoolError(f"cmake configure failed: {_first_error(lines)}",
                                  f"see {build_dir}/CMakeFiles/CMakeError.log; 'fwtool doctor' checks the setup")
            if any("USB support will be unavailable" in ln for ln in lines):
                stamp.unlink(missing_ok=True)
                raise FwtoolError(f"pico-sdk found no usable tinyusb at {request.vendor_paths['tinyusb']} "
                                  "(USB stdio would be missing)",
                                  "run 'fwtool vendor sync tinyusb' or point PICO_TINYUSB_PATH at a full checkout")
            stamp.write_text(key)
        jobs = str(request.jobs or os.cpu_count() or 2)
        # The objects carry -g, so ccache would key on the build folder; these let other out dirs share them.
        env = {"CCACHE_NOHASHDIR": "1", "CCACHE_BASEDIR": str(build_dir.parent)}
        _, tool = self._generator()  # the generator's own tool, so its command line is the one logged
        rc, lines = runner.stream([tool, "-C", str(build_dir), "-j", jobs], env=env, on_line=log, on_command=log)
        if rc != 0:
            raise link_overflow(lines, request.board.name) or FwtoolError(
                f"compile failed: {_first_error(lines)}", f"full log: {build_dir.parent}/build.log")
        elf = build_dir / "firmware.elf"
        if not elf.is_file():
            raise FwtoolError("the build finished but produced no firmware.elf", f"inspect {build_dir}")
        return CompiledFiles(elf=elf, bin=build_dir / "firmware.bin", map=build_dir / "firmware.elf.map")

    def package(self, compiled: CompiledFiles, board: Board) -> dict[str, bytes]:
        if compiled.bin is None:
            raise FwtoolError("the build produced no firmware.bin to make a UF2 from", "re-run 'fwtool build'")
        data = compiled.bin.read_bytes()
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

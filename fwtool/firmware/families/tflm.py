"""TFLM from pico-tflmicro, as every family that compiles it uses it: the library's sources (read from the pinned
tree's own CMakeLists, only what a model's kernels and the firmware reference), include folders and defines, the
unity groups, the template values they make, and the build-time fixes of upstream files (as SourcePatch data).

A family composes this module (RP2040, PSoC 6 and the families to come call its functions); it holds nothing that
is specific to one board family.
"""
from __future__ import annotations

import dataclasses

import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from fwtool.core import escape, vendor
from fwtool.core.errors import FwtoolError
from fwtool.core.files import write_if_changed
from fwtool.firmware import registrations, render, sources
from fwtool.firmware.families.base import SourcePatch

if TYPE_CHECKING:
    from fwtool.firmware.plan import BuildPlan

TFLM_INCLUDES = ["src", "src/third_party/ruy", "src/third_party/gemmlowp", "src/third_party/flatbuffers/include",
                 "src/third_party/cmsis/CMSIS/Core/Include", "src/third_party/cmsis_nn",
                 "src/third_party/cmsis_nn/Include"]
TFLM_DEFINES = ["TF_LITE_DISABLE_X86_NEON=1", "TF_LITE_STATIC_MEMORY=1", "TF_LITE_USE_CTIME=1", "CMSIS_NN=1",
                "ARDUINO=1", "TFLITE_USE_CTIME=1"]  # as pico-tflmicro's own CMakeLists defines them
_SRC = re.compile(r"\$\{CMAKE_CURRENT_LIST_DIR\}/(src/\S+\.(?:cpp|cc|c))\s*$", re.M)
_REGISTER = re.compile(r"^TFLMRegistration\s+Register_(\w+)\s*\(\s*\)\s*\{", re.M)


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
# builds (--tflm-cores 1, and the single-core families psoc6/nrf52) compile a copy without that line.
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
                       f"(core 1 unused) from {dst}")


# The profile app's per-core time (`fwtool profile` on a dual-core build): a copy of MULTICORE_SOURCE whose split
# matrix product times each core's share with the SDK timer (time_us_32) into counters the profile app defines and
# reads around every operator (templates/apps/profile). Only the profile app's image compiles it: the image
# `fwtool build` makes keeps the upstream file.
_SPLIT_TIMING = [
    ('#include "pico/multicore.h"\n',
     '#include "pico/multicore.h"\n#include "hardware/timer.h"\n'
     '/* fwtool profile: busy us of [0] core 0\'s share, [1] core 1\'s share, [2] core 0 waiting for core 1 */\n'
     'extern volatile uint32_t fwt_split_us[3];\nextern volatile uint32_t fwt_split_calls;\n'),
    ("static void core1_mat_mul_worker(void) {\n    mat_mul_task(&g_core1_mat_mul_args);\n",
     "static void core1_mat_mul_worker(void) {\n    const uint32_t fwt_t1 = time_us_32();\n"
     "    mat_mul_task(&g_core1_mat_mul_args);\n    fwt_split_us[1] += time_us_32() - fwt_t1;\n"),
    ("    mat_mul_task(&core0_args);\n",
     "    uint32_t fwt_t0 = time_us_32();\n    mat_mul_task(&core0_args);\n"
     "    fwt_split_us[0] += time_us_32() - fwt_t0;\n    fwt_split_calls += 1;\n    fwt_t0 = time_us_32();\n"),
    ("    const uint32_t core1_result = multicore_fifo_pop_blocking();\n",
     "    const uint32_t core1_result = multicore_fifo_pop_blocking();\n"
     "    fwt_split_us[2] += time_us_32() - fwt_t0;\n"),
]


def split_timing_patch(tflm_root: Path, patch_dir: Path) -> SourcePatch:
    """MULTICORE_SOURCE with each core's share of the split matrix product timed (the profile app, 2 cores)."""
    src = Path(tflm_root) / MULTICORE_SOURCE
    text = src.read_text()
    for old, new in _SPLIT_TIMING:
        if text.count(old) != 1:
            raise FwtoolError(f"{src.name} in {tflm_root} is not the dual-core split fwtool times per core (no single "
                              f"{old.strip()!r})", "use the pinned pico-tflmicro ('fwtool vendor sync')")
        text = text.replace(old, new)
    dst = _patched_copy(MULTICORE_SOURCE, text, patch_dir, "each core's share of the split timed (fwtool profile)")
    return SourcePatch(MULTICORE_SOURCE, dst, f"profile app: compiled a copy of pico-tflmicro's {src.name} that times "
                                              f"each core's share of the split matrix product (per-core time) from {dst}")


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


def template_values(plan: BuildPlan, root: Path, template_dir: str, defines: list[str],
                    exclude: tuple[str, ...] | frozenset[str] = ()) -> dict:
    """The TFLM keys of a family's template context: the library sources for ``plan``'s kernels (minus
    ``exclude``, e.g. pico-only files), the patched-in files of other trees, include folders, ``defines`` and
    the op registrations."""
    needed = tflm_sources(root, plan.kernel_files, render.layers(template_dir, plan.app))
    compiled, other = outside_tree([s for s in needed if s not in exclude])
    return {"tflm_root": escape.cmake_quoted(root.as_posix()),
            "tflm_version": vendor.manifest()["pico-tflmicro"].version,
            "tflm_sources": compiled, "tflm_patched_sources": [escape.cmake_quoted(s) for s in other],
            "tflm_includes": tflm_includes(plan.kernel_files), "tflm_defines": list(defines),
            **registrations.template_values(plan.model, plan.ops, root, kernel_source)}


def single_core_patches(plan, root: Path, patch_dir: Path, cpu: str) -> list:
    """A single-core Cortex-M family's patches: the resize fix for a model with that kernel, and always the copy of
    pico-tflmicro's convolution helper without the RP2040 dual-core define (psoc6, nrf52)."""
    compiled = [kernel_source(k) for k in plan.kernel_files]
    single = single_core_patch(root, patch_dir)
    if single.copy is not None:
        single = dataclasses.replace(single, note=f"{cpu}: compiled a copy of pico-tflmicro's "
                                                  f"{Path(single.upstream).name} without the RP2040 dual-core "
                                                  "TF_LITE_PICO_MULTICORE define")
    return [p for p in (resize_half_pixel_patch(compiled, root, patch_dir), single) if p is not None]

"""RP2040: how an app's vendor trees (app.toml ``vendor``) are compiled, and the board's microphone, as template data.

Each tree gets one CMake static library (templates/rp2040/CMakeLists.txt.j2 ``app_vendor_libs``) with only the
sources the apps use. CMSIS-DSP: the q15 spectrogram front end's functions (fwtool/audio/spectrogram.py), compiled
without ARM_MATH_ROUNDING (CMSIS-DSP's default; the host twin, the ``cmsisdsp`` wheel, matches that build bit for bit).
"""
from __future__ import annotations

from pathlib import Path

from fwtool.core import vendor
from fwtool.core.boards import Board
from fwtool.core.errors import BadInput

# Relative to each tree's root.
_CMSIS_DSP_SOURCES = [
    "Source/TransformFunctions/arm_rfft_q15.c", "Source/TransformFunctions/arm_rfft_init_q15.c",
    "Source/TransformFunctions/arm_cfft_q15.c", "Source/TransformFunctions/arm_cfft_init_q15.c",
    "Source/TransformFunctions/arm_cfft_radix4_q15.c", "Source/TransformFunctions/arm_bitreversal2.c",
    "Source/TransformFunctions/arm_bitreversal.c", "Source/CommonTables/arm_common_tables.c",
    "Source/CommonTables/arm_const_structs.c", "Source/ComplexMathFunctions/arm_cmplx_mag_q15.c",
    "Source/FastMathFunctions/arm_sqrt_q31.c", "Source/BasicMathFunctions/arm_mult_q15.c",
    "Source/BasicMathFunctions/arm_shift_q15.c", "Source/FastMathFunctions/arm_cos_f32.c",
    "Source/SupportFunctions/arm_float_to_q15.c",
]
# The CMSIS core headers CMSIS-DSP includes (cmsis_compiler.h) come from pico-sdk's cmsis_core (pico-tflmicro's
# partial copy lacks m-profile/); the firmware links the app's libraries before tflm so they are found first.

RECIPES = {
    "cmsis-dsp": {
        "target": "cmsis_dsp_frontend", "why": "the q15 spectrogram (window, rfft, magnitude), no ARM_MATH_ROUNDING",
        "sources": _CMSIS_DSP_SOURCES, "includes": ["Include", "PrivateInclude"], "defines": [],
        "options": "-O2 -w", "pio": [], "link": ["pico_stdlib", "cmsis_core"], "extra_includes": [],
    },
    "microphone-library-for-pico": {
        "target": "pico_pdm_mic", "why": "PDM microphone capture (PIO + DMA, OpenPDM2PCM filter)",
        "sources": ["src/pdm_microphone.c", "src/OpenPDM2PCM/OpenPDMFilter.c"], "includes": ["src/include"],
        "defines": [], "options": "-O2 -w", "pio": ["src/pdm_microphone.pio"],
        "link": ["pico_stdlib", "hardware_dma", "hardware_pio"], "extra_includes": [],
    },
}


# Trees an app reads data from at build time (nothing compiled): tflite-micro holds the kws preprocessor model
# (fwtool/firmware/preprocessor.py); the device compiles pico-tflmicro's copy of its kernels.
DATA_ONLY = ("tflite-micro",)


def vendor_libs(app_vendor: list[str] | tuple[str, ...], vendor_paths: dict[str, Path]) -> list[dict]:
    """``app_vendor_libs``: one CMake library description per tree the app names (absolute paths)."""
    libs = []
    known = vendor.manifest()
    for name in app_vendor:
        if name in DATA_ONLY:
            continue
        recipe = RECIPES.get(name)
        if recipe is None:
            raise BadInput(f"the rp2040 family does not know how to compile vendor tree '{name}'",
                           "add a recipe for it to fwtool/firmware/families/rp2040_apps.py")
        root = vendor_paths[name]
        includes = [(root / i).as_posix() for i in recipe["includes"]]
        includes += [(vendor_paths[t] / i).as_posix() for t, i in recipe["extra_includes"]]
        libs.append({"name": name, "version": known[name].version if name in known else "?",
                     "target": recipe["target"], "why": recipe["why"],
                     "sources": [(root / s).as_posix() for s in recipe["sources"]], "includes": includes,
                     "defines": list(recipe["defines"]), "options": recipe["options"],
                     "pio": [(root / s).as_posix() for s in recipe["pio"]], "link": list(recipe["link"])})
    return libs


def mic_values(board: Board) -> dict:
    """``mic``: the board's PDM microphone wiring from its ``[pdm_mic]`` table (present = 0 without one)."""
    t = board.pdm_mic  # types checked by the board schema; the RP2040's ranges here
    if t is None:
        return {"mic": {"present": 0, "data_pin": -1, "clk_pin": -1, "pio": 0, "sm": 0}}
    data, clk, pio, sm = t.data_pin, t.clk_pin, t.pio, t.sm
    if not (0 <= data <= 29 and 0 <= clk <= 29 and data != clk and pio in (0, 1) and 0 <= sm <= 3):
        raise BadInput(f"board '{board.name}': [pdm_mic] data_pin={data} clk_pin={clk} pio={pio} sm={sm} is not "
                       "valid on an RP2040 (GPIO 0..29, distinct pins, pio 0|1, sm 0..3)", "fix the board file")
    return {"mic": {"present": 1, "data_pin": data, "clk_pin": clk, "pio": pio, "sm": sm}}


# CMSIS-NN folders whose functions a convolution / pooling / fully-connected model spends its time in.
FAST_NN_DIRS = ("ConvolutionFunctions", "NNSupportFunctions", "FullyConnectedFunctions", "PoolingFunctions")


def fast_sources(tflm_root: Path, plan) -> list[str]:
    """Absolute paths of the TFLM sources an audio app compiles at -O2: its model's kernels and CMSIS-NN's hot
    folders (the emulated fire_alarm hop: 28.3 ms invoke at -Os)."""
    root = Path(tflm_root)
    kernels = [f"src/tensorflow/lite/micro/kernels/{k}" for k in plan.kernel_files]
    nn = sorted(p.relative_to(root).as_posix() for d in FAST_NN_DIRS
                for p in (root / "src/third_party/cmsis_nn/Source" / d).glob("*.c"))
    return [(root / s).as_posix() for s in kernels + nn]

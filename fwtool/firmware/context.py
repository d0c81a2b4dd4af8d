"""The template context of a build: generic values from the plan, the family's values, and the app's values
(data only; nothing here edits its inputs)."""
from __future__ import annotations

from pathlib import Path

from fwtool import __version__
from fwtool.audio import device as audio_device
from fwtool.firmware.apps import template_values
from fwtool.firmware import capture as capture_mod
from fwtool.firmware.families import SourcePatch, apply_patches
from fwtool.firmware.preprocessor import template_values as preprocessor_values
from fwtool.firmware import speed
from fwtool.firmware.plan import BuildPlan, sanitize
from fwtool.core import escape, protocol


STRIP_ERROR_STRINGS = "TF_LITE_STRIP_ERROR_STRINGS"  # also turns ScopedMicroProfiler into a no-op


def tflm_defines_for(app, defines: list[str]) -> list[str]:
    """The family's TFLM defines for ``app``: an app that attaches a TFLM profiler (app.toml ``tflm_profiler``)
    gets them without STRIP_ERROR_STRINGS, which compiles TFLM's per-operator profiler hook out."""
    return [d for d in defines if not (app.tflm_profiler and d.split("=")[0] == STRIP_ERROR_STRINGS)]


def tensor_desc(t) -> str:
    return f"{t.dtype.lower()}:{t.shape_str}"


def generic_context(p: BuildPlan) -> dict:
    """What every family's templates get: model, ops, arena, labels, embedded inputs, console, protocol formats.

    User text is escaped here for where the templates put it (core/escape): file names and input sources go into
    ``//`` comments (``c_comment``), labels into C string literals (``c_string``)."""
    opts, model = p.options, p.model
    embedded = b"".join(p.inputs)
    stdio = p.stdio
    return {
        "fwtool_version": __version__, "board_name": p.board.name, "model_name": sanitize(model.name),
        "model_file": escape.c_comment(model.path.name), "model_sha": model.sha256, "model_sha_short": model.sha256[:12],
        "model_bytes": model.size, "model_hex": escape.c_array_lines(model.data),
        "input_bytes": len(embedded), "input_hex": escape.c_array_lines(embedded), "input_source": escape.c_comment(p.inputs_source),
        # the same bytes seen as vectors (the validate app runs each once)
        "vectors_hex": escape.c_array_lines(embedded), "vector_count": max(1, len(p.inputs)),
        "vector_bytes": len(p.inputs[0]) if p.inputs else 0, "vector_source": escape.c_comment(p.inputs_source),
        "vectors_sha": p.inputs_sha or "none",
        "arena_bytes": p.arena.total, "ops": p.ops, "op_count": len(p.ops), "kernel_files": p.kernel_files,
        "input_desc": ",".join(map(tensor_desc, model.inputs)), "output_desc": ",".join(map(tensor_desc, model.outputs)),
        "labels": [escape.c_string(label) for label in p.labels], "led_pin": p.board.led_pin,
        "stdio_usb": int(stdio == "usb"), "stdio_uart": int(stdio == "uart"),
        "on_fault": p.board.debug.on_fault,  # [debug] on_fault: "halt" | "reset" after FWT:FAULT (every family)
        "usb_wait_ms": opts.usb_wait_ms, "loop_delay_ms": opts.loop_delay_ms, "fmt": protocol.c_formats(),
        **speed.template_values(p),  # tflm_cores, clock_mhz, opt (banner) and the clock's CMake lines
    }


def template_context(p: BuildPlan, vendor_paths: dict[str, Path], patches: list[SourcePatch] = ()) -> dict:
    """Generic values, the app's, then the family's, with ``patches`` swapped into the TFLM source list."""
    ctx = generic_context(p)
    ctx.update(template_values(p.app))
    ctx.update(audio_device.template_values(p.audio))
    ctx.update(preprocessor_values(p.preprocessor))
    ctx.update(p.family.template_context(p, {**vendor_paths, **p.app_vendor}))
    if "tflm_defines" in ctx:
        ctx["tflm_defines"] = tflm_defines_for(p.app, ctx["tflm_defines"])
    ctx.update(template_values(p.app))
    ctx.update(capture_mod.template_values(p.capture))
    ctx["app_defines"] = [*ctx["app_defines"], *(d for d in ctx.pop("capture_defines") if d not in ctx["app_defines"])]
    if patches:
        sources, copies = apply_patches(ctx["tflm_sources"], list(patches))
        ctx["tflm_sources"] = sources
        ctx["tflm_patched_sources"] = [*ctx["tflm_patched_sources"], *(escape.cmake_quoted(c) for c in copies)]
        if ctx.get("tflm_fast_sources"):  # a patched copy of a hot source is just as hot (e.g. the resize fix)
            fast = {Path(s).name for s in ctx["tflm_fast_sources"]}
            ctx["tflm_fast_sources"] = [*ctx["tflm_fast_sources"],
                                        *(Path(c).as_posix() for c in copies if Path(c).name in fast)]
    return ctx

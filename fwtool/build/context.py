"""The template context of a build: generic values from the plan, the family's values, and the app's values
(data only; nothing here edits its inputs)."""
from __future__ import annotations

from pathlib import Path

from fwtool import __version__
from fwtool.build.apps import template_values
from fwtool.build.families import SourcePatch, apply_patches
from fwtool.build.plan import BuildPlan, sanitize
from fwtool.core import protocol


def hex_lines(data: bytes, per_line: int = 16) -> list[str]:
    if not data:
        return ["0x00,"]
    return [", ".join(f"0x{b:02x}" for b in data[i:i + per_line]) + ","
            for i in range(0, len(data), per_line)]


def tensor_desc(t) -> str:
    return f"{t.dtype.lower()}:{t.shape_str}"


def generic_context(p: BuildPlan) -> dict:
    """What every family's templates get: model, ops, arena, labels, embedded inputs, console, protocol formats."""
    opts, model = p.options, p.model
    embedded = b"".join(p.inputs)
    stdio = p.stdio
    return {
        "fwtool_version": __version__, "board_name": p.board.name, "model_name": sanitize(model.name),
        "model_file": model.path.name, "model_sha": model.sha256, "model_sha_short": model.sha256[:12],
        "model_bytes": model.size, "model_hex": hex_lines(model.data),
        "input_bytes": len(embedded), "input_hex": hex_lines(embedded), "input_source": p.inputs_source,
        # the same bytes seen as vectors (the validate app runs each once)
        "vectors_hex": hex_lines(embedded), "vector_count": max(1, len(p.inputs)),
        "vector_bytes": len(p.inputs[0]) if p.inputs else 0, "vector_source": p.inputs_source,
        "vectors_sha": p.inputs_sha or "none",
        "arena_bytes": p.arena.total, "ops": p.ops, "op_count": len(p.ops), "kernel_files": p.kernel_files,
        "input_desc": tensor_desc(model.inputs[0]), "output_desc": tensor_desc(model.outputs[0]),
        "labels": p.labels, "led_pin": p.board.led_pin,
        "stdio_usb": int(stdio == "usb"), "stdio_uart": int(stdio == "uart"),
        "usb_wait_ms": opts.usb_wait_ms, "loop_delay_ms": opts.loop_delay_ms, "fmt": protocol.c_formats(),
    }


def template_context(p: BuildPlan, vendor_paths: dict[str, Path], patches: list[SourcePatch] = ()) -> dict:
    """Generic values, the app's, then the family's, with ``patches`` swapped into the TFLM source list."""
    ctx = generic_context(p)
    ctx.update(template_values(p.app))
    ctx.update(p.family.template_context(p, vendor_paths))
    ctx.update(template_values(p.app))
    if patches:
        sources, copies = apply_patches(ctx["tflm_sources"], list(patches))
        ctx["tflm_sources"] = sources
        ctx["tflm_patched_sources"] = [*ctx["tflm_patched_sources"], *copies]
    return ctx

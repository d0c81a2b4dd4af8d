"""``report.json``: what a build made and why, as plain data (``fwtool build --json`` prints it)."""
from __future__ import annotations

from pathlib import Path

from fwtool import __version__
from fwtool.firmware import components, speed
from fwtool.firmware.elfsize import Sizes
from fwtool.firmware.plan import BuildPlan
from fwtool.firmware.result import Artifacts
from fwtool.core import vendor
from fwtool.image import uf2


def usage(sizes: Sizes, board) -> dict:
    return {"flash_bytes": sizes.flash, "flash_total": board.flash_bytes,
            "flash_pct": round(100 * sizes.flash / board.flash_bytes, 2),
            "ram_bytes": sizes.ram, "ram_total": board.sram_bytes,
            "ram_pct": round(100 * sizes.ram / board.sram_bytes, 2)}


def uf2_summary(path: Path) -> dict:
    every = uf2.parse(path.read_bytes())
    blocks = [b for b in every if not b.ignored]
    out = {"blocks": len(blocks), "family_id": f"0x{blocks[0].family_id:08X}",
           "start": f"0x{blocks[0].address:08X}", "bytes": len(every) * uf2.BLOCK_SIZE}
    if len(blocks) < len(every):  # RP2350: the E10 work-around block, as pico-sdk's tools emit it
        out["workaround_blocks"] = [f"0x{b.address:08X}" for b in every if b.ignored]
    return out


def text_components(sizes: Sizes, artifacts: Artifacts, ctx: dict) -> dict:
    """The firmware's text by component (firmware/components.py); ``bytes`` adds up to ``sizes.text``."""
    if artifacts.elf is None:
        return {"text": sizes.text, "bytes": {"unattributed": sizes.text}, "rows": []}
    rows = components.by_component(artifacts.elf, artifacts.map,
                                   [*ctx.get("tflm_sources", []), *ctx.get("tflm_patched_sources", [])])
    return {"text": sizes.text, "bytes": rows,
            "rows": [{"component": label, "bytes": n, "pct": pct} for label, n, pct in components.table(rows)]}


def build_report(p: BuildPlan, ctx: dict, sizes: Sizes, artifacts: Artifacts, build: dict,
                 toolchain: dict[str, str | None]) -> dict:
    """The report of a finished build; ``build`` holds the timings, changed files and notes."""
    report = {
        "fwtool": __version__, "board": p.board.to_dict(), "model": p.model.to_dict(),
        "ops": p.ops, "arena": p.arena.to_dict(), "labels": p.labels,
        "preprocessor": p.preprocessor.to_dict() if p.preprocessor else None,
        "capture": p.capture.to_dict() if p.capture else None,
        "input": {"source": p.inputs_source, "bytes": p.input_bytes, "vectors": len(p.inputs)},
        "fit_check": p.fit,
        "sizes": sizes.to_dict(),
        "text_by_component": text_components(sizes, artifacts, ctx),
        "usage": usage(sizes, p.board),
        "image_kind": artifacts.image_kind,
        "files": artifacts.files(),
        "build": {**build, "tflm_sources": len(ctx["tflm_sources"]), "kernel_files": p.kernel_files,
                  "tflm_cores": p.options.tflm_cores, **speed.report_values(p), "app": p.app.name, "stdio": p.stdio},
        "toolchain": toolchain,
        "vendor": {d.name: vendor.locate(d).to_dict() for d in vendor.deps_for(p.board.family, "build")},
    }
    if artifacts.uf2 is not None:
        report["uf2"] = uf2_summary(artifacts.uf2)
    return report

"""``fwtool build``: model in, checked, fit-checked, compiled, packaged and reported firmware out."""
from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from fwtool import __version__
from fwtool.model import arena as arena_mod
from fwtool.build import elfsize, render
from fwtool.core import protocol, vendor
from fwtool.image import uf2
from fwtool.build.apps import get_app
from fwtool.core.boards import Board, get_board
from fwtool.core.errors import BadInput, DoesNotFit
from fwtool.build.families import get_family
from fwtool.model.tflite import Model, check_for_tflm, load_model, resolver_calls
from fwtool.model.quantize import tflite_for_build
from fwtool.core.toolchain import require_all

ARTIFACTS = ("firmware.uf2", "firmware.elf", "firmware.bin", "firmware.map", "report.json")


@dataclass
class BuildOptions:
    board: str
    model: Path
    out_dir: Path | None = None
    arena: int | None = None
    input: Path | None = None
    labels: Path | None = None
    stdio: str | None = None  # usb | uart (default: the board's)
    app: str = "inference"  # templates/<family>/apps/<app>/
    representative: Path | None = None  # with a .keras/.h5/SavedModel --model: quantize it (cached)
    jobs: int | None = None
    tflm_cores: int = 2
    usb_wait_ms: int = 2500
    loop_delay_ms: int = 500
    extra: dict = field(default_factory=dict)  # family/app specific additions


@dataclass
class Plan:
    """Everything decided before the compiler runs (and all a fit check needs)."""

    board: Board
    model: Model
    arena: arena_mod.ArenaSize
    labels: list[str]
    input_bytes: bytes
    input_source: str
    fit: dict


def _sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", text)[:48] or "x"


def read_labels(path: Path | None, count: int) -> list[str]:
    labels: list[str] = []
    if path is not None:
        if not path.is_file():
            raise BadInput(f"labels file {path} does not exist", "pass a text file with one label per line")
        labels = [_sanitize(ln.strip()) for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
        if len(labels) != count:
            raise BadInput(f"{path.name} has {len(labels)} labels but the model outputs {count} values",
                           "give exactly one label per output value, one per line")
    return labels or [f"class_{i}" for i in range(count)]


def read_input(path: Path | None, model: Model) -> tuple[bytes, str]:
    t = model.inputs[0]
    if path is None:
        return b"", "zeros"
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:
        raise BadInput(f"cannot read {path} as a .npy array ({type(e).__name__})",
                       "save the input with numpy.save(); pickled objects are not accepted") from e
    if arr.size != t.elements:
        raise BadInput(f"{path.name} has {arr.size} values, input '{t.name}' needs {t.elements} "
                       f"({t.shape_str})", f"save an array of shape {t.shape_str}")
    dtype = t.numpy_dtype
    if arr.dtype.kind == "f":  # real-valued input: quantize with the tensor's own parameters
        scale, zp = (t.scale[0], t.zero_point[0]) if t.scale else (1.0, 0)
        info = np.iinfo(dtype)
        arr = np.clip(np.round(arr / scale) + zp, info.min, info.max)
    return np.asarray(arr).astype(dtype).tobytes(), f"{path.name}"


def fit_report(board: Board, family, model: Model, arena_bytes: int, input_bytes: int) -> dict:
    """Flash and RAM needed vs available, with margins (negative: byte-exact shortfall). Never raises."""
    flash_need = model.size + input_bytes + family.code_reserve_bytes
    ram_need = arena_bytes + family.ram_reserve_bytes
    result = {
        "flash": {"model": model.size, "input": input_bytes, "code_reserve": family.code_reserve_bytes,
                  "required": flash_need, "available": board.flash_bytes, "margin": board.flash_bytes - flash_need},
        "ram": {"arena": arena_bytes, "reserve": family.ram_reserve_bytes, "required": ram_need,
                "available": board.sram_bytes, "margin": board.sram_bytes - ram_need},
    }
    problems = []
    if flash_need > board.flash_bytes:
        problems.append(f"flash short by {flash_need - board.flash_bytes:,} bytes (model {model.size:,} + "
                        f"code reserve {family.code_reserve_bytes:,} > {board.flash_bytes:,})")
    if ram_need > board.sram_bytes:
        problems.append(f"RAM short by {ram_need - board.sram_bytes:,} bytes (arena {arena_bytes:,} + "
                        f"reserve {family.ram_reserve_bytes:,} > {board.sram_bytes:,})")
    result["fits"] = not problems
    result["problems"] = problems
    return result


def fit_check(board: Board, family, model: Model, arena_bytes: int, input_bytes: int) -> dict:
    result = fit_report(board, family, model, arena_bytes, input_bytes)
    if result["problems"]:
        raise DoesNotFit(f"{model.path.name} does not fit {board.name}: " + "; ".join(result["problems"]),
                         "use a smaller or int8-quantized model (fewer filters/units, smaller input), "
                         "or a board with more memory ('fwtool boards')")
    return result


def plan(opts: BuildOptions) -> Plan:
    board = get_board(opts.board)
    family = get_family(board.family)
    app = get_app(family.template_dir, opts.app)
    model = load_model(tflite_for_build(opts.model, opts.representative, opts.extra.setdefault("notes", [])))
    check_for_tflm(model)
    app.check_model(model)
    input_bytes, input_source = read_input(opts.input, model)
    arena = arena_mod.size_for(model, opts.arena)
    labels = read_labels(opts.labels, model.outputs[0].elements)
    fit = fit_check(board, family, model, arena.total, len(input_bytes))
    return Plan(board, model, arena, labels, input_bytes, input_source, fit)


def _hex_lines(data: bytes, per_line: int = 16) -> list[str]:
    if not data:
        return ["0x00,"]
    return [", ".join(f"0x{b:02x}" for b in data[i:i + per_line]) + ","
            for i in range(0, len(data), per_line)]


def _tensor_desc(t) -> str:
    return f"{t.dtype.lower()}:{t.shape_str}"


def template_context(p: Plan, opts: BuildOptions, family, vendor_paths: dict[str, Path]) -> dict:
    ops = resolver_calls(p.model)
    kernel_files = sorted({op["kernel"] for op in ops})
    stdio = opts.stdio or p.board.stdio
    ctx = {
        "fwtool_version": __version__, "board_name": p.board.name, "model_name": _sanitize(p.model.name),
        "model_file": p.model.path.name, "model_sha": p.model.sha256, "model_sha_short": p.model.sha256[:12],
        "model_bytes": p.model.size, "model_hex": _hex_lines(p.model.data),
        "input_bytes": len(p.input_bytes), "input_hex": _hex_lines(p.input_bytes), "input_source": p.input_source,
        "arena_bytes": p.arena.total, "ops": ops, "op_count": len(ops), "kernel_files": kernel_files,
        "input_desc": _tensor_desc(p.model.inputs[0]), "output_desc": _tensor_desc(p.model.outputs[0]),
        "labels": p.labels, "led_pin": p.board.led_pin,
        "stdio_usb": int(stdio == "usb"), "stdio_uart": int(stdio == "uart"),
        "usb_wait_ms": opts.usb_wait_ms, "loop_delay_ms": opts.loop_delay_ms, "fmt": protocol.c_formats(),
    }
    ctx.update(family.template_context(ctx, vendor_paths))
    ctx.update(opts.extra.get("template", {}))
    return ctx


def _remove_artifacts(out_dir: Path) -> None:
    for name in ARTIFACTS:
        (out_dir / name).unlink(missing_ok=True)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def run(opts: BuildOptions, on_line: Callable[[str], None] = lambda s: None,
        on_step: Callable[[str], None] = lambda s: None) -> dict:
    t_start = time.monotonic()
    on_step("checking the model")
    p = plan(opts)  # raises before anything is written
    family = get_family(p.board.family)
    tool_status = require_all([t for t in family.tools if t.required_for == "build"])
    vendor_paths = family.vendor_paths()
    out_dir = Path(opts.out_dir or Path("build") / p.board.name).resolve()
    project_dir, build_dir = out_dir / "project", out_dir / "cmake"

    on_step("generating the project")
    ctx = template_context(p, opts, family, vendor_paths)
    notes = opts.extra.setdefault("notes", [])  # patched copies of upstream sources, in the build folder
    notes += [n for n in family.tflm_patches(ctx, vendor_paths, project_dir / "tflm_patched", opts.tflm_cores)
              if n not in notes]
    files = render.render_all(family.template_dir, ctx, opts.app)
    changed = render.write_project(files, project_dir)
    _remove_artifacts(out_dir)  # from here on a failure must not leave an older firmware looking current
    t_compile = time.monotonic()
    on_step("compiling")
    with open(out_dir / "build.log", "w") as log:
        def tee(line: str) -> None:
            log.write(line + "\n")
            on_line(line)

        artifacts = family.compile(project_dir, build_dir,
                                   {"board": p.board, "vendor_paths": vendor_paths, "jobs": opts.jobs}, tee)
    compile_s = time.monotonic() - t_compile

    on_step("checking sizes and writing the UF2")
    sizes = elfsize.sizes(artifacts.elf, p.board.flash_base, p.board.flash_bytes)
    if sizes.flash > p.board.flash_bytes or sizes.ram > p.board.sram_bytes:
        raise DoesNotFit(f"linked firmware does not fit {p.board.name}: flash {sizes.flash:,}/"
                         f"{p.board.flash_bytes:,} B, RAM {sizes.ram:,}/{p.board.sram_bytes:,} B",
                         "use a smaller model or a smaller --arena")
    packaged = family.package(artifacts, p.board, out_dir)
    outputs = {}
    for suffix, data in packaged.items():
        outputs[suffix] = out_dir / f"firmware.{suffix}"
        _atomic_write(outputs[suffix], data)
    for src, name in ((artifacts.elf, "firmware.elf"), (artifacts.bin, "firmware.bin"), (artifacts.map, "firmware.map")):
        if src and src.is_file():
            shutil.copyfile(src, out_dir / (name + ".tmp"))
            os.replace(out_dir / (name + ".tmp"), out_dir / name)
            outputs[name.split(".")[1]] = out_dir / name
    report = {
        "fwtool": __version__, "board": p.board.to_dict(), "model": p.model.to_dict(),
        "ops": ctx["ops"], "arena": p.arena.to_dict(), "labels": p.labels,
        "input": {"source": p.input_source, "bytes": len(p.input_bytes)},
        "fit_check": p.fit,
        "sizes": sizes.to_dict(),
        "usage": {"flash_bytes": sizes.flash, "flash_total": p.board.flash_bytes,
                  "flash_pct": round(100 * sizes.flash / p.board.flash_bytes, 2),
                  "ram_bytes": sizes.ram, "ram_total": p.board.sram_bytes,
                  "ram_pct": round(100 * sizes.ram / p.board.sram_bytes, 2)},
        "files": {k: str(v) for k, v in outputs.items()},
        "build": {"seconds": round(time.monotonic() - t_start, 2), "compile_seconds": round(compile_s, 2),
                  "changed_files": changed, "tflm_sources": len(ctx["tflm_sources"]),
                  "kernel_files": ctx["kernel_files"], "tflm_cores": opts.tflm_cores, "app": opts.app,
                  "stdio": "usb" if ctx["stdio_usb"] else "uart",
                  "project_dir": str(project_dir), "build_dir": str(build_dir),
                  "notes": list(opts.extra.get("notes", []))},
        "toolchain": {name: s.version for name, s in tool_status.items()},
        "vendor": {d.name: vendor.locate(d).to_dict() for d in vendor.deps_for(p.board.family, "build")},
    }
    if "uf2" in outputs:
        blocks = uf2.parse(outputs["uf2"].read_bytes())
        report["uf2"] = {"blocks": len(blocks), "family_id": f"0x{blocks[0].family_id:08X}",
                         "start": f"0x{blocks[0].address:08X}", "bytes": len(blocks) * uf2.BLOCK_SIZE}
    report["files"]["report"] = str(out_dir / "report.json")
    _atomic_write(out_dir / "report.json", json.dumps(report, indent=2).encode())
    return report


def last_report(out_dir: Path | None = None, board: str | None = None) -> dict | None:
    """The report of the most recent successful build (for flash/monitor defaults)."""
    candidates = [Path(out_dir) / "report.json"] if out_dir else (
        [Path("build") / board / "report.json"] if board else list(Path("build").glob("*/report.json")))
    found = [c for c in candidates if c.is_file()]
    if not found:
        return None
    newest = max(found, key=lambda c: c.stat().st_mtime)
    return json.loads(newest.read_text())

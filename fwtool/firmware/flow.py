"""``fwtool build``: model in, checked, fit-checked, compiled, packaged and reported firmware out.

One straight line: options -> :func:`~fwtool.firmware.plan.plan` (every check, nothing written) -> the template
context (generic + family + patches, as data) -> render -> compile -> size check -> package -> report ->
:class:`~fwtool.firmware.result.BuildResult`.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from fwtool.firmware import codesize, elfsize, outdir, render
from fwtool.firmware.context import template_context
from fwtool.firmware.families import CompileRequest
from fwtool.firmware.plan import BuildOptions, BuildPlan, plan
from fwtool.firmware.report import build_report
from fwtool.firmware.result import Artifacts, BuildResult
from fwtool.core.errors import DoesNotFit, FwtoolError
from fwtool.core.files import atomic_write, copy_atomic
from fwtool.core.toolchain import require_all
from fwtool.model import arena as arena_mod

__all__ = ["BuildOptions", "BuildPlan", "plan", "run", "template_context"]


def remove_outputs(out_dir: Path) -> None:
    """From here on a failure must not leave an older firmware (of any kind) looking current."""
    outdir.remove_outputs(out_dir)


def start_attempt(opts: BuildOptions) -> None:
    """Every build attempt first checks its output folder and removes fwtool's previous outputs there, so that
    any failure, including a refusal before compiling, leaves no firmware.*/report.json of an earlier build."""
    requested = outdir.requested(opts.out_dir, opts.board, opts.model)
    if requested is None:  # unknown board and no --out: refused by plan(), nothing of ours to clean
        return
    outdir.check(requested)
    if requested.is_dir():
        outdir.remove_outputs(requested)


def check_linked_size(sizes: elfsize.Sizes, p: BuildPlan) -> None:
    if sizes.flash > p.board.flash_bytes or sizes.ram > p.board.sram_bytes:
        raise DoesNotFit(f"linked firmware does not fit {p.board.name}: flash {sizes.flash:,}/"
                         f"{p.board.flash_bytes:,} B, RAM {sizes.ram:,}/{p.board.sram_bytes:,} B",
                         "use a smaller model or a smaller --arena")


def record_code_size(sizes: elfsize.Sizes, p: BuildPlan) -> bool:
    """Keep this build's non-model flash for the next fit check of the same family/board/app/op set/trees."""
    embedded = p.input_bytes + (p.preprocessor.model.size if p.preprocessor else 0)
    return codesize.record(p.code_size_fields, codesize.non_model_flash(sizes.flash, p.model.size, embedded))


def tighten_arena(p: BuildPlan, result: BuildResult, arena_probe: Callable[[Path], int | None] | None) -> bool:
    """After a build whose arena is the host measurement + margin: read the arena the firmware really uses on the
    family's virtual board (``arena_probe(image)``) and record it (model/arena.py). True when recorded: a rebuild
    then allocates that figure + the small target margin."""
    target = p.arena_target
    if arena_probe is None or target is None or p.arena.source != "measured" or p.options.arena is not None:
        return False
    used = arena_probe(result.artifacts.image)
    return used is not None and arena_mod.record_target(target, used)


def run(opts: BuildOptions, on_line: Callable[[str], None] = lambda s: None,
        on_step: Callable[[str], None] = lambda s: None,
        on_progress: Callable[[int, int], None] = lambda done, total: None,
        arena_probe: Callable[[Path], int | None] | None = None) -> BuildResult:
    """Build ``opts``; ``on_line`` gets every build-tool line (and command line), ``on_step`` each step,
    ``on_progress`` (done, total) whenever the family's build tool shows progress. With ``arena_probe`` (the
    virtual board's banner reader, emulator/arena_probe.py) a first build of a model measures its arena on the
    target and re-links with that figure (:func:`tighten_arena`). The output folder is locked for the whole run
    (core/locks.py): a second build into it waits for this one, or fails with --no-wait."""
    folder = outdir.requested(opts.out_dir, opts.board, opts.model)
    if folder is None:  # unknown board and no --out: plan() refuses it, there is no folder to lock
        return _run(opts, on_line, on_step, on_progress, arena_probe)
    with outdir.locked(folder):
        return _run(opts, on_line, on_step, on_progress, arena_probe)


def _run(opts: BuildOptions, on_line, on_step, on_progress, arena_probe) -> BuildResult:
    p, result = build_once(opts, on_line, on_step, on_progress)
    target = p.arena_target
    if arena_probe is not None and target and p.arena.source == "measured" and opts.arena is None:
        on_step("measuring the arena on the virtual board")
        if tighten_arena(p, result, arena_probe):
            on_step("re-linking with the arena measured on the virtual board")
            tight = build_once(opts, on_line, on_step, on_progress)[1]
            # arena_used is what stays allocated; AllocateTensors may need more on the way (temporary buffers,
            # seen on tiny models): check that the tight image allocates, else keep the figure that did
            on_step("checking the tight arena on the virtual board")
            if arena_probe(tight.artifacts.image) is not None:
                return tight
            arena_mod.record_target(target, arena_mod.target_used(target) or p.arena.total, allocate=p.arena.total)
            on_step("re-linking: the tight arena did not allocate on the virtual board")
            result = build_once(opts, on_line, on_step, on_progress)[1]
    return result


def build_once(opts: BuildOptions, on_line: Callable[[str], None], on_step: Callable[[str], None],
               on_progress: Callable[[int, int], None]) -> tuple[BuildPlan, BuildResult]:
    """One plan → render → compile → package → report pass (see :func:`run`)."""
    t_start = time.monotonic()
    on_step("checking the model")
    start_attempt(opts)  # from here on, any failure leaves no firmware.* / report.json in the out dir
    p = plan(opts)  # raises before anything is written
    family, board, out_dir = p.family, p.board, p.out_dir
    tool_status = require_all([t for t in family.tools if t.required_for == "build"])
    vendor_paths = family.vendor_paths()
    project_dir, build_dir = out_dir / "project", out_dir / "cmake"

    on_step("generating the project")
    patches = family.patches(p, vendor_paths, project_dir / "tflm_patched")  # copies of upstream sources
    notes = list(dict.fromkeys([*p.notes, *(s.note for s in patches)]))
    ctx = template_context(p, vendor_paths, patches)
    files = render.render_all(family.template_dir, ctx, p.app)
    changed = render.write_project(files, project_dir)
    remove_outputs(out_dir)
    t_compile = time.monotonic()
    on_step("compiling")
    with open(out_dir / "build.log", "w") as log:
        def tee(line: str) -> None:
            log.write(line + "\n")
            on_line(line)
            progress = family.progress(line)
            if progress:
                on_progress(*progress)

        compiled = family.compile(CompileRequest(project_dir, build_dir, board, vendor_paths, opts.jobs, tee,
                                                 opts.builder))
    compile_s = time.monotonic() - t_compile

    on_step(f"checking sizes and writing the {board.image_kind.upper()}")
    sizes = elfsize.sizes(compiled.elf, board.flash_base, board.flash_bytes)
    check_linked_size(sizes, p)
    record_code_size(sizes, p)
    images = family.package(compiled, board)
    if board.image_kind not in images and getattr(compiled, board.image_kind, None) is None:
        raise FwtoolError(f"the {family.name} family made no {board.image_kind} image for {board.name}",
                          "fix the board's [image] kind or the family's package()")
    paths: dict[str, Path] = {}
    for kind, data in images.items():
        paths[kind] = out_dir / f"firmware.{kind}"
        atomic_write(paths[kind], data)
        if kind in family.executable_kinds:  # a program this machine may run (linux: the static executable)
            paths[kind].chmod(0o755)
    for kind in ("elf", "bin", "hex", "map"):
        src = getattr(compiled, kind)
        if kind not in paths and src is not None and src.is_file():
            paths[kind] = out_dir / f"firmware.{kind}"
            copy_atomic(src, paths[kind])
    artifacts = Artifacts(out_dir, board.image_kind, **paths)
    build = {"seconds": round(time.monotonic() - t_start, 2), "compile_seconds": round(compile_s, 2),
             "changed_files": changed, "project_dir": str(project_dir), "build_dir": str(build_dir),
             "notes": notes, **({"builder": compiled.builder} if compiled.builder else {})}
    report = build_report(p, ctx, sizes, artifacts, build, {name: s.version for name, s in tool_status.items()})
    atomic_write(out_dir / outdir.REPORT_NAME, json.dumps(report, indent=2))
    return p, BuildResult(board.name, p.app.name, artifacts, report)

"""``fwtool validate``: run the same input vectors on the target and through the host reference, compare outputs.

1. Input vectors (vectors.py), for every model input: ``--inputs file.npy`` once per input in input order, or one
   ``.npz`` keyed by input name or index (float arrays are quantized with that input's scale/zero point), or N
   seeded random values over each input type's full range.
2. The image: on a target that can be fed bytes (the virtual RP2040, a board on its port) the very image
   ``fwtool build`` makes for the same options (``build/<board>`` or ``--out``, its inference app, dual-core by
   default), given the vectors one by one over its console (console.py; fwtool/core/protocol_vectors.py). The report
   names it (path, sha256). Elsewhere, or with ``embedded``: the ``validate`` app with the vectors embedded
   (``BuildOptions.inputs``, so the build's fit check counts them), which runs each once and prints every output
   tensor (``FWT:OUT v= t= us= q=``, then ``FWT:DONE n= inputs=``; fwtool/core/protocol.py).
3. It runs on a target (fwtool/targets/): the board family's virtual target (rp2040js; QEMU's Cortex-M4 for
   psoc6), a real board (flashed, then read over its port), or a target the caller made (a labgrid place).
4. The host reference runs the same vectors (reference.py): the TFLM Python interpreter (``tflite-micro``,
   reference kernels), or TensorFlow Lite (``--reference tflite``). ``--reference-model`` compares against a
   different .tflite.
5. Per output tensor (compare.py): max |Δ| and mean |Δ| in quantized steps, top-1 agreement, cosine similarity; the
   thresholds ``--max-diff`` and ``--min-agreement`` decide the exit code (8 when not met).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fwtool.core import protocol

import numpy as np

from fwtool.firmware import fit, outdir
from fwtool.firmware.outdir import default_out_dir
from fwtool.firmware import flow as build_flow
from fwtool.firmware.families import get_family
from fwtool.firmware.result import BuildResult
from fwtool.core.boards import get_board
from fwtool.core.files import file_sha256
from fwtool.core.errors import BadInput, DoesNotFit, Exit, FwtoolError
from fwtool.emulator import latency_stats
from fwtool.emulator.arena_probe import banner_arena_used
from fwtool.model.tflite import Model, load_model
from fwtool.targets import registry
from fwtool.targets.base import Target, TargetConfig
from fwtool.validate import compare, console, reference, vectors as vectors_mod

INT_TYPES = ("INT8", "UINT8", "INT16", "INT32")


@dataclass
class ValidateOptions:
    model: Path
    board: str = "pico"
    inputs: Path | list[Path] | None = None  # one .npy per model input (in order), or one .npz keyed by name/index
    count: int | None = None  # random vectors (default 20), or the first N of --inputs
    seed: int = 0
    reference: str = "tflm"  # tflm | tflite
    reference_model: Path | None = None
    target: str = "emulator"  # emulator | board
    port: str | None = None  # board: serial port or pyserial URL (default: the one the flashed board appears on)
    serial: str | None = None  # board: USB serial number
    flash: bool = True  # board: flash the validation firmware first
    max_diff: int = 1
    min_agreement: float = 100.0  # percent
    budget_ms: float | None = None
    out_dir: Path | None = None
    arena: int | None = None
    jobs: int | None = None
    timeout: float = 300.0  # seconds for the run on the target
    clock: str | None = None  # --clock (firmware/speed.py)
    opt: str = "size"  # --opt size|speed
    tflm_cores: int | None = None  # default: the target's cores (TargetInfo.cores: 2 on the virtual RP2040 too)
    embedded: bool = False  # build the validate app with the vectors embedded instead of running build's image
    # Fleet runs (fwtool.lab): the validation firmware built once for every board, and the target to run it on
    # (a labgrid place: fwtool/lab/target.py) instead of the one ``target``/``board`` name.
    prebuilt: BuildResult | None = None
    on_target: Target | None = None


def make_vectors(opts: ValidateOptions, model: Model) -> tuple[list[np.ndarray], str]:
    """One (N, *shape) array per model input, and where they came from."""
    return vectors_mod.make_vectors(model.inputs, opts.inputs, opts.count, opts.seed)


def _per_input(vectors) -> list[np.ndarray]:
    return [vectors] if isinstance(vectors, np.ndarray) else list(vectors)


def _check_model(model: Model, what: str) -> None:
    for t in [*model.inputs, *model.outputs]:
        if t.dtype not in INT_TYPES:
            raise BadInput(f"{what} tensor '{t.name}' is {t.dtype.lower()}; validate compares quantized integer "
                           "tensors", "quantize the model to int8 ('fwtool quantize')")


def _check_reference_signature(model: Model, ref: Model) -> list[str]:
    def sig(m: Model) -> str:
        return ", ".join(f"{t.dtype.lower()}:{t.shape_str}" for t in m.inputs)

    if sig(ref) != sig(model):
        raise BadInput(f"reference model input(s) {sig(ref)} differ from the firmware's {sig(model)}",
                       "pass a reference model with the same inputs")
    problems = []
    if len(ref.outputs) != len(model.outputs):
        problems.append(f"the reference model has {len(ref.outputs)} outputs, the firmware's {len(model.outputs)}")
    return problems


def build_firmware(opts: ValidateOptions, model: Model, vectors, source: str,
                   on_line: Callable[[str], None] = lambda s: None,
                   on_step: Callable[[str], None] = lambda s: None) -> BuildResult:
    """Build the validate app with ``vectors`` embedded; too many vectors for the flash: DoesNotFit saying how
    many fit (the build's own fit check counts the embedded bytes)."""
    cores = opts.tflm_cores or registry.default_cores(opts.board, opts.target, opts.model)
    board = get_board(opts.board, opts.model)
    suffix = "validate-emu" if opts.target == "emulator" else "validate"
    inputs = vectors_mod.as_bytes(vectors)
    out_dir = Path(opts.out_dir) if opts.out_dir else default_out_dir(
        board.name, suffix, model=opts.model, arena=opts.arena, cores=cores, clock=opts.clock, opt=opts.opt,
        inputs=b"".join(inputs))  # a folder per model/vectors/options: a CI matrix never shares one
    bopts = build_flow.BuildOptions(board=opts.board, model=Path(opts.model), out_dir=out_dir, arena=opts.arena,
                                    app="validate", jobs=opts.jobs, tflm_cores=cores, clock=opts.clock, opt=opts.opt,
                                    inputs=inputs, inputs_source=source)
    try:
        return build_flow.run(bopts, on_line=on_line, on_step=on_step)
    except DoesNotFit as e:
        better = _too_many_vectors(board, model, vectors)
        if better is None:
            raise
        raise better from e


def image_options(opts: ValidateOptions) -> build_flow.BuildOptions:
    """What ``fwtool build -b BOARD -m MODEL`` with the same --out/--arena/--tflm-cores/--clock/--opt builds: the
    inference app into ``--out`` or ``build/<board>``."""
    cores = opts.tflm_cores or registry.default_cores(opts.board, opts.target, opts.model)
    return build_flow.BuildOptions(board=opts.board, model=Path(opts.model), out_dir=opts.out_dir, arena=opts.arena,
                                   jobs=opts.jobs, tflm_cores=cores, clock=opts.clock, opt=opts.opt)


def build_image(opts: ValidateOptions, on_line: Callable[[str], None] = lambda s: None,
                on_step: Callable[[str], None] = lambda s: None) -> BuildResult:
    """The image ``fwtool build`` makes for these options (the same call: arena measured on the virtual board)."""
    return build_flow.run(image_options(opts), on_line=on_line, on_step=on_step, arena_probe=banner_arena_used)


def _too_many_vectors(board, model: Model, vectors) -> DoesNotFit | None:
    """The error to give when the vectors (not the model or the arena) are what does not fit; else None."""
    family = get_family(board.family)
    per_input = _per_input(vectors)
    per, count = sum(a[0].nbytes for a in per_input), len(per_input[0])
    n = fit.inputs_that_fit(board, family, model, per)
    if n >= count or n == 0:
        return None
    need = fit.fit_report(board, family, model, 0, per * count)["flash"]["required"]
    return DoesNotFit(f"{count} input vectors of {per:,} B + the model need {need:,} B of flash; "
                      f"{board.name} has {board.flash_bytes:,}", f"validate with --count {n} or fewer")


def make_target(opts: ValidateOptions) -> Target:
    """The target the options name: the caller's own (``on_target``), else the board's virtual or physical one."""
    if opts.on_target is not None:
        return opts.on_target
    cls = registry.target_class(opts.board, opts.target, opts.model)
    return cls(TargetConfig(board=opts.board, port=opts.port, serial=opts.serial, flash=opts.flash))


def _check_device(dev: compare.DeviceRun, model: Model, vectors, flashed: bool) -> None:
    """The board must have run this model on these vectors (checked by the banner and the inputs checksum)."""
    if dev.banner.get("sha256") and not model.sha256.startswith(str(dev.banner["sha256"])):
        raise FwtoolError(f"the board runs model {dev.banner.get('model')} (sha256 {dev.banner['sha256']}), not "
                          f"{model.path.name}", "let validate flash the board (drop --no-flash)", Exit.MISMATCH)
    if not dev.banner.get("sha256") and not flashed:
        raise FwtoolError("the board printed no FWT:BOOT banner, so its model cannot be checked",
                          "let validate flash the board (drop --no-flash)", Exit.MISMATCH)
    if dev.inputs_sha != vectors_mod.vectors_sha(vectors) and (dev.inputs_sha or not flashed):
        raise FwtoolError("the board ran different input vectors than this validation", "let validate flash the "
                          "board (drop --no-flash), with the same --inputs/--count/--seed", Exit.MISMATCH)


def _load_models(opts: ValidateOptions) -> tuple[Model, Model, list[str]]:
    """The firmware's model, the reference model (the same unless --reference-model) and their mismatches."""
    model = load_model(opts.model)
    _check_model(model, model.path.name)
    if opts.reference_model is None:
        return model, model, []
    ref_model = load_model(opts.reference_model)
    _check_model(ref_model, ref_model.path.name)
    return model, ref_model, _check_reference_signature(model, ref_model)


def run(opts: ValidateOptions, on_line: Callable[[str], None] = lambda s: None,
        on_step: Callable[[str], None] = lambda s: None, on_build_line: Callable[[str], None] = lambda s: None) -> dict:
    """Validate; returns the report (``report["ok"]``, ``report["exit_code"]``). Raises for anything that stops
    the comparison from happening (bad input, build failure, target failure)."""
    tgt = make_target(opts)
    model, ref_model, problems = _load_models(opts)
    on_step("preparing input vectors")
    vectors, source = make_vectors(opts, model)

    on_step("running the host reference")
    t0 = time.monotonic()
    ref_out = reference.reference_outputs(ref_model, vectors, opts.reference)
    ref_s = time.monotonic() - t0

    if opts.prebuilt is None and not opts.embedded and console.supports(tgt):
        # build's folder, held from the build to the end of the run: no other build replaces the image meanwhile
        with outdir.locked(outdir.requested(opts.out_dir, opts.board, opts.model)):
            built = None
            if not (opts.target == "board" and not opts.flash):  # --no-flash: the board runs it already
                on_step("building the image (as fwtool build)")
                built = build_image(opts, on_line=on_build_line, on_step=on_step)
            image = built.artifacts.image if built else None
            sha = file_sha256(image) if image and Path(image).is_file() else None
            on_step(f"running on {tgt.info.title}")
            dev, lines, target_info = console.run(tgt, registry.image_for(tgt, opts.board, image, opts.model),
                                                  vectors, len(model.outputs), opts.timeout, on_line, on_step)
        mode = "image"
    else:
        built = opts.prebuilt
        if built is None and not (opts.target == "board" and not opts.flash):  # else the board already runs it
            on_step("building the validation firmware")
            built = build_firmware(opts, model, vectors, source, on_line=on_build_line, on_step=on_step)
        image = built.artifacts.image if built else None
        sha = file_sha256(image) if image and Path(image).is_file() else None
        on_step(f"running on {tgt.info.title}")
        lines, target_info = tgt.run(registry.image_for(tgt, opts.board, image, opts.model), protocol.PREFIX_DONE,
                                     1, opts.timeout, on_line, on_step)
        dev = compare.parse_device_lines(lines, len(_per_input(vectors)[0]), len(model.outputs))
        mode = "validate-app"
    emulated = target_info["kind"] == "emulator"  # a labgrid place reports as a board, virtual or not
    n_vectors = len(_per_input(vectors)[0])
    _check_device(dev, model, vectors, flashed=image is not None)

    outputs, warnings = compare.compare_all(model.outputs, dev.outputs, ref_out, opts.max_diff, opts.min_agreement)
    ok = not problems and all(o["pass"] for o in outputs)
    lat = latency_stats(dev.us, opts.budget_ms, "emulated" if emulated else "board")
    if lat is not None and lat.within_budget is False:
        problems.append(f"p95 invoke latency {lat.p95_ms:.2f} ms exceeds the {opts.budget_ms:g} ms budget")
        ok = False
    return {
        "ok": ok, "exit_code": int(Exit.OK if ok else Exit.MISMATCH),
        "model": {"name": model.name, "file": str(model.path), "sha256": model.sha256},
        "reference": {"backend": opts.reference, "model": ref_model.name, "file": str(ref_model.path),
                      "sha256": ref_model.sha256, "seconds": round(ref_s, 3)},
        "inputs": {"source": source, "count": int(n_vectors), "dtype": model.inputs[0].dtype.lower(),
                   "shape": model.inputs[0].shape, "sha256": vectors_mod.vectors_sha(vectors),
                   "tensors": [{"index": i, "name": t.name, "dtype": t.dtype.lower(), "shape": t.shape}
                               for i, t in enumerate(model.inputs)]},
        "thresholds": {"max_diff": opts.max_diff, "min_agreement": opts.min_agreement, "budget_ms": opts.budget_ms},
        "target": target_info, "board": opts.board,
        "firmware": {"uf2": str(image) if image else None, "image": str(image) if image else None,
                     "sha256": sha, "mode": mode,  # image: fwtool build's own image, fed over its console
                     "app": built.report["build"].get("app") if built else None,
                     "tflm_cores": built.report["build"]["tflm_cores"] if built else None,
                     "notes": built.notes if built else [], "banner": dev.banner},
        "outputs": outputs, "latency": lat.to_dict() if lat else None,
        "timing_note": tgt.info.timing_note if emulated else None,
        "problems": problems + [p for o in outputs for p in (f"output {o['index']}: {x}" for x in o["problems"])],
        "warnings": warnings,
    }

"""What a build will do, decided once before anything is written: :class:`BuildOptions` (what the user asked)
-> :func:`plan` -> :class:`BuildPlan` (board, family, app, model, arena, labels, embedded inputs, fit).

Every check that can refuse a build runs here (model, app, inputs, labels, fit), before anything is written
(flow.run has already removed the previous firmware.*/report.json, so a refused build leaves none).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fwtool.audio import detection as audio_detection
from fwtool.audio import device as audio_device
from fwtool.audio.params import FrontEnd
from fwtool.firmware import fit as fit_mod
from fwtool.firmware import codesize, speed, userdata
from fwtool.firmware.capture import CapturePlan, plan_capture
from fwtool.firmware.apps import App, get_app
from fwtool.firmware.families import Family, get_family
from fwtool.firmware.outdir import default_out_dir
from fwtool.firmware.preprocessor import PreprocessorPlan, labels_for, plan_preprocessor
from fwtool.core import vendor
from fwtool.core.boards import Board, get_board
from fwtool.core.errors import BadInput
from fwtool.model import arena as arena_mod
from fwtool.model.quantize import tflite_for_build
from fwtool.model.tflite import Model, Tensor, check_for_tflm, load_model, resolver_calls


@dataclass
class BuildOptions:
    """What the user asked for (the CLI's options, or validate's)."""

    board: str
    model: Path
    out_dir: Path | None = None
    arena: int | None = None
    # The default app's test input: one .npy per model input (in input order), or one .npz keyed by input name or
    # index (default: zeros). A single Path is accepted too.
    input: Path | list[Path] | None = None
    labels: Path | None = None
    stdio: str | None = None  # usb | uart (default: the board's)
    app: str = "inference"
    representative: Path | None = None  # with a .keras/.h5/SavedModel --model: quantize it (cached)
    jobs: int | None = None
    tflm_cores: int = 2
    clock: str | None = None  # --clock: default | fastest | MHz from the board file (firmware/speed.py)
    opt: str = "size"  # --opt: size (-Os) | speed (the model's kernels and CMSIS-NN hot paths faster)
    usb_wait_ms: int = 2500
    loop_delay_ms: int = 500
    # Input vectors embedded in the image (validate's), each the raw bytes of every input tensor back to back in
    # input order; excludes ``input``.
    inputs: list[bytes] | None = None
    inputs_source: str = ""  # how they were made, for the banner and the report
    preprocessor: Path | None = None  # an app's own front-end model (kws) instead of its default
    detection: Path | None = None  # kws: detection.json (threshold, smoothing) from fwtool train
    capture_s: float | None = None  # --capture: seconds sent after a detection (firmware/capture.py)
    pre_roll_s: float | None = None  # --pre-roll: seconds before it (default 0.3)
    builder: str | None = None  # --builder: the family's build system (psoc6: cmake | mtb); None: its default


@dataclass(frozen=True)
class BuildPlan:
    """Everything decided before the compiler runs (and all a fit check needs)."""

    options: BuildOptions
    board: Board
    family: Family
    app: App
    model: Model
    ops: list[dict] = field(repr=False)  # resolver_calls(model): op, kernel, method
    arena: arena_mod.ArenaSize
    labels: list[str]
    inputs: list[bytes] = field(repr=False)  # embedded input vectors (empty: zeros at run time)
    inputs_source: str
    fit: dict
    out_dir: Path
    notes: list[str] = field(default_factory=list)  # what the plan did for the user (e.g. quantized a model)
    app_vendor: dict[str, Path] = field(default_factory=dict)  # the app's vendor trees (app.toml vendor)
    audio: FrontEnd | None = None  # an audio app's front end, derived from the model input
    preprocessor: PreprocessorPlan | None = None  # a second model the app runs first (kws), own arena
    arena_target: dict | None = None  # fit.arena_target: the key of the arena measured on the virtual board
    code_size_fields: dict = field(default_factory=dict)  # codesize.plan_fields: the code-size cache key
    capture: CapturePlan | None = None  # --capture: the detect-then-capture ring and its link check

    @property
    def kernel_files(self) -> list[str]:
        pre = self.preprocessor.ops if self.preprocessor else []
        return sorted({op["kernel"] for op in [*self.ops, *pre]})

    @property
    def input_bytes(self) -> int:
        return sum(len(v) for v in self.inputs)

    @property
    def inputs_sha(self) -> str | None:
        """sha256[:12] of the embedded vectors as given in ``options.inputs`` (None for a plain build)."""
        if self.options.inputs is None:
            return None
        return hashlib.sha256(b"".join(self.inputs)).hexdigest()[:12]

    @property
    def stdio(self) -> str:
        return self.options.stdio or self.board.stdio


def sanitize(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.\-]", "_", text)[:48] or "x"


def read_labels(path: Path | None, count: int, notes: list[str] | None = None) -> list[str]:
    return userdata.read_labels(path, count, notes)


def read_input(path: Path | list[Path] | None, model: Model) -> tuple[bytes, str]:
    return userdata.read_input(path, model)


def tensor_bytes(t: Tensor) -> int:
    return t.elements * (np.dtype(t.numpy_dtype).itemsize if t.numpy_dtype is not None else 1)


def embedded_inputs(opts: BuildOptions, model: Model) -> tuple[list[bytes], str]:
    """The input vectors the image carries: validate's ``inputs``, else the ``--input`` file (or none: zeros)."""
    if opts.inputs is None:
        data, source = read_input(opts.input, model)
        return ([data] if data else []), source
    if opts.input:
        raise BadInput("an --input file and embedded input vectors exclude each other", "pass one of them")
    want = sum(tensor_bytes(t) for t in model.inputs)
    shapes = " + ".join(f"{t.dtype.lower()} {t.shape_str}" for t in model.inputs)
    for i, v in enumerate(opts.inputs):
        if len(v) != want:
            raise BadInput(f"input vector {i} has {len(v):,} bytes, the model's input(s) need {want:,} ({shapes})",
                           f"give vectors of shape {shapes}")
    return [bytes(v) for v in opts.inputs], opts.inputs_source or f"{len(opts.inputs)} vectors"


def plan(opts: BuildOptions) -> BuildPlan:
    """Check everything and decide the build; raises (FwtoolError) before anything is written."""
    board = get_board(opts.board, opts.model)  # a user board beside the model too (core/boards.py)
    family = get_family(board.family)
    opts = replace(opts, tflm_cores=family.tflm_cores(board, int(opts.tflm_cores)))  # what the image really does
    app = get_app(opts.app)
    app.check_board(board, family.features)
    check_builder(opts.builder, board, family)
    speed.resolve_clock(board, opts.clock)  # a clock or --opt the board cannot do is refused before anything else
    speed.check_opt(opts.opt)
    notes: list[str] = []
    model = load_model(tflite_for_build(opts.model, opts.representative, notes))
    check_for_tflm(model)
    app.check_model(model)
    audio = audio_detection.apply(audio_device.front_end(app.name, audio_device.model_input_of(model.inputs[0])),
                                  opts.detection)
    inputs, inputs_source = embedded_inputs(opts, model)
    target = fit_mod.arena_target(family, app, model)  # once per build: the plan carries it
    arena = arena_mod.size_for(model, opts.arena, target)
    pre = plan_preprocessor(app, opts.preprocessor)
    labels = labels_for(pre, opts.labels, read_labels(opts.labels, model.outputs[0].elements, notes))
    extra_arena, extra_flash = (pre.arena.total, pre.model.size) if pre else (0, 0)  # counted like inputs
    cap = plan_capture(opts.capture_s, opts.pre_roll_s, app=app.name, family=board.family,
                       stdio=opts.stdio or board.stdio, uart_baud=board.uart_baud,
                       inferences_per_s=1000.0 / audio.inference_period_ms if audio else 0.0, labels=len(labels))
    extra_arena += cap.ram_bytes if cap else 0  # the ring is RAM like an arena
    code_fields = codesize.plan_fields(board, family, app, codesize.kernel_files(model, pre),
                                       opts.stdio or board.stdio, opts.tflm_cores)
    code = codesize.reserve_for(code_fields, family.code_reserve_bytes)
    fit = fit_mod.fit_check(board, family, model, arena.total + extra_arena,
                            sum(len(v) for v in inputs) + extra_flash, *code)
    out_dir = Path(opts.out_dir or default_out_dir(board.name)).resolve()
    return BuildPlan(opts, board, family, app, model, resolver_calls(model), arena, labels, inputs, inputs_source,
                     fit, out_dir, notes, app_vendor_paths(app), audio, pre, target, code_fields, cap)


def check_builder(builder: str | None, board: Board, family: Family) -> None:
    """--builder names one of the family's build systems (only PSoC 6 has a choice)."""
    if builder is None or builder in family.builders:
        return
    if not family.builders:
        raise BadInput(f"--builder {builder}: board '{board.name}' ({family.name}) has one build system",
                       "leave out --builder (it chooses between cmake and mtb for PSoC 6 boards)")
    raise BadInput(f"--builder {builder} is not a {family.name} build system",
                   f"use one of: {', '.join(family.builders)}")


def app_vendor_paths(app: App) -> dict[str, Path]:
    """The app's vendor trees (app.toml ``vendor``), located now so a missing tree refuses the build early."""
    known = vendor.manifest()
    for name in app.vendor:
        if name not in known:
            raise BadInput(f"app '{app.name}' needs vendor tree '{name}', which vendor/manifest.toml does not pin",
                           f"add [{name}] to vendor/manifest.toml or fix {app.path.name}/app.toml")
    return {name: vendor.require(known[name]) for name in app.vendor}

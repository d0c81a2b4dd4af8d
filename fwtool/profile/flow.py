"""``fwtool profile``: build the profile app for a model, run it on the virtual board or a real board, and turn its
FWT:PROF lines into per-layer figures (layers.py); ``--compare`` does the same for a second model (compare.py).

Targets (fwtool/targets/): the virtual target of the board's family (rp2040: rp2040js, whose timer counts emulated
cycles at 125 MHz; psoc6: QEMU's Cortex-M4 with 1 instruction = 1 ns, so "cycles" are instructions there — each
declares its clock in TargetInfo), or the real board (flashed, then read over its serial port; µs on the board's
own clock, board file ``clock_hz``).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

from fwtool.firmware import flow as build_flow, outdir
from fwtool.firmware.result import BuildResult
from fwtool.core import protocol
from fwtool.core.boards import get_board
from fwtool.core.errors import BadInput, Exit, FwtoolError
from fwtool.model.tflite import Model, load_model
from fwtool.profile import compare as compare_mod
from fwtool.profile.layers import TOLERANCE_FRACTION, TOLERANCE_US_PER_EVENT, layer_table, parse_lines
from fwtool.targets import registry
from fwtool.targets.base import TargetConfig

APP = "profile"


@dataclass
class ProfileOptions:
    model: Path
    board: str = "pico"
    target: str = "emulator"  # emulator | board
    input: Path | None = None  # .npy for input 0 (default: zeros)
    port: str | None = None  # board: serial port or pyserial URL (default: the one the flashed board appears on)
    serial: str | None = None  # board: USB serial number
    out_dir: Path | None = None
    arena: int | None = None
    jobs: int | None = None
    timeout: float = 300.0  # seconds (wall clock) for the run on the target
    clock: str | None = None  # --clock (firmware/speed.py)
    opt: str = "size"  # --opt size|speed
    tflm_cores: int | None = None  # default: the target's cores (TargetInfo.cores: 2 on the virtual RP2040 too)


def default_out_dir(opts: ProfileOptions) -> Path:
    suffix = "profile-emu" if opts.target == "emulator" else "profile"
    return Path(opts.out_dir) if opts.out_dir else outdir.default_out_dir(  # a folder per model/options
        opts.board, suffix, model=opts.model, arena=opts.arena, input=opts.input, cores=opts.tflm_cores,
        clock=opts.clock, opt=opts.opt)


def build_firmware(opts: ProfileOptions, on_line: Callable[[str], None] = lambda s: None,
                   on_step: Callable[[str], None] = lambda s: None) -> BuildResult:
    cores = opts.tflm_cores or registry.default_cores(opts.board, opts.target, opts.model)
    bopts = build_flow.BuildOptions(board=opts.board, model=Path(opts.model), out_dir=default_out_dir(opts),
                                    arena=opts.arena, input=opts.input, app=APP, jobs=opts.jobs, tflm_cores=cores,
                                    clock=opts.clock, opt=opts.opt)
    return build_flow.run(bopts, on_line=on_line, on_step=on_step)


def run_target(opts: ProfileOptions, image: Path, on_line: Callable[[str], None],
               on_step: Callable[[str], None]) -> tuple[list[str], dict]:
    """The profile session's serial lines and the target description, with its clock (``clock_hz``, ``cycle``)."""
    board = get_board(opts.board, opts.model)
    tgt = registry.target_class(opts.board, opts.target, opts.model)(TargetConfig(board=opts.board, port=opts.port,
                                                                       serial=opts.serial, flash=True))
    clock_hz = tgt.info.clock_hz or board.clock_hz  # a virtual target's own clock, else the board file's
    if not clock_hz:
        raise BadInput(f"board '{board.name}' has no clock_hz in its board file, so cycles cannot be computed",
                       "add clock_hz (the CPU clock in Hz) to the board file")
    on_step(f"running on {tgt.info.title}")
    lines, info = tgt.run(registry.image_for(tgt, opts.board, image, opts.model), protocol.PREFIX_DONE, 1, opts.timeout,
                          on_line, on_step)
    if info.get("clock_mhz"):  # the clk_sys the firmware programmed (virtual RP2040: --clock)
        clock_hz = info["clock_mhz"] * 1e6
    return lines, {**info, "clock_hz": float(clock_hz), "cycle": tgt.info.cycle}


def clock_of(banner: dict, info: dict) -> float:
    """Hz to turn µs into cycles: the clock the firmware's banner names (--clock), else the target's."""
    mhz = banner.get("clock_mhz")
    return float(mhz) * 1e6 if isinstance(mhz, int) and mhz > 0 and info.get("cycle") == "cycle" else info["clock_hz"]


def per_core(info: dict, runs: int, invoke_us: float | None) -> dict | None:
    """Busy time of each core per profiled invoke on the virtual board (core 1 only works inside the dual-core
    kernels: its share says how much of the work was split), from the emulator's per-core cycle counts."""
    cycles, hz = info.get("core_cycles"), info.get("clock_hz")
    if not cycles or not runs or not hz:
        return None
    per = [c / hz * 1e6 / runs for c in cycles]  # the profiled invokes (core 0 also boots and prints)
    return {"core_busy_us_per_invoke": [round(x, 1) for x in per], "core1_launches": info.get("core1_launches"),
            "core1_share_of_invoke": round(per[1] / invoke_us, 3) if invoke_us and len(per) > 1 else None,
            "note": "busy (not sleeping) cycles of each core over the whole run / invokes; core 0's include "
                    "start-up and printing"}


def _check_banner(banner: dict, model: Model) -> None:
    sha = str(banner.get("sha256", ""))
    if sha and not model.sha256.startswith(sha):
        raise FwtoolError(f"the board runs model {banner.get('model')} (sha256 {sha}), not {model.path.name}",
                          "--port names another board than the one profile flashed: drop --port or fix it",
                          Exit.MISMATCH)


def profile_one(opts: ProfileOptions, on_line: Callable[[str], None] = lambda s: None,
                on_step: Callable[[str], None] = lambda s: None,
                on_build_line: Callable[[str], None] = lambda s: None) -> dict:
    """Build, run and tabulate one model (the report ``fwtool profile --json`` prints)."""
    registry.target_class(opts.board, opts.target, opts.model)  # an unknown target is refused before any work
    model = load_model(opts.model)
    board = get_board(opts.board, opts.model)
    on_step(f"building the profile firmware for {model.name}")
    built = build_firmware(opts, on_line=on_build_line, on_step=on_step)
    lines, info = run_target(opts, built.artifacts.image, on_line, on_step)
    capture = parse_lines(lines)
    _check_banner(capture.banner, model)
    info = {**info, "clock_hz": clock_of(capture.banner, info)}
    table = layer_table(model, capture, info["clock_hz"], board.cpu)
    return {
        "model": {"name": model.name, "file": str(model.path), "sha256": model.sha256, "operators": len(model.operators)},
        "board": board.name, "cpu": board.cpu,
        "target": info,
        "firmware": {"image": str(built.artifacts.image), "tflm_cores": built.report["build"]["tflm_cores"],
                     "notes": built.notes, "banner": capture.banner},
        "arena": {"size": int(capture.banner.get("arena", 0) or 0), "used": table["arena_used"]},
        "runs": len(capture.runs),
        "cores": per_core(info, len(capture.runs), table.get("invoke_us")) if opts.target == "emulator" else None,
        "tolerance": f"|invoke - sum of layers| <= {TOLERANCE_FRACTION:.0%} of invoke + {TOLERANCE_US_PER_EVENT} µs "
                     "per layer",
        "timing_note": info.get("timing_note") if opts.target == "emulator" else None,
        **table,
    }


def run(opts: ProfileOptions, compare_model: Path | None = None, on_line: Callable[[str], None] = lambda s: None,
        on_step: Callable[[str], None] = lambda s: None,
        on_build_line: Callable[[str], None] = lambda s: None) -> dict:
    """Profile ``opts.model``; with ``compare_model`` profile that one too (its own build folder, same target)
    and add the side-by-side comparison. Returns ``{"profile": …}`` or ``{"profile", "other", "compare"}``."""
    first = profile_one(opts, on_line, on_step, on_build_line)
    if compare_model is None:
        return {"profile": first}
    out = default_out_dir(opts)
    other_opts = replace(opts, model=Path(compare_model), out_dir=out.with_name(out.name + "-compare"))
    other = profile_one(other_opts, on_line, on_step, on_build_line)
    return {"profile": first, "other": other, "compare": compare_mod.side_by_side(first, other)}

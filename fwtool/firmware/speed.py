"""The speed choices of a build: clk_sys (``--clock``) and the optimisation of the model's hot code (``--opt``).

``--clock``: ``default`` (the board's ``clock_hz``), ``fastest`` (the board file's ``[clock] fastest_mhz``: on the
RP2040 pico-sdk 2.2.0's ``PICO_USE_FASTEST_SUPPORTED_CLOCK``, 200 MHz, with the SDK's own voltage and flash-divider
settings), or one of the board file's ``[clock] allowed_mhz`` (values pico-sdk has PLL settings for; anything else
is refused with the list). ``--opt``: ``size`` (-Os everywhere, the default and today's image) or ``speed`` (the
model's kernels and CMSIS-NN's hot folders, with their patched copies, at speed_flags(): SPEED_FLAGS plus the
CPU's ``speed_cflags`` from fwtool/data/cpus.toml; the rest still -Os).

The emulator needs no setting: the virtual RP2040 derives its cycle time from the PLL the firmware programs.
"""
from __future__ import annotations

from fwtool.core.errors import BadInput
from fwtool.model.inspection import cpu_table

OPT_CHOICES = ("size", "speed")
# --opt speed for every CPU. -O3: fire_alarm at 200 MHz on the RP2040 9.90 ms, 11.08 ms at -O2, 13.8 ms at -Os
# (emulated). -fno-math-errno/-fno-trapping-math: IEEE results unchanged (no errno, no FP exception flags are read),
# but loop-invariant float maths can leave the loop: TFLM's reference RESIZE_NEAREST_NEIGHBOR recomputes its soft-float
# scale per pixel without them (9.90 -> 9.84 ms).
SPEED_FLAGS = ("-O3", "-fno-math-errno", "-fno-trapping-math")
AUDIO_FLAG = "-O2"  # what audio apps compile the same sources with at --opt size (their real-time budget)


def clock_table(board) -> dict:
    """The board file's ``[clock]`` table as a dict (empty keys left out)."""
    c = board.clock
    return {k: v for k, v in (("allowed_mhz", list(c.allowed_mhz)), ("fastest_mhz", c.fastest_mhz)) if v}


def default_mhz(board) -> int:
    return int(round(board.clock_hz / 1e6))


def allowed_mhz(board) -> list[int]:
    table = clock_table(board)
    return sorted({default_mhz(board), *(int(x) for x in table.get("allowed_mhz", ())),
                   *([int(table["fastest_mhz"])] if "fastest_mhz" in table else [])})


def resolve_clock(board, clock: str | int | None) -> int:
    """clk_sys in MHz for ``clock`` (None/'default', 'fastest', or MHz); BadInput naming the allowed values."""
    allowed = allowed_mhz(board)
    choices = "default, fastest, " + ", ".join(map(str, allowed))
    text = "default" if clock is None else str(clock).strip().lower().removesuffix("mhz")
    if text == "default":
        return default_mhz(board)
    if text == "fastest":
        return int(clock_table(board).get("fastest_mhz", default_mhz(board)))
    try:
        mhz = float(text)
    except ValueError:
        raise BadInput(f"--clock {clock} is not a clock: {board.name} runs at {choices} (MHz)",
                       f"use --clock default|fastest or one of {', '.join(map(str, allowed))}") from None
    if mhz not in allowed:
        raise BadInput(f"--clock {clock} MHz is not in {board.name}'s allowed clocks ({', '.join(map(str, allowed))} "
                       "MHz)", f"use --clock default|fastest or one of {', '.join(map(str, allowed))} (the board "
                       "file's [clock] allowed_mhz)")
    return int(mhz)


def check_opt(opt: str | None) -> str:
    opt = opt or "size"
    if opt not in OPT_CHOICES:
        raise BadInput(f"--opt {opt} is not one of {', '.join(OPT_CHOICES)}", "use --opt size or --opt speed")
    return opt


def sdk_clock_cmake(board, mhz: int) -> list[str]:
    """CMake lines (before pico_sdk_init) that make pico-sdk run clk_sys at ``mhz``; none for the default."""
    if mhz == default_mhz(board):
        return []
    if mhz == int(clock_table(board).get("fastest_mhz", 0)):
        return ["set(PICO_USE_FASTEST_SUPPORTED_CLOCK 1)  # fwtool --clock: pico-sdk's fastest supported clk_sys"]
    return [f"add_compile_definitions(SYS_CLK_HZ={mhz * 1_000_000})  # fwtool --clock {mhz}"]


def speed_flags(board) -> tuple[str, ...]:
    """The compile options of --opt speed's hot sources on ``board``'s CPU: SPEED_FLAGS + cpus.toml speed_cflags."""
    row = cpu_table().get(board.cpu, {})
    return SPEED_FLAGS + tuple(row.get("speed_cflags", ()))


def template_values(plan) -> dict:
    """What the templates get: the banner's cores/clock/opt and the clock's CMake lines."""
    opts = plan.options
    mhz = resolve_clock(plan.board, getattr(opts, "clock", None))
    cores = int(opts.tflm_cores)  # already what the family runs (Family.tflm_cores)
    return {"tflm_cores": cores, "clock_mhz": mhz, "opt": check_opt(getattr(opts, "opt", None)),
            # CMake list syntax: COMPILE_OPTIONS "-O3;-f..." (the template only places the string)
            "speed_flag": ";".join(speed_flags(plan.board)) if getattr(opts, "opt", None) == "speed" else AUDIO_FLAG,
            "clock_cmake": sdk_clock_cmake(plan.board, mhz)}


def report_values(plan) -> dict:
    v = template_values(plan)
    return {"clock_mhz": v["clock_mhz"], "opt": v["opt"],
            "clock": getattr(plan.options, "clock", None) or "default"}

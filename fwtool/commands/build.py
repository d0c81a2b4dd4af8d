from pathlib import Path

import click

from fwtool.core import locks, ui
from fwtool.firmware.capture import MAX_CAPTURE_S, MAX_PRE_S, parse_seconds
from fwtool.firmware.flow import BuildOptions, run
from fwtool.firmware.result import BuildResult
from fwtool.emulator.arena_probe import banner_arena_used
from fwtool.core.escape import terminal
from fwtool.model import arena as arena_mod
from fwtool.commands.model_arg import HELP as MODEL_HELP, MODEL


def print_report(r: dict) -> None:
    u, s, a = r["usage"], r["sizes"], r["arena"]
    click.echo(f"board     {r['board']['name']} ({r['board']['title']})")
    m = r["model"]
    click.echo(f"model     {terminal(m['name'])}  {m['bytes']:,} B  sha256 {m['sha256'][:12]}  "
               f"in {' '.join(t['dtype'] + str(t['shape']) for t in m['inputs'])}  "
               f"out {' '.join(t['dtype'] + str(t['shape']) for t in m['outputs'])}")
    click.echo("ops       " + ", ".join(f"{o['op']}{' (CMSIS-NN)' if o['cmsis_nn'] else ''}" for o in r["ops"]))
    click.echo(f"arena     {a['arena_bytes']:,} B ({arena_mod.provenance(a)})")
    click.echo(f"sections  text {s['text']:,}  data {s['data']:,}  bss {s['bss']:,}")
    rows = r.get("text_by_component", {}).get("rows", [])
    if rows:
        click.echo("text by   " + ", ".join(f"{x['component']} {x['bytes']:,}" for x in rows))
    click.echo(f"flash     {ui.bar(u['flash_bytes'], u['flash_total'])} {u['flash_pct']:5.1f}%  "
               f"{u['flash_bytes']:,} / {u['flash_total']:,} B")
    click.echo(f"RAM       {ui.bar(u['ram_bytes'], u['ram_total'])} {u['ram_pct']:5.1f}%  "
               f"{u['ram_bytes']:,} / {u['ram_total']:,} B")
    b = r["build"]
    if "clock_mhz" in b:
        cores = b.get("tflm_cores") or 1
        click.echo(f"speed     TFLM on {cores} core{'s' if cores != 1 else ''}, clk_sys {b['clock_mhz']} MHz "
                   f"(--clock {b.get('clock', 'default')}), --opt {b.get('opt', 'size')}")
    cap = r.get("capture")
    if cap:
        click.echo(f"capture   {(cap['pre_samples'] + cap['post_samples']) / cap['rate']:g} s per detection "
                   f"({cap['pre_samples'] / cap['rate']:g} s pre-roll), {cap['need_bytes_per_s']:,} of "
                   f"{cap['link_bytes_per_s']:,} B/s on {cap['link']}, inference {cap['inference']}")
    click.echo(f"build     {r['build']['seconds']:.1f} s ({len(r['build']['changed_files'])} generated files changed)")
    if b.get("builder"):
        click.echo(f"builder   {b['builder']['name']} ({terminal(b['builder']['why'])})")
    for note in r["build"].get("notes", []):
        click.echo(f"note      {terminal(note)}")
    for k in ("uf2", "hex", "elf", "bin", "map", "report"):
        if k in r["files"]:
            click.echo(f"{k:9} {terminal(r['files'][k])}")


BUILD_OPTIONS = [  # shared with 'fwtool run'
    click.option("--board", "-b", required=True, help="Board name (see 'fwtool boards')."),
    click.option("--model", "-m", required=True, type=MODEL,
                 help="int8 model: " + MODEL_HELP + "; or a .keras/.h5/SavedModel model with --representative."),
    click.option("--representative", "-r", type=click.Path(path_type=Path),
                 help="Inputs (.npy/.npz or folder) to quantize a Keras --model to int8 first (cached by content)."),
    click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Output folder [build/<board>]."),
    click.option("--arena", type=click.IntRange(min=1024), help="Tensor arena bytes (default: measured + margin)."),
    click.option("--input", "input_path", type=click.Path(path_type=Path), multiple=True,
                 help="Test input for the default app (.npy, int8 or float); default zeros. Several inputs: repeat "
                      "it once per input in input order, or give one .npz keyed by input name or index."),
    click.option("--labels", type=click.Path(path_type=Path), help="Text file, one label per output value."),
    click.option("--preprocessor", type=click.Path(path_type=Path),
                 help="kws: your own audio preprocessor .tflite instead of micro_speech's (int16[1,480] -> int8[40])."),
    click.option("--detection", type=click.Path(path_type=Path),
                 help="kws: detection.json from 'fwtool train' (score threshold, inferences averaged) "
                      "[micro_speech's 0.8 over 10]."),
    click.option("--capture", metavar="DURATION",
                 help="kws/audio_classifier: after a detection send the pre-roll + DURATION of audio (e.g. 3s) as FWR "
                      "frames for 'monitor --on-detect'; refused when the console cannot carry it."),
    click.option("--pre-roll", metavar="DURATION", help="With --capture: audio before the detection [300ms]."),
    click.option("--app", default="inference", show_default=True,
                 help="Firmware app (templates/apps/<app>): 'inference' runs the model in a loop."),
    click.option("--stdio", type=click.Choice(["usb", "uart"]), help="Console (default: the board's, usually usb)."),
    click.option("--jobs", "-j", type=click.IntRange(min=1), help="Parallel compile jobs [CPU count]."),
    click.option("--tflm-cores", type=click.Choice(["1", "2"]), default="2", show_default=True,
                 help="RP2040 cores TFLM's convolutions use (the virtual board has both; 1 is a user choice)."),
    click.option("--builder", type=click.Choice(["cmake", "mtb"]),
                 help="PSoC 6: cmake (CMake+Ninja from the pinned trees, the default) or mtb (ModusToolbox 3.x's "
                      "make, needs ModusToolbox installed) [FWTOOL_PSOC6_BUILDER or [psoc6] builder, else cmake]."),
]
SPEED_OPTIONS = [  # also on validate/profile (commands/target_options.py)
    click.option("--clock", default="default", show_default=True,
                 help="clk_sys: 'default' (the board's), 'fastest' (RP2040: pico-sdk's fastest supported, 200 MHz) "
                      "or MHz from the board file's allowed list."),
    click.option("--opt", type=click.Choice(["size", "speed"]), default="size", show_default=True,
                 help="The model's kernels and CMSIS-NN hot paths: size (-Os) or speed (-O3, more flash)."),
]
BUILD_OPTIONS += SPEED_OPTIONS


def build_options(f):
    for option in reversed(BUILD_OPTIONS):
        f = option(f)
    return f


def options_from(kw: dict, **extra) -> BuildOptions:
    return BuildOptions(board=kw["board"], model=kw["model"], out_dir=kw["out_dir"], arena=kw["arena"],
                        input=list(kw["input_path"] or ()) or None, labels=kw["labels"], stdio=kw["stdio"], jobs=kw["jobs"],
                        app=kw["app"], representative=kw["representative"],
                        preprocessor=kw.get("preprocessor"), detection=kw.get("detection"), clock=kw.get("clock"),
                        opt=kw.get("opt") or "size",
                        capture_s=parse_seconds(kw["capture"], "--capture", MAX_CAPTURE_S) if kw.get("capture") else None,
                        pre_roll_s=parse_seconds(kw["pre_roll"], "--pre-roll", MAX_PRE_S) if kw.get("pre_roll") else None,
                        builder=kw.get("builder"),
                        **{"tflm_cores": int(kw.get("tflm_cores") or 2), **extra})


def run_build(opts: BuildOptions, verbose: bool = False) -> BuildResult:
    """Build with a live status line (and every compiler and command line with ``verbose``)."""
    progress = {"step": ""}
    with ui.err.status("fwtool build: starting") as status:
        def on_step(step):
            progress["step"] = step
            status.update(f"fwtool build: {step}")

        def on_line(line):
            if verbose:
                ui.err.print(line, markup=False)

        def on_progress(done, total):
            status.update(f"fwtool build: {progress['step']} [{done}/{total}]")

        return run(opts, on_line=on_line, on_step=on_step, on_progress=on_progress,
                   arena_probe=banner_arena_used)  # the first build of a model measures its arena on the target


@click.command()
@build_options
@click.option("--json", "as_json", is_flag=True, help="Print the build report as JSON on stdout.")
@click.option("--verbose", "-v", is_flag=True, help="Show every compiler line.")
@click.option("--no-wait", is_flag=True, help="Fail at once (exit 11) when another fwtool process is building into "
              "the same folder, instead of waiting for it.")
def build(as_json, verbose, no_wait, **kw):
    """Generate, compile and package firmware that runs MODEL on BOARD.

    The model is checked (int8, ops with TFLM kernels, one subgraph), the arena measured, and flash/RAM fit
    checked before compiling; only the model's kernels are compiled and linked. Writes
    <out>/firmware.uf2 (+ .elf/.bin/.map), <out>/report.json and <out>/build.log. A second build into the same
    folder waits for the first (one 'Blocking: waiting for the lock' line), or fails with --no-wait.

    \b
    Examples:
      fwtool build --board pico --model fire_alarm.tflite
      fwtool build -b pico_w -m kws.tflite --labels labels.txt --input sample.npy
      fwtool build -b pico -m two_inputs.tflite --input a.npy --input b.npy   # one per input, in order
      fwtool build -b pico -m model.tflite --arena 40000 --json > report.json
      fwtool build -b pico -m model.keras --representative train_x.npy   # int8-quantized on the fly
      fwtool build -b pico -m fire_alarm.tflite --clock fastest --opt speed   # 200 MHz, hot kernels at -O2
      fwtool build -b pico -m model.tflite --tflm-cores 1    # TFLM on core 0 only
      fwtool build -b pico --app kws -m example:micro_speech --capture 3s   # detect, then send 3.3 s of audio
      fwtool build -b cy8ckit_062s2_43012 -m fire_alarm.tflite --builder mtb   # ModusToolbox's make
      fwtool build -b pico --app kws -m train/kws_int8.tflite --labels train/labels.txt \\
          --detection train/detection.json                                       # from 'fwtool train'
    """
    ui.set_json(as_json)
    locks.set_no_wait(no_wait)
    result = run_build(options_from(kw), verbose)
    if as_json:
        ui.emit_json(result.report)
    else:
        print_report(result.report)

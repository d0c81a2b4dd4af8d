import sys
from pathlib import Path

import click

from fwtool.commands.target_options import target_run_options
from fwtool.core import ui
from fwtool.core.errors import Exit
from fwtool.validate.audio import AudioValidateOptions, run_audio
from fwtool.validate.flow import ValidateOptions, run
from fwtool.commands import lab_options
from fwtool.commands.model_arg import HELP as MODEL_HELP, MODEL


def print_report(r: dict) -> None:
    t = r["target"]
    where = (t.get("name", "the virtual board (rp2040js)") if t["kind"] == "emulator"
             else f"the board on {t.get('port')}")
    fw = r["firmware"]
    cores = (f", TFLM on {fw['tflm_cores']} core{'s' if fw['tflm_cores'] != 1 else ''}" if fw["tflm_cores"]
             else " (not flashed: already running)")
    click.echo(f"validate  {r['model']['name']} (sha256 {r['model']['sha256'][:12]}) on {where}{cores}")
    if fw.get("image") and fw.get("sha256"):
        how = ("fwtool build's image, vectors over its console" if fw.get("mode") == "image"
               else "the validate app, vectors embedded")
        click.echo(f"image     {fw['image']} (sha256 {fw['sha256']}; {how})")
    click.echo(f"inputs    {r['inputs']['source']}, sha256 {r['inputs']['sha256']}")
    ref = r["reference"]
    backend = "TFLM interpreter (tflite-micro)" if ref["backend"] == "tflm" else "TensorFlow Lite interpreter"
    click.echo(f"reference {backend}: {ref['model']} (sha256 {ref['sha256'][:12]})")
    for o in r["outputs"]:
        head = f"output {o['index']:<2} {o['name']} {o['dtype']}{o['shape']}:"
        if o["max_abs_diff"] is None:
            click.echo(f"{head} {'; '.join(o['problems'])}  FAIL")
            continue
        click.echo(f"{head} max |Δ| {o['max_abs_diff']}  mean |Δ| {o['mean_abs_diff']:.4f}  "
                   f"top-1 {o['top1_agreement']:.1f} %  cosine {o['cosine']:.6f}  "
                   f"{'PASS' if o['pass'] else 'FAIL'}")
    lat = r.get("latency")
    if lat:
        line = (f"latency   invoke p50 {lat['p50_ms']:.2f} ms, p95 {lat['p95_ms']:.2f} ms "
                f"({lat['source']}, n={lat['count']})")
        if lat["budget_ms"] is not None:
            line += f"; budget {lat['budget_ms']:g} ms {'met' if lat['within_budget'] else 'EXCEEDED'}"
        click.echo(line)
    if r.get("timing_note"):
        click.echo(f"note      {r['timing_note']}")
    for w in r.get("warnings", []):
        click.echo(f"warning   {w}")
    th = r["thresholds"]
    if r["ok"]:
        click.echo(f"result    PASS (max |Δ| <= {th['max_diff']}, top-1 agreement >= {th['min_agreement']:g} %)")
    else:
        click.echo("result    FAIL: " + "; ".join(r["problems"]))


@click.command()
@click.option("--model", "-m", required=True, type=MODEL, help="int8 .tflite model: " + MODEL_HELP + ".")
@click.option("--board", "-b", default="pico", show_default=True, help="Board to build for (see 'fwtool boards').")
@click.option("--inputs", "--input", "inputs", type=click.Path(path_type=Path), multiple=True,
              help=".npy input vectors, shape (N, <input shape>); float values are quantized. Default: random. "
                   "Several model inputs: repeat it once per input in input order, or give one .npz keyed by "
                   "input name or index.")
@click.option("--count", "-n", type=click.IntRange(min=1),
              help="Number of random vectors [20], or use only the first N of --inputs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random vectors.")
@click.option("--reference", type=click.Choice(["tflm", "tflite"]), default="tflm", show_default=True,
              help="Host reference: the TFLM Python interpreter, or TensorFlow Lite (needs tensorflow).")
@click.option("--reference-model", type=click.Path(path_type=Path),
              help="Run this .tflite on the host instead of MODEL (e.g. to compare two conversions).")
@click.option("--device", is_flag=True, help="Run on a real board (flashed first) instead of the virtual board.")
@click.option("--port", "-p", help="Real board: its serial port or pyserial URL (implies --device).")
@click.option("--serial", "serial_number", help="Real board: the one with this USB serial number.")
@click.option("--no-flash", is_flag=True, help="Real board: it already runs this model's image.")
@click.option("--embedded-vectors", is_flag=True, help="Build the validate app with the vectors embedded (build/<board>"
              "-validate-emu-<hash>) instead of feeding them to fwtool build's image over its console.")
@click.option("--max-diff", type=click.IntRange(min=0), default=1, show_default=True,
              help="Largest allowed |device - reference| in quantized steps.")
@click.option("--min-agreement", type=click.FloatRange(0, 100), default=100.0, show_default=True,
              help="Smallest allowed top-1 agreement in percent.")
@click.option("--budget-ms", type=click.FloatRange(min=0, min_open=True),
              help="Also fail when the p95 invoke time exceeds this many ms.")
@target_run_options(None, "image")
@click.option("--app", type=click.Choice(["audio_classifier", "kws"]),
              help="Validate an audio app on --audio clips (features, scores, detections, real-time budget).")
@click.option("--audio", "audio", multiple=True, type=click.Path(path_type=Path), metavar="WAV",
              help="With --app: a 16 kHz mono 16-bit WAV clip (repeat, or list several after one --audio).")
@click.argument("more_audio", nargs=-1, type=click.Path(path_type=Path))
@click.option("--warm-up", "warm_up", type=click.Path(path_type=Path), metavar="BACKGROUND.wav",
              help="kws warm mode: stream ~1 s of this background before every clip, so device and host twin are "
                   "compared in the listening state (noise reduction and PCAN adapted).")
@click.option("--labels", "labels_file", type=click.Path(path_type=Path),
              help="With --app: labels.txt (one per output, e.g. from 'fwtool train') for the firmware's reports.")
@click.option("--detection", type=click.Path(path_type=Path),
              help="kws: detection.json from 'fwtool train' (threshold, smoothing) for the firmware and host rule.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
@lab_options.labgrid_options(fleet=True)
def validate(model, board, inputs, count, seed, reference, reference_model, device, port, serial_number, no_flash,
             embedded_vectors, max_diff, min_agreement, budget_ms, tflm_cores, out_dir, arena, jobs, timeout, verbose, clock, opt, app,
             audio, more_audio, as_json, warm_up=None, labels_file=None, detection=None, lab=None):
    """Check that MODEL's firmware computes what the TFLite reference computes, on the same inputs.

    Runs the image 'fwtool build' makes with the same options (build/<board> or --out: the inference app,
    dual-core TFLM unless --tflm-cores 1, the --clock/--opt asked for) on the virtual board (default) or a real
    board, feeding it the input vectors over its console one by one; runs the same vectors through the host
    reference interpreter and compares every output tensor: max |Δ| and mean |Δ| in quantized steps, top-1
    agreement, cosine similarity. The report names the image (path, sha256). Targets that cannot be fed (QEMU's
    Cortex-M4/M33), a lab fleet and --embedded-vectors build the validate app with the vectors embedded instead. Emulated latency is an estimate (both cores in lock-step at the firmware's clk_sys, zero-wait
    flash, no bus contention).

    Exit codes: 0 pass, 8 a threshold not met, 3 bad model/inputs, 4 missing tool, 5 does not fit,
    6 no board, 7 the target did not finish in time, 1 build or firmware failure.

    \b
    Examples:
      fwtool validate -m fire_alarm.tflite                        # 20 random vectors, virtual board
      fwtool validate -m kws.tflite --inputs samples.npy --max-diff 2 --min-agreement 95 --json
      fwtool validate -m kws.tflite --inputs samples.npy --device  # flash + run on the attached board
      fwtool validate -m model.tflite --reference tflite --budget-ms 32
      fwtool validate -m fire_alarm.tflite --app audio_classifier --audio a.wav b.wav --json
      fwtool validate -m out/kws_int8.tflite --app kws --labels out/labels.txt --detection out/detection.json \\
          --warm-up noise.wav --audio yes.wav                       # kws in its listening state
      fwtool validate -m fire_alarm.tflite --labgrid-tags board=pico --boards 4   # 4 lab boards, one report
    """
    ui.set_json(as_json)
    if app or audio or more_audio:
        _validate_audio(model, board, app, [*audio, *more_audio], device or port, max_diff, budget_ms, out_dir, jobs,
                        warm_up, detection, labels_file, verbose, as_json)
        return
    target = "board" if (device or port) else "emulator"
    opts = ValidateOptions(model=model, board=board, inputs=list(inputs) or None, count=count, seed=seed,
                           reference=reference,
                           reference_model=reference_model, target=target, port=port, serial=serial_number,
                           flash=not no_flash, max_diff=max_diff, min_agreement=min_agreement, budget_ms=budget_ms,
                           out_dir=out_dir, arena=arena, jobs=jobs, timeout=timeout,
                           tflm_cores=int(tflm_cores) if tflm_cores else None, clock=clock, opt=opt,
                           embedded=embedded_vectors)
    if lab is not None:  # labgrid place(s): flashed through their exporters, read over the exported ports
        lab_options.validate_on_lab(lab, opts, as_json, verbose, print_report)
        return
    with ui.err.status("fwtool validate: starting") as status:
        def on_step(step: str) -> None:
            status.update(f"fwtool validate: {step}")

        def on_line(line: str) -> None:
            if verbose:
                ui.err.print(line, markup=False)

        report = run(opts, on_line=on_line, on_step=on_step)
    if as_json:
        ui.emit_json(report)
    else:
        print_report(report)
    if not report["ok"]:
        sys.exit(int(Exit.MISMATCH))


def print_audio_report(r: dict) -> None:
    fe = r["front_end"]
    cores = r["firmware"].get("tflm_cores") or 1
    click.echo(f"validate  --app {r['app']}  {r['model']['name']} (sha256 {r['model']['sha256'][:12]}) on "
               f"{r['target']['name']} (board {r['board']}, TFLM on {cores} core{'s' if cores != 1 else ''})")
    click.echo(f"front end {fe['rate']} Hz, window {fe['window']}, hop {fe['hop']}, {fe['frames']}x{fe['bins']}, "
               f"{fe['shift']} frames per inference")
    for c in r["clips"]:
        feats = "identical" if c["features_identical"] else (f"{c['rows_differing']} differ, "
                                                             f"{c['rows_missing']} missing")
        det = c["detections"]
        click.echo(f"clip      {c['clip']} ({c['seconds']:.2f} s): {c['frames']} feature rows {feats}; "
                   f"{c['inferences']} inferences, scores max |Δ| {c['max_abs_diff']}; detections "
                   f"{len(det['device'])} {'equal' if det['equal'] else 'DIFFER'}  {'PASS' if c['pass'] else 'FAIL'}")
    tm = r["timing"]
    if tm["hop"]:
        h, d, i = tm["hop"], tm["dsp"], tm["invoke"]
        click.echo(f"per hop   DSP p50 {d['p50_ms']:.2f} ms + invoke p50 {i['p50_ms']:.2f} ms = p50 {h['p50_ms']:.2f} "
                   f"ms, p95 {h['p95_ms']:.2f} ms of the {tm['budget_ms']:g} ms budget ({tm['budget_used_p95']:.0%}) "
                   f"{'met' if h['within_budget'] else 'EXCEEDED'}")
    click.echo(f"note      {r['timing_note']}")
    click.echo("result    PASS" if r["ok"] else "result    FAIL: " + "; ".join(r["problems"]))


def _validate_audio(model, board, app, clips, on_device, max_diff, budget_ms, out_dir, jobs, warm_up, detection,
                    labels_file, verbose, as_json) -> None:
    if app is None:
        raise click.UsageError("--audio needs --app audio_classifier or --app kws")
    opts = AudioValidateOptions(model=model, app=app, audio=list(clips), board=board,
                                target="board" if on_device else "emulator", max_diff=max_diff, budget_ms=budget_ms,
                                out_dir=out_dir, jobs=jobs, warm_up=warm_up, detection=detection,
                                labels=labels_file)
    with ui.err.status("fwtool validate: starting") as status:
        def on_line(line: str) -> None:
            if verbose:
                ui.err.print(line, markup=False)

        report = run_audio(opts, on_line=on_line, on_step=lambda s: status.update(f"fwtool validate: {s}"))
    if as_json:
        ui.emit_json(report)
    else:
        print_audio_report(report)
    if not report["ok"]:
        sys.exit(int(Exit.MISMATCH))

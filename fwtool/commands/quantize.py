from pathlib import Path

import click

from fwtool.core import ui
from fwtool.model.quantize import DEFAULT_MAX_DROP, DEFAULT_SAMPLES, QuantizeOptions, default_output, quantize_to_file


def _tensor(t: dict) -> str:
    q = f"  scale {t['scale'][0]:.6g} zero point {t['zero_point'][0]}" if t["scale"] else ""
    return f"{t['dtype']} {'x'.join(map(str, t['shape']))}{q}"


def print_report(r: dict) -> None:
    m = r["model"]
    click.echo(f"quantized    {r['source']['path']} -> {r['output']}  {m['bytes']:,} B  sha256 {m['sha256'][:12]}")
    click.echo(f"input        {_tensor(m['inputs'][0])}")
    click.echo(f"output       {_tensor(m['outputs'][0])}")
    click.echo(f"ops          {', '.join(r['ops'])}")
    rep = r["representative"]
    click.echo(f"calibration  {rep['used']} of {rep['available']} samples from {rep['path']}")
    ev = r.get("eval")
    if ev:
        line = f"{ev['samples']} samples: "
        if "float_accuracy" in ev:
            line += (f"accuracy float {ev['float_accuracy']:.1f}%  int8 {ev['int8_accuracy']:.1f}%  "
                     f"drop {ev['accuracy_drop']:.1f} points (limit {ev['max_accuracy_drop']:g})  ")
        line += f"mean |Δ| {ev['mean_abs_delta']:.4g}  max |Δ| {ev['max_abs_delta']:.4g}"
        click.echo(f"eval         {line}")
    if not r["tflm"]["ok"]:
        click.echo(f"warning      fwtool build will refuse this model: {r['tflm']['error']}")
        click.echo(f"             fix: {r['tflm']['fix']}")
    click.echo(f"next         fwtool inspect {r['output']}  |  fwtool build --board pico --model {r['output']}")


@click.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--representative", "-r", required=True, type=click.Path(path_type=Path),
              help="Representative inputs: .npy/.npz (N x input shape, as fed in training) or a folder of them.")
@click.option("--output", "-o", type=click.Path(path_type=Path), help="Output .tflite [<model>_int8.tflite].")
@click.option("--samples", "-n", type=click.IntRange(min=1), default=DEFAULT_SAMPLES, show_default=True,
              help="Calibration samples, taken evenly over the data; fewer available is an error.")
@click.option("--eval", "eval_xy", nargs=2, type=click.Path(path_type=Path), metavar="X.npy Y.npy",
              help="Labelled data: report float vs int8 accuracy and mean |Δ| of the outputs.")
@click.option("--max-accuracy-drop", type=click.FloatRange(min=0), default=DEFAULT_MAX_DROP, show_default=True,
              help="With --eval: refuse (exit 8, nothing written) if int8 accuracy is lower by more points.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def quantize(model, representative, output, samples, eval_xy, max_accuracy_drop, as_json):
    """Convert a Keras/SavedModel MODEL into a full-integer int8 .tflite for TFLM (CMSIS-NN).

    MODEL is a .keras/.h5 file or a SavedModel folder. The model is traced with batch 1 and converted with
    TFLITE_BUILTINS_INT8 and int8 input and output, calibrated on --samples inputs spread evenly over the
    representative data. Same inputs, same bytes. Needs TensorFlow: pip install 'fwtool[tf]'.

    \b
    Examples:
      fwtool quantize model.keras --representative train_x.npy -o model_int8.tflite
      fwtool quantize saved_model/ -r features/ --eval test_x.npy test_y.npy --max-accuracy-drop 1
      fwtool quantize kws.h5 -r calib.npz -n 300 --json > quantize.json
    """
    ui.set_json(as_json)
    opts = QuantizeOptions(model=model, representative=representative, output=output or default_output(model),
                           samples=samples, eval_x=eval_xy[0] if eval_xy else None,
                           eval_y=eval_xy[1] if eval_xy else None, max_accuracy_drop=max_accuracy_drop)
    with ui.err.status("fwtool quantize: starting") as status:
        report = quantize_to_file(opts, on_step=lambda s: status.update(f"fwtool quantize: {s}"))
    if as_json:
        ui.emit_json(report)
    else:
        print_report(report)

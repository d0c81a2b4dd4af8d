import os
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape as markup_escape
from rich.table import Table
from rich.text import Text

from fwtool.core import ui
from fwtool.core.errors import BadInput
from fwtool.core.escape import terminal
from fwtool.firmware.verdict import inspect_model, verdict_error
from fwtool.model import arena as arena_mod
from fwtool.model.tflite import load_model
from fwtool.model.quantize import is_source_model, model_stem, quantize_command, tflite_for_build
from fwtool.commands.model_arg import MODEL


def _console() -> Console:
    """Rich on a terminal; when piped, plain text as wide as the table (rich would otherwise cut cells at 80
    columns: a pipe has no width, and a file or grep wants whole rows)."""
    if ui.out.is_terminal or os.environ.get("COLUMNS"):
        return ui.out
    return Console(highlight=False, width=1000, color_system=None, markup=False)


def _shape(shape) -> str:
    return "x".join(map(str, shape)) or "scalar"


def _tensor(t: dict) -> str:
    q = f"  scale {t['scale'][0]:.6g}  zero point {t['zero_point'][0]}" if t["scale"] else "  (not quantized)"
    return f"{t['dtype']} {_shape(t['shape'])}{q}  '{terminal(t['name'])}'"


def _impl_cell(text: str) -> Text:
    if text.startswith("CMSIS-NN"):
        return Text(text, style="green")
    if text.startswith("no TFLM"):
        return Text(text, style="red")
    return Text(text)


def print_report(r: dict) -> None:
    con = _console()
    m, tot = r["model"], r["totals"]
    con.print(f"[bold]{markup_escape(terminal(Path(m['path']).name))}[/bold]  {m['bytes']:,} B  sha256 {m['sha256'][:12]}  "
              f"{tot['operators']} operators, {len(r['ops'])} distinct ops", markup=True)
    for t in m["inputs"]:
        con.print(f"input   {_tensor(t)}", markup=False)
    for t in m["outputs"]:
        con.print(f"output  {_tensor(t)}", markup=False)

    cpus = list(r["cpus"])
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name, justify in (("#", "right"), ("op", "left"), ("v", "right"), ("output", "left"),
                          ("params", "right"), ("MACs", "right"), ("kernel", "left")):
        table.add_column(name, justify=justify, no_wrap=True)
    for c in cpus:
        table.add_column(r["cpus"][c]["label"], no_wrap=True)
    for layer in r["layers"]:
        table.add_row(str(layer["index"]), layer["op"], str(layer["version"]),
                      f"{layer['output_dtype']} {_shape(layer['output_shape'])}", f"{layer['params']:,}",
                      f"{layer['macs']:,}", (layer["kernel"] or "-").removesuffix(".cpp"),
                      *[_impl_cell(layer["implementation"][c]) for c in cpus])
    con.print()
    con.print(table)
    con.print()
    con.print(f"total   {tot['params']:,} parameters ({tot['param_bytes']:,} B), {tot['macs']:,} MACs per "
              f"inference, model {tot['model_bytes']:,} B", markup=False)
    a = r["arena"]
    if "arena_bytes" in a:
        con.print(f"arena   {a['arena_bytes']:,} B ({arena_mod.provenance(a)}); fwtool build uses this figure",
                  markup=False)
    else:
        con.print(f"arena   not measured: {a['error']}", markup=False)
    fast = [o["op"] for o in r["ops"] if o["cmsis_nn"]]
    slow = [o["op"] for o in r["ops"] if o["tflm_kernel"] and not o["cmsis_nn"]]
    missing = [o["op"] for o in r["ops"] if not o["tflm_kernel"]]
    line = f"kernels {len(fast)} CMSIS-NN ({', '.join(fast) or '-'}), {len(slow)} reference ({', '.join(slow) or '-'})"
    if missing:
        line += f", {len(missing)} with NO TFLM kernel ({', '.join(missing)})"
    con.print(line, markup=False)
    if r["tflm"]["ok"]:
        con.print(f"TFLM    ok: {r['tflm']['scheme']}, one subgraph, every op has a kernel for its tensor types",
                  markup=False)
    else:
        con.print(f"TFLM    [red]refused[/red]: {markup_escape(terminal(r['tflm']['error']))}", markup=True,
                  highlight=False)
        con.print(f"        fix: {terminal(r['tflm']['fix'])}", markup=False)

    boards = Table(box=None, pad_edge=False, header_style="bold")
    for name, justify in (("board", "left"), ("flash needed / available", "right"), ("margin", "right"),
                          ("RAM needed / available", "right"), ("margin", "right"), ("verdict", "left")):
        boards.add_column(name, justify=justify, no_wrap=name != "verdict")
    estimated = False
    for b in r["boards"]:
        if "flash" in b:
            fl, ram = b["flash"], b["ram"]
            # '*': the code part is the family's default reserve (an upper bound), not what a build measured
            mark = "*" if fl.get("code_reserve_source") == "family default" else ""
            estimated = estimated or bool(mark)
            cells = [f"{fl['required']:,}{mark} / {fl['available']:,}", f"{fl['margin']:,}",
                     f"{ram['required']:,} / {ram['available']:,}", f"{ram['margin']:,}"]
        else:
            cells = ["-", "-", "-", "-"]
        if b["runs"]:
            verdict = Text("fits", style="green")
        else:
            reasons = list(b["problems"])
            if not b["app"]["ok"]:
                reasons.append(b["app"]["error"])
            if not r["tflm"]["ok"]:
                reasons.append("model refused (see TFLM)")
            verdict = Text.assemble(("no", "red"), ": " + terminal("; ".join(reasons)) if reasons else "")
        boards.add_row(b["board"], *cells, verdict)
    con.print()
    con.print(boards)
    if estimated:
        con.print("* code estimated: the family's default code reserve, an upper bound; after a 'fwtool build' for "
                  "that board the figure is the code that build measured", markup=False)


@click.command("inspect")
@click.argument("model", type=MODEL)
@click.option("--board", "-b", help="Check only this board; the exit code then says whether it runs there.")
@click.option("--app", default="inference", show_default=True, help="Firmware app whose input contract to check.")
@click.option("--representative", "-r", type=click.Path(path_type=Path),
              help="For a .keras/.h5/SavedModel MODEL: quantize it first (cached, as 'fwtool build' does).")
@click.option("--arena", type=click.IntRange(min=1024), help="Use this arena size instead of measuring.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON on stdout.")
def inspect_cmd(model, board, app, representative, arena, as_json):
    """Will MODEL run, and how well: shapes, per-layer params/MACs/kernels, arena, fit per board.

    Lists input/output tensors with their quantization; each operator with its version, output shape,
    parameters, multiply-accumulates, TFLM kernel and whether it runs as CMSIS-NN or reference code on each
    CPU; totals, the measured tensor arena (the figure 'fwtool build' uses) and, for every known board or
    --board, whether flash and RAM fit with the margin or the byte-exact shortfall.

    Exit code: 0 with a report; with --board, 3 if build would refuse the model, 5 if it does not fit.

    \b
    Examples:
      fwtool inspect model_int8.tflite
      fwtool inspect model_int8.tflite --board pico --json | jq .totals
      fwtool inspect model.keras --representative train_x.npy --board pico
    """
    ui.set_json(as_json)
    if is_source_model(model) and representative is None:
        raise BadInput(f"{model.name} is a Keras/SavedModel model; inspect reads the int8 .tflite fwtool builds",
                       f"add --representative DATA.npy, or run: "
                       f"{quantize_command(str(model), model_stem(model) + '_int8.tflite')}")
    notes: list[str] = []
    with ui.err.status("fwtool inspect: reading the model") as status:
        path = tflite_for_build(model, representative, notes,
                                on_step=lambda s: status.update(f"fwtool inspect: {s}"))
        status.update("fwtool inspect: measuring the arena")
        report = inspect_model(load_model(path), board=board, app=app, arena_override=arena)
    report["notes"] = notes
    if as_json:
        ui.emit_json(report)
    else:
        for n in notes:
            ui.info(f"note: {n}")
        print_report(report)
    if board:
        err = verdict_error(report, board)
        if err is not None:
            click.echo(f"error: {err.cause}", err=True)
            if err.fix:
                click.echo(f"  fix: {err.fix}", err=True)
            sys.exit(int(err.code))  # not ctx.exit: cli.main runs click with standalone_mode=False

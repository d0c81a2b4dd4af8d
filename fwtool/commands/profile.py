from pathlib import Path

import click

from fwtool.commands.target_options import target_run_options
from fwtool.core import ui
from fwtool.core.escape import terminal
from fwtool.profile import ProfileOptions, run
from fwtool.commands.model_arg import HELP as MODEL_HELP, MODEL


def _num(v, fmt: str = "{:,.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def _table(header: list[str], rows: list[list[str]], right: set[int]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        click.echo("  ".join(cells).rstrip())


def _where(r: dict) -> str:
    t = r["target"]
    if t["kind"] == "emulator":
        return t.get("name", "the virtual board")
    return f"the board on {t.get('port')}"


def print_profile(r: dict) -> None:
    cycle = r["target"]["cycle"]
    mhz = r["target"]["clock_hz"] / 1e6
    cores = r["firmware"]["tflm_cores"]
    click.echo(f"profile   {terminal(r['model']['name'])} (sha256 {r['model']['sha256'][:12]}) on {_where(r)}, "
               f"TFLM on {cores} core{'s' if cores != 1 else ''}, median of {r['runs']} runs")
    rows = [[str(x["index"]), x["op"], x["kernel"] or "?", _num(x["us"]), f"{x['share']:.1%}", _num(x["cycles"]),
             _num(x["macs"]), _num(x["macs_per_cycle"], "{:.3f}")] for x in r["layers"]]
    header = ["#", "op", "kernel", "µs", "share", f"{cycle}s", "MACs", f"MACs/{cycle}"]
    if r.get("core_us"):  # dual-core: each core's busy time per layer (the split kernel's own timing)
        header += ["core 0 µs", "core 1 µs"]
        for row, x in zip(rows, r["layers"]):
            row += [_num(x["cores"]["core0_us"]), _num(x["cores"]["core1_us"])]
    _table(header, rows, {0, 3, 4, 5, 6, 7, 8, 9})
    by_op = ", ".join(f"{t['op']} {t['share']:.1%}" + (f" ({t['macs_per_cycle']:.3f} MACs/{cycle})"
                                                      if t["macs_per_cycle"] else "") for t in r["ops"])
    click.echo(f"by op     {by_op}")
    verdict = "agrees" if r["agrees"] else "DOES NOT AGREE"
    clock = f"at {mhz:g} MHz" if cycle == "cycle" else "(virtual time: 1 instruction = 1 ns)"
    click.echo(f"invoke    {r['invoke_us']:,.0f} µs = {r['invoke_cycles']:,} {cycle}s {clock}; "
               f"{r['macs']:,} MACs, {_num(r['macs_per_cycle'], '{:.3f}')} MACs/{cycle}")
    if r.get("core_us"):
        c0, c1 = r["core_us"]
        split = sum(1 for x in r["layers"] if x["cores"]["split_calls"])
        click.echo(f"per core  layers: core 0 busy {c0:,.0f} µs, core 1 busy {c1:,.0f} µs; {split} of "
                   f"{len(r['layers'])} layers split across the cores (pico-tflmicro splits its matrix product "
                   "arm_nn_mat_mult_nt_t_s8 only)")
    c = r.get("cores")
    if c:
        busy = c["core_busy_us_per_invoke"]
        share = f" = {c['core1_share_of_invoke']:.0%} of the invoke" if c.get("core1_share_of_invoke") else ""
        b = r["firmware"].get("banner") or {}
        click.echo(f"cores     busy per invoke: core 0 {busy[0]:,.0f} µs, core 1 {busy[1]:,.0f} µs{share} "
                   f"({c.get('core1_launches') or 0} core-1 launches; clk_sys {mhz:g} MHz, --opt {b.get('opt', '?')})")
    click.echo(f"sum       layers {r['layers_us']:,.0f} µs, gap {r['gap_us']:,.0f} µs; tolerance "
               f"{r['tolerance_us']:,.0f} µs ({r['tolerance']}): {verdict}")
    click.echo(f"arena     {r['arena']['used']:,} B used of {r['arena']['size']:,} B (arena_used_bytes after Invoke)")
    if r["nested_events"]:
        click.echo(f"nested    {len(r['nested_events'])} events inside subgraph ops (not summed)")
    if r.get("timing_note"):
        click.echo(f"note      {r['timing_note']}")
    for w in r["warnings"]:
        click.echo(f"warning   {w}")


def print_compare(c: dict) -> None:
    a, b = (terminal(m) for m in c["models"])
    click.echo(f"compare   {a} vs {b} ({'layer by layer' if c['by'] == 'layer' else 'per op type'}; "
               "ratio = second / first)")
    rows = [[x["key"], _num(x["us"][0]), _num(x["us"][1]), _num(x["ratio"], "{:.2f}x"), x["kernel"][0] or "-",
             x["kernel"][1] or "-", _num(x["macs"][0]), _num(x["macs"][1])] for x in c["rows"]]
    _table(["layer" if c["by"] == "layer" else "op", f"µs {a}", f"µs {b}", "ratio", "kernel 1", "kernel 2",
            "MACs 1", "MACs 2"], rows, {1, 2, 3, 6, 7})
    t = c["totals"]
    click.echo(f"invoke    {t['invoke_us'][0]:,.0f} µs vs {t['invoke_us'][1]:,.0f} µs "
               f"({_num(t['invoke_ratio'], '{:.2f}x')}); arena used {t['arena_used'][0]:,} vs {t['arena_used'][1]:,} B; "
               f"MACs {t['macs'][0]:,} vs {t['macs'][1]:,}")


@click.command()
@click.option("--model", "-m", required=True, type=MODEL, help="int8 / 16x8 model: " + MODEL_HELP + ".")
@click.option("--board", "-b", default="pico", show_default=True, help="Board to build for (see 'fwtool boards').")
@click.option("--emulator/--device", "on_emulator", default=True,
              help="Run on the board family's virtual board (default) or on a real board (flashed first).")
@click.option("--port", "-p", help="Real board: its serial port or pyserial URL (implies --device).")
@click.option("--serial", "serial_number", help="Real board: the one with this USB serial number.")
@click.option("--input", "input_file", type=click.Path(path_type=Path),
              help="The input of every run, as 'fwtool build --input' takes it. Default: zeros.")
@click.option("--compare", "compare_model", type=click.Path(path_type=Path),
              help="Profile this second .tflite the same way and show both side by side.")
@target_run_options("profile", "profiling firmware")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def profile(model, board, on_emulator, port, serial_number, input_file, compare_model, tflm_cores, out_dir, arena,
            jobs, timeout, verbose, clock, opt, as_json):
    """Show where MODEL's inference time goes on the target, layer by layer.

    Builds the profile firmware (the model with a TFLM profiler attached), runs it 3 times and shows per layer:
    op, kernel (CMSIS-NN or reference), time in µs (median), share of the whole invoke, cycles on the board's
    clock, MACs and MACs per cycle; then the whole-invoke time, the check that the layers add up to it (within
    1 % + 4 µs per layer) and the arena high-water mark. The virtual board is the default (rp2040js: its timer
    counts emulated cycles at the clk_sys the firmware set, both cores in lock-step, an estimate: docs/profile.md's fidelity table compares it with a real Pico); --device
    flashes and profiles the attached board.

    Exit codes: 0 ok, 3 bad model/input, 4 missing tool, 5 does not fit, 6 no board, 7 the target did not
    finish in time, 8 the board runs another model, 1 build or firmware failure.

    \b
    Examples:
      fwtool profile -m fire_alarm.tflite                          # virtual board, table
      fwtool profile -m fire_alarm.tflite --json                   # the same as JSON
      fwtool profile -m model.tflite --device                      # flash + profile the attached Pico
      fwtool profile -m model_int8.tflite --compare model_16x8.tflite
      fwtool profile -m model.tflite -b cy8cproto_062_4343w        # virtual Cortex-M4: instructions, not cycles
    """
    ui.set_json(as_json)
    target = "board" if (port or not on_emulator) else "emulator"
    opts = ProfileOptions(model=model, board=board, target=target, input=input_file, port=port, serial=serial_number,
                          out_dir=out_dir, arena=arena, jobs=jobs, timeout=timeout,
                          tflm_cores=int(tflm_cores) if tflm_cores else None, clock=clock, opt=opt)
    with ui.err.status("fwtool profile: starting") as status:
        def on_line(line: str) -> None:
            if verbose:
                ui.err.print(line, markup=False)

        report = run(opts, compare_model, on_line=on_line, on_step=lambda s: status.update(f"fwtool profile: {s}"))
    if as_json:
        ui.emit_json(report)
        return
    print_profile(report["profile"])
    if "compare" in report:
        click.echo()
        print_profile(report["other"])
        click.echo()
        print_compare(report["compare"])

"""``fwtool lab``: a labgrid lab of virtual boards on this machine, and the exporter-side reflash of one."""
from __future__ import annotations

import signal
import sys
from pathlib import Path

import click

from fwtool.core import ui
from fwtool.core.errors import Exit, FwtoolError
from fwtool.lab import virtual


@click.group(invoke_without_command=True)
@click.option("--virtual", "count", type=click.IntRange(min=1, max=64), metavar="N",
              help="Start a coordinator, an exporter and N virtual boards on 127.0.0.1.")
@click.option("--firmware", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Image the virtual boards start with [none: they listen only once flashed].")
@click.option("--name", default="fwtool-virtual", show_default=True,
              help="Exporter name; places are NAME-0 … NAME-(N-1), tagged board=pico virtual=1 lab=NAME.")
@click.option("--coordinator-port", type=click.IntRange(min=0, max=65535), default=0, show_default=True,
              help="TCP port of the coordinator (0: a free one).")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Stop after S seconds [Ctrl-C].")
@click.option("--json", "as_json", is_flag=True, help="Print the lab (coordinator, places, ports) as one JSON line.")
@click.pass_context
def lab(ctx, count, firmware, name, coordinator_port, duration, as_json):
    """Try a labgrid board farm without hardware: `fwtool lab --virtual N`.

    Starts labgrid's coordinator and an exporter on 127.0.0.1, and N virtual RP2040 boards (rp2040js, as in
    `fwtool emulate --serve`), exported as NetworkSerialPort resources and put in places tagged board=pico.
    Prints the LG_COORDINATOR to use from another shell. "Flashing" a virtual board (the labgrid driver runs
    `fwtool lab reflash` on the exporter) re-launches its emulator with the new image on the same port.
    Ctrl-C stops the exporter, then the coordinator, then the boards: nothing is left running.
    Needs `pip install 'fwtool[labgrid]'` and Node.js.

    Exit codes: 0 stopped normally, 2 usage, 4 labgrid/Node missing, 6/7 a daemon did not come up, 130 Ctrl-C.

    \b
    Examples:
      fwtool lab --virtual 4
      LG_COORDINATOR=127.0.0.1:PORT fwtool validate -m fire_alarm.tflite --labgrid-tags board=pico --boards 4
      LG_COORDINATOR=127.0.0.1:PORT fwtool monitor --labgrid fwtool-virtual-0 --count 3
    """
    if ctx.invoked_subcommand is not None:
        return
    if count is None:
        raise click.UsageError("give --virtual N (or a subcommand: reflash)")
    ui.set_json(as_json)
    vlab = virtual.VirtualLab(count, name=name, firmware=firmware, coordinator_port=coordinator_port,
                              on_info=ui.info)
    old = signal.signal(signal.SIGTERM, _sigterm)
    interrupted = False
    try:
        ui.info(f"starting labgrid coordinator, exporter and {count} virtual board(s)…")
        vlab.start()
        info = {"coordinator": vlab.coordinator, "places": vlab.places, "ports": vlab.ports,
                "tags": {"board": "pico", "virtual": "1", "lab": name}}
        if as_json:
            ui.emit_json_line(info)
        else:
            click.echo(f"LG_COORDINATOR={vlab.coordinator}")
            for place, port in zip(vlab.places, vlab.ports):
                click.echo(f"place {place}: socket://127.0.0.1:{port}" + ("" if firmware else " (blank until flashed)"))
            ui.info(f"use: export LG_COORDINATOR={vlab.coordinator}; fwtool validate -m MODEL --labgrid-tags "
                    f"board=pico --boards {count}   (Ctrl-C stops the lab)")
        sys.stdout.flush()
        vlab.serve(duration)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        vlab.stop()
        signal.signal(signal.SIGTERM, old)
        ui.info("virtual lab stopped (exporter, coordinator, boards)")
    if interrupted:
        sys.exit(int(Exit.INTERRUPTED))


def _sigterm(signum, frame):
    raise KeyboardInterrupt  # SIGTERM: the same clean stop as Ctrl-C


@lab.command()
@click.option("--port", "tcp_port", type=click.IntRange(min=1, max=65535), required=True,
              help="TCP port of the virtual board (its NetworkSerialPort's port).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (what the labgrid driver reads).")
@click.argument("image", type=click.Path(path_type=Path))
def reflash(tcp_port, as_json, image):
    """Re-launch the virtual board on PORT with IMAGE (run on the exporter by the labgrid flash driver).

    Exit codes: 0 ok, 3 image not found, 6 no virtual board on that port, 7 the lab did not answer.

    \b
    Example (what `FwtoolFlashDriver` with `virtual: true` runs on the exporter):
      fwtool lab reflash --port 40123 --json /var/cache/labgrid/$USER/<sha256>/firmware.uf2
    """
    ui.set_json(as_json)
    if not Path(image).is_file():
        raise FwtoolError(f"image {image} not found", "pass the .uf2/.elf to flash", Exit.BAD_INPUT)
    result = virtual.reflash(tcp_port, Path(image))
    if as_json:
        ui.emit_json_line(result)
    else:
        click.echo(f"relaunched the virtual board on port {tcp_port} with {image} in {result['seconds']:.2f} s")

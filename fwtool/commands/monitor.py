import sys
from dataclasses import replace
from pathlib import Path

import click

from fwtool.core import ui
from fwtool.core.errors import Exit, FwtoolError
from fwtool.flash.ssh import SshHost, program_path
from fwtool.flash.ssh_checks import check_device_name
from fwtool.flash.ssh_stream import SshFollow
from fwtool.monitor import MonitorOptions, run_monitor
from fwtool.commands import handoff_options as handoff_click
from fwtool.commands import lab_options


@click.command()
@click.option("--port", "-p", help="Device (/dev/ttyACM0, COM3) or pyserial URL (socket://host:port, rfc2217://…). "
                                   "Default: find the board by its USB id.")
@click.option("--serial", "serial_number", help="Only the board with this USB serial number.")
@click.option("--board", "-b", help="Board whose USB id to look for (default: the board flashed last, else any).")
@click.option("--uart", is_flag=True, help="The console is a UART behind a USB-UART bridge (FTDI, CP210x, CH340…).")
@click.option("--baud", type=click.IntRange(min=1), help="Baud rate [115200; the board's for --uart].")
@click.option("--no-reconnect", is_flag=True, help="Stop (exit 9) when the board disconnects instead of following it.")
@click.option("--wait", type=click.FloatRange(min=0), default=3.0, show_default=True,
              help="Seconds to wait for the board to appear.")
@click.option("--reconnect-timeout", type=click.FloatRange(min=0),
              help="Give up (exit 9) when the board stays away this long [forever; 10 s with a stop condition].")
@click.option("--raw", is_flag=True, help="Print the bytes exactly as they come.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (banner, inference, error, other).")
@click.option("--plain", is_flag=True, help="Plain lines even on a terminal (no live panel).")
@click.option("--timestamps", "-t", is_flag=True, help="Prefix lines with the host time.")
@click.option("--log", "log_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write everything to FILE.")
@click.option("--count", "-n", type=click.IntRange(min=1), help="Stop after N inferences.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Stop after S seconds.")
@click.option("--expect", multiple=True, metavar="REGEX", help="Succeed once a line matches REGEX (repeatable).")
@click.option("--expect-label", metavar="LABEL", help="Succeed when an inference's top label is LABEL.")
@click.option("--min-score", type=float, help="With --expect-label: the label's score must be at least X.")
@click.option("--eol", type=click.Choice(["crlf", "lf", "cr"]), default="crlf", show_default=True,
              help="Line ending appended to what you type.")
@click.option("--no-input", is_flag=True, help="Do not forward stdin to the board.")
@click.option("--elf", type=click.Path(dir_okay=False, path_type=Path),
              help="The build's firmware.elf: a FWT:FAULT line's pc/lr are shown as function (file:line).")
@click.option("--host", help="A Linux board over SSH: run its deployed program ([user@]host[:port] or an "
              "~/.ssh/config alias) and follow its output; reconnects.")
@click.option("--ssh-config", type=click.Path(dir_okay=False, path_type=Path), help="With --host: ssh -F FILE.")
@click.option("--service", metavar="NAME", help="With --host: follow the systemd user unit NAME's journal instead "
              "(a reconnect resumes after the last line shown: none lost, none twice).")
@click.option("--capture-device", metavar="ALSA_PCM", help="With --host, an audio app: run it behind 'arecord -D "
              "ALSA_PCM -f S16_LE -r 16000 -c 1 -t raw' (e.g. plughw:1,0).")
@handoff_click.handoff_options()
@click.option("--verbose", "-v", is_flag=True, help="Log each handoff request (keys masked).")
@lab_options.labgrid_options()
def monitor(port, serial_number, board, uart, baud, no_reconnect, wait, reconnect_timeout, raw, as_json, plain,
            timestamps, log_path, count, timeout, expect, expect_label, min_score, eol, no_input, elf=None, host=None,
            ssh_config=None, service=None, capture_device=None, verbose=False, lab=None, **handoff_kw):
    """Show what the board prints, live: score bars, top label, latency, rate.

    Finds the board by the USB ids in its board file (--board, else the board flashed or built last, else any
    board; the one flashed last if several match), opens it as soon as it appears so the FWT:BOOT banner is caught, and follows it across resets and re-flashing. Type a line and
    Enter to send it; Ctrl-R reboots the board, Ctrl-B reboots it into BOOTSEL, Ctrl-C quits.

    Stop conditions for CI / hardware-in-the-loop: exit 0 when met, 7 timeout, 8 expectation not met (or
    FWT:ERROR), 9 board lost, 6 no board. --expect-label alone judges the first inference; with --count N, any
    of the first N.

    \b
    Examples:
      fwtool monitor
      fwtool monitor --json --count 5 > inferences.jsonl
      fwtool monitor --expect-label fire_alarm --min-score 0.9 --timeout 30
      fwtool monitor --port socket://localhost:4000 --raw
      fwtool monitor --port rfc2217://exporter:7000 --count 3      # ser2net
      fwtool monitor --labgrid my-pico --count 3                  # a labgrid place's board
      fwtool monitor --elf build/pico/firmware.elf                # FWT:FAULT: exit 10, pc/lr as functions
      fwtool monitor --board rpi4 --host pi@raspberrypi.local --count 3   # a Pi's deployed program over SSH
      fwtool monitor --board rpi4 --host pi@raspberrypi.local --service fwtool-kws   # its unit's journal
      fwtool monitor --on-detect yes --record 3s --post http://127.0.0.1:8000/v1/audio/transcriptions
      fwtool monitor --on-detect yes --exec 'aplay "$FWTOOL_WAV"' --json
      fwtool monitor --on-detect yes --wyoming tcp://127.0.0.1:10300 --expect-transcript 'lights' --timeout 60
    """
    if sum(map(bool, (raw, as_json, plain))) > 1:
        raise FwtoolError("--raw, --json and --plain exclude each other", "pick one", code=Exit.USAGE)
    ui.set_json(as_json)
    view = "raw" if raw else "json" if as_json else "plain" if plain else "auto"
    handoff = handoff_click.handoff_from(handoff_kw, verbose)
    opts = MonitorOptions(port=port, serial=serial_number, board=board, uart=uart, baud=baud,
                          reconnect=not no_reconnect, wait=wait, reconnect_timeout=reconnect_timeout, view=view,
                          timestamps=timestamps, log=log_path, count=count, timeout=timeout, expect=tuple(expect),
                          expect_label=expect_label, min_score=min_score, send_input=not no_input, eol=eol,
                          elf=elf, handoff=handoff)
    if host is not None:  # fwtool/flash/ssh.py: the program's stdout over SSH, opened like a port
        ssh_host, program = SshHost(host, ssh_config), program_path(board or "linux-host")
        ssh_host.parts  # a malformed --host is refused before anything starts
        follow = SshFollow(ssh_host, program, service, check_device_name(capture_device) if capture_device else None)
        opts = replace(opts, port=f"ssh://{host}", send_input=False)
        code = run_monitor(opts, opener=follow.open)
    else:
        code = lab_options.monitor_on_lab(lab, opts) if lab is not None else run_monitor(opts)
    if code:
        # Not click's Exit: with standalone_mode=False click *returns* its code and fwtool's main exits 0.
        sys.exit(code)


"""fwtool's command line: a thin click group. Each command lives in fwtool/commands/<name>.py."""
from __future__ import annotations

import os
import sys
import textwrap
import traceback

import click

from fwtool import __version__
from fwtool.core import locks, ui, vendor
from fwtool.commands import boards as boards_cmd
from fwtool.commands import build as build_cmd
from fwtool.commands import doctor as doctor_cmd
from fwtool.commands import examples as examples_cmd
from fwtool.commands import flash as flash_cmd
from fwtool.commands import vendor as vendor_cmd
from fwtool.commands import inspect as inspect_cmd
from fwtool.commands import lab as lab_cmd
from fwtool.commands import monitor as monitor_cmd
from fwtool.commands import quantize as quantize_cmd
from fwtool.commands import run as run_cmd
from fwtool.commands import emulate as emulate_cmd
from fwtool.commands import features as features_cmd
from fwtool.commands import record as record_cmd
from fwtool.commands import dataset as dataset_cmd
from fwtool.commands import train as train_cmd
from fwtool.commands import stt_serve as stt_cmd
from fwtool.commands import validate as validate_cmd
from fwtool.commands import profile as profile_cmd
from fwtool.core.errors import Exit, FwtoolError, exit_code_summary
from fwtool.core.escape import terminal

EPILOG = """\b
Examples:
  fwtool examples                                  # example models fwtool fetches itself
  fwtool build --board pico --model example:fire_alarm   # C++ project -> firmware.uf2, fit-checked
  fwtool flash                                     # last build -> the attached board, verified
  fwtool monitor                                   # find the board's port, show inference live
  fwtool doctor                                    # what is installed, what is missing
\b
A pinned SDK tree a command needs is fetched on first use; --offline turns that off.
\b
Exit codes: """ + "\n".join(textwrap.wrap(exit_code_summary(), 100)) + "\n"


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, prog_name="fwtool")
@click.option("--offline", is_flag=True,
              help="Never fetch a missing pinned SDK tree on first use (also FWTOOL_OFFLINE=1, or offline = true "
                   "in the config file); the error then names the command that fetches it.")
@click.option("--no-wait", is_flag=True,
              help="When another fwtool process holds the build folder, cache entry or board, fail at once (exit "
                   "11) instead of waiting for it (also FWTOOL_NO_WAIT=1; docs/concurrency.md).")
def cli(offline, no_wait):
    """Turn a trained TensorFlow Lite model into running, verified microcontroller firmware."""
    vendor.set_offline(offline)
    locks.set_no_wait(no_wait)


for _cmd in (build_cmd.build, boards_cmd.boards, examples_cmd.examples, doctor_cmd.doctor, vendor_cmd.vendor, quantize_cmd.quantize,
             inspect_cmd.inspect_cmd,
             flash_cmd.flash, flash_cmd.devices, monitor_cmd.monitor, emulate_cmd.emulate, validate_cmd.validate,
             run_cmd.run, features_cmd.features_cmd, record_cmd.record, train_cmd.train, dataset_cmd.dataset, profile_cmd.profile,
             lab_cmd.lab, stt_cmd.stt_serve):
    cli.add_command(_cmd)


def main(argv=None) -> None:
    try:
        # standalone_mode=False returns the code of ctx.exit(code) instead of raising; keep it.
        rc = cli.main(args=argv, prog_name="fwtool", standalone_mode=False)
    except FwtoolError as e:
        if ui.is_json():
            ui.emit_json(e.to_dict())
        click.echo(f"error: {terminal(e.cause)}", err=True)
        if e.fix:
            click.echo(f"  fix: {terminal(e.fix)}", err=True)
        sys.exit(int(e.code))
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        sys.exit(int(Exit.INTERRUPTED))
    except Exception as e:  # a bug: one line, traceback only on request
        if os.environ.get("FWTOOL_DEBUG"):
            traceback.print_exc()
        click.echo(f"error: internal error: {type(e).__name__}: {terminal(e)}", err=True)
        click.echo("  fix: re-run with FWTOOL_DEBUG=1 for a traceback and report it", err=True)
        sys.exit(int(Exit.FAILED))
    sys.exit(rc if isinstance(rc, int) else 0)

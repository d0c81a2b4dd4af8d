"""Options shared by the commands that build a firmware and run it on a target (validate, profile)."""
from __future__ import annotations

from pathlib import Path

import click

from fwtool.commands.build import SPEED_OPTIONS


def target_run_options(kind: str, what: str):
    """--tflm-cores/--out/--arena/--jobs/--timeout/--verbose, as one decorator.

    ``kind`` names the default build folder (build/<board>-<kind>; None: fwtool build's build/<board>); ``what`` says which
    firmware --tflm-cores applies to (e.g. "validation firmware")."""
    options = [
        click.option("--tflm-cores", type=click.Choice(["1", "2"]),
                     help=f"TFLM cores in the {what} [2, as 'fwtool build'; the virtual board has both cores]."),
        click.option("--out", "out_dir", type=click.Path(path_type=Path),
                     help=f"Build folder [build/<board>-{kind}]: one image for the virtual and the real board." if kind
                     else "Build folder [build/<board>, as 'fwtool build']: the image that runs, virtual or real."),
        click.option("--arena", type=click.IntRange(min=1024), help="Tensor arena bytes (default: measured + margin)."),
        click.option("--jobs", "-j", type=click.IntRange(min=1), help="Parallel compile jobs [CPU count]."),
        click.option("--timeout", type=click.FloatRange(min=1), default=300.0, show_default=True,
                     help="Seconds (wall clock) the run on the target may take."),
        click.option("--verbose", "-v", is_flag=True, help="Show the firmware's serial lines."),
        *SPEED_OPTIONS,
    ]

    def apply(f):
        for option in reversed(options):
            f = option(f)
        return f
    return apply

from pathlib import Path

import click

from fwtool.core import ui
from fwtool.core.boards import all_boards


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the board data as JSON.")
@click.option("--model", type=click.Path(path_type=Path),
              help="Also list the board files in the boards/ folder beside this model (docs/boards.md).")
def boards(as_json, model):
    """List the boards fwtool can build for: the built-in ones and your own board files (the config file's
    [boards] dirs, and boards/ beside --model).

    \b
    Example:
      fwtool boards
      fwtool boards --model my-project/model.tflite
      fwtool boards --json | jq '.[].name'
    """
    ui.set_json(as_json)
    items = list(all_boards(model).values())
    if as_json:
        ui.emit_json([b.to_dict() for b in items])
        return
    mcu_w = max((len(b.mcu) for b in items), default=8)
    for b in items:
        click.echo(f"{b.name:28} {b.title:36} {b.mcu:{mcu_w}} flash {ui.human(b.flash_bytes):>9}  "
                   f"RAM {ui.human(b.sram_bytes):>9}" + (f"  (extends {b.extends})" if b.extends else ""))

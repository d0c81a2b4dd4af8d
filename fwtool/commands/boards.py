import click

from fwtool.core import ui
from fwtool.core.boards import all_boards


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the board data as JSON.")
def boards(as_json):
    """List the boards fwtool can build for.

    \b
    Example:
      fwtool boards
      fwtool boards --json | jq '.[].name'
    """
    ui.set_json(as_json)
    items = list(all_boards().values())
    if as_json:
        ui.emit_json([b.to_dict() for b in items])
        return
    mcu_w = max((len(b.mcu) for b in items), default=8)
    for b in items:
        click.echo(f"{b.name:28} {b.title:36} {b.mcu:{mcu_w}} flash {ui.human(b.flash_bytes):>9}  "
                   f"RAM {ui.human(b.sram_bytes):>9}")

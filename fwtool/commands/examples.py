"""``fwtool examples``: the example models fwtool obtains itself, with their source and licence."""
from __future__ import annotations

import click

from fwtool.core import ui
from fwtool.model import examples as ex_mod


@click.command("examples")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON on stdout.")
def examples(as_json):
    """Example models: use one as --model example:NAME on any command that takes a model.

    Each is a file in a pinned upstream tree (vendor/manifest.toml), fetched on first use like every tree
    and checked by sha256; no model is stored in fwtool itself. A model shipped as a C array header is
    decoded once into the cache.

    \b
    Examples:
      fwtool examples
      fwtool build --board pico --model example:fire_alarm
      fwtool run -b pico -m example:fire_alarm --emulator --count 3
      fwtool build -b pico -m example:micro_speech --app kws
    """
    ui.set_json(as_json)
    rows = [e.to_dict() for e in ex_mod.catalog().values()]
    if as_json:
        ui.emit_json(rows)
        return
    for r in rows:
        src = r["source"]
        state = "in the cache" if r["available"] else "fetched on first use"
        ui.out.print(f"example:{r['name']:14} {r['summary']}")
        ui.out.print(f"  {'':14}source  {src['url'].removesuffix('.git')} @ {src['version']}: {src['path']}")
        ui.out.print(f"  {'':14}licence {r['license'] or 'see the source'}; app {r['app']}; {state}")

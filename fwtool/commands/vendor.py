import click

from fwtool.core import ui, vendor as vendor_mod
from fwtool.core.errors import BadInput, FwtoolError


@click.group()
def vendor():
    """The pinned upstream SDK trees (vendor/manifest.toml).

    \b
    Each tree is found, in order: its environment variable (PICO_SDK_PATH, PICO_TINYUSB_PATH,
    FWTOOL_TFLMICRO_PATH, FWTOOL_CMSIS_DSP_PATH, FWTOOL_PICO_MIC_PATH, FWTOOL_RP2040JS_PATH), then
    [vendor.<name>] path = "..." in the config file, then fwtool's cache (filled by 'fwtool vendor sync').
    [vendor.<name>] url = "..." makes sync clone from a mirror instead.

    \b
    A command that needs a tree that is not here fetches it on first use (progress, commit verified);
    'fwtool --offline', FWTOOL_OFFLINE=1 or offline = true in the config file turn that off.

    \b
    Examples:
      fwtool vendor sync
      PICO_SDK_PATH=~/pico/pico-sdk fwtool vendor status
    """


@vendor.command("sync")
@click.argument("names", nargs=-1)
@click.option("--all", "all_", is_flag=True, help="Also the optional trees (audio front end, emulator bootrom, example models).")
@click.option("--force", is_flag=True, help="Fetch again even if the cache is complete.")
def sync(names, all_, force):
    """Fetch the pinned commits into the cache (shallow; safe to interrupt and re-run).

    \b
    Example:
      fwtool vendor sync                 # the trees every 'fwtool build' needs
      fwtool vendor sync --all           # every tree (before going offline)
      fwtool vendor sync pico-tflmicro   # one tree, by its name in 'fwtool vendor status'
    """
    deps = vendor_mod.manifest()
    unknown = [n for n in names if n not in deps]
    if unknown:
        raise BadInput(f"unknown vendor tree(s): {', '.join(unknown)}; known: {', '.join(deps)}",
                       "run 'fwtool vendor status' to list them")
    chosen = [deps[n] for n in names] if names else [d for d in deps.values() if all_ or d.needed == "build"]
    failed: list[FwtoolError] = []
    for dep in chosen:
        loc = vendor_mod.locate(dep)
        if loc.source in ("env", "config") and not names:
            ui.info(f"{dep.name}: using {loc.path} ({loc.source}); not syncing")
            continue
        try:
            vendor_mod.sync_with_progress(dep, force=force)
        except FwtoolError as e:  # keep going: the other trees may still be fetchable
            ui.info(f"{dep.name} {dep.version}: FAILED: {e.cause}")
            failed.append(e)
            continue
    if failed:
        first = failed[0]
        raise FwtoolError(f"{len(failed)} of {len(chosen)} tree(s) could not be synced; first: {first.cause}",
                          first.fix, first.code)


@vendor.command("status")
@click.option("--json", "as_json", is_flag=True)
def status(as_json):
    """Where each pinned tree is found, and whether it is at the pinned commit.

    \b
    Example:
      fwtool vendor status
    """
    ui.set_json(as_json)
    locs = [vendor_mod.locate(d) for d in vendor_mod.manifest().values()]
    if as_json:
        ui.emit_json([loc.to_dict() for loc in locs])
        return
    for loc in locs:
        where = f"{loc.source}: {loc.path}" if loc.path else f"missing (fwtool vendor sync {loc.dep.name})"
        click.echo(f"{loc.dep.name:28} {loc.dep.version:10} {where}")

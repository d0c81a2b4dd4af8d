import click

from fwtool import devices
from fwtool.devices.permissions import probe_doctor_rows
from fwtool.core import ui, vendor
from fwtool.core.errors import Exit
from fwtool.firmware.families import all_families
from fwtool.flash import runners


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def doctor(as_json):
    """Check the toolchain and the pinned SDK trees; say how to get what is missing.

    Also reports (informational, not counted for the exit code) what flashing needs: USB access (libusb, udev rules
    for RP2040 and the PSoC 6 KitProg3), pyOCD (the default PSoC 6 runner), OpenOCD (Infineon's: every PSoC 6;
    Debian's: CY8CKIT-062-BLE only) and ModusToolbox when present. Exits 0 when everything a build needs is
    present, 4 otherwise.

    \b
    Example:
      fwtool doctor
      fwtool doctor --json
    """
    ui.set_json(as_json)
    tools, trees, extras = [], [], []
    for fam in all_families().values():
        for s in fam.tool_status():
            if s.tool.name not in {t.tool.name for t in tools}:
                tools.append(s)
        extras.extend(fam.extra_checks())
    extras.extend(devices.doctor_rows())  # USB access: what flashing and the monitor need (informational)
    extras.extend(probe_doctor_rows())  # PSoC 6: the KitProg3 udev rule
    for r in runners.RUNNERS.values():
        extras.extend(r.doctor_rows())
    for dep in vendor.manifest().values():
        trees.append(vendor.locate(dep))
    missing_build = [t for t in tools if not t.ok and t.tool.required_for == "build"]
    # A missing tree is fetched on first use; only offline does it stop a build.
    missing_trees = [t for t in trees if t.path is None and t.dep.needed == "build" and vendor.offline()]
    ok = not missing_build and not missing_trees
    if as_json:
        ui.emit_json({"ok": ok, "tools": [t.to_dict() for t in tools], "vendor": [t.to_dict() for t in trees],
                      "checks": extras})
    else:
        click.echo("Tools")
        for t in tools:
            mark = "ok " if t.ok else "MISSING" if not t.path else "OLD"
            detail = f"{t.version or ''}  {t.path or ''}" if t.path else f"fix: {t.fix()}"
            click.echo(f"  {mark:8} {t.tool.name:22} ({t.tool.required_for}) {detail}")
        click.echo("Vendor trees (vendor/manifest.toml)")
        for loc in trees:
            d = loc.dep
            if loc.path is None:
                if vendor.offline():
                    detail, mark = f"fix: fwtool vendor sync {d.name}   (or set {d.env})", "MISSING"
                else:
                    detail, mark = f"fetched on first use (now: fwtool vendor sync {d.name})", "LATER"
            else:
                mark = "ok " if loc.pinned else "OTHER"
                rev = (loc.rev or "not a git checkout")[:12]
                detail = f"{loc.source}: {loc.path} @ {rev}" + ("" if loc.pinned else f" (pinned {d.rev[:12]})")
            click.echo(f"  {mark:8} {d.name:28} {d.version:10} ({d.needed}) {detail}")
        for c in extras:
            click.echo(f"  {'ok ' if c['ok'] else 'NOTE':8} {c['name']:28} {c['detail']}")
        click.echo("ready to build" if ok else "not ready to build: install what is marked MISSING above")
    if not ok:
        raise click.exceptions.Exit(int(Exit.MISSING_TOOL))

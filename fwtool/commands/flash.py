"""``fwtool flash`` and ``fwtool devices``: thin CLI over fwtool.flash."""
from pathlib import Path

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from fwtool.core import hints, ui
from fwtool.core.boards import get_board
from fwtool.firmware.result import last_build
from fwtool.core.errors import BadInput
from fwtool.core.escape import terminal
from fwtool import flash as flash_api
from fwtool import devices as device_layer
from fwtool.flash import runners
from fwtool.flash.ssh import flash_over_ssh, remove_service
from fwtool.flash.request import DriveDetails, FlashRequest, PicobootDetails, ProbeDetails
from fwtool.commands import lab_options
from fwtool.emulator import virtual_flash


def _default_image(board: str | None) -> tuple[Path, str, dict]:
    last = last_build(board=board)
    if last is None:
        where = f"build/{board}" if board else "build/*"
        raise BadInput(f"no build found ({where}/report.json in {Path.cwd()})", hints.build_first(hints.board_or_none(board)))
    path = last.artifacts.image
    if not path.is_file():
        raise BadInput(f"the last build's {last.artifacts.image_kind.upper()} ({path}) is missing",
                       hints.rebuild(hints.board_or_none(last.board)))
    return path, last.board, last.report


def _print_devices(listing: dict) -> None:
    if not listing["boards"]:
        click.echo("no board found (none of fwtool's boards is attached, in any mode)")
    for t in listing["targets"]:
        click.echo(f"{t.mode:8} {t.describe()}")
    for p in listing["problems"]:
        click.echo(f"note     {terminal(p)}")


class _Bar:
    """A rich progress bar on stderr with bytes/s, one line per phase; started on the first update."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.progress = None
        self.tasks = {}

    def __enter__(self):
        return self

    def __call__(self, phase: str, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self.progress is None:
            self.progress = Progress(TextColumn("{task.description:10}"), BarColumn(), DownloadColumn(),
                                     TransferSpeedColumn(), TimeRemainingColumn(), console=ui.err)
            self.progress.start()
        if phase not in self.tasks:
            self.tasks[phase] = self.progress.add_task(phase, total=total)
        self.progress.update(self.tasks[phase], completed=done, total=total)

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()


@click.command()
@click.option("--uf2", "uf2_path", type=click.Path(path_type=Path), help="UF2 to flash [the last build's].")
@click.option("--elf", "elf_path", type=click.Path(path_type=Path), help="Flash an ELF's loadable segments instead.")
@click.option("--bin", "bin_path", type=click.Path(path_type=Path), help="Flash a raw .bin at the board's flash base.")
@click.option("--hex", "hex_path", type=click.Path(path_type=Path), help="Flash an Intel HEX (PSoC 6 builds).")
@click.option("--board", "-b", help="Board name [the last build's].")
@click.option("--serial", "-s", help="Which board, when several are attached: app serial or USB location (see "
              "'fwtool devices').")
@click.option("--method", type=click.Choice(runners.method_choices()), default="auto", show_default=True,
              help="auto: the board file's runners in its order ([flash] runners; RP2040: PICOBOOT over USB, else "
              "the BOOTSEL drive); a runner the board does not list is refused.")
@click.option("--drive", "drive_path", type=click.Path(path_type=Path),
              help="Mount point of the RPI-RP2 drive (implies --method drive).")
@click.option("--verify/--no-verify", default=True, show_default=True, help="Read the flash back after writing.")
@click.option("--skip-same/--no-skip-same", default=True, show_default=True,
              help="Leave 4 KiB sectors that already hold the right bytes alone.")
@click.option("--reboot/--no-reboot", default=True, show_default=True,
              help="Start the new firmware afterwards (else the board stays in BOOTSEL).")
@click.option("--timeout", type=click.FloatRange(min=0.5), default=10.0, show_default=True,
              help="Seconds to wait for the board to reappear after each reboot.")
@click.option("--wait-app", type=click.FloatRange(min=0), default=None,
              help="Seconds to wait for the app's USB port after the reboot [5 for USB-stdio boards, else 0].")
@click.option("--no-boot2-check", is_flag=True, help="Flash even if the image has no valid RP2040 boot2.")
@click.option("--list", "list_only", is_flag=True, help="Only list the attached boards (same as 'fwtool devices').")
@click.option("--virtual", is_flag=True, help="Flash the virtual board instead (rp2040js running the real RP2040 "
              "bootrom: PICOBOOT, verify, reboot into the app; its flash is kept between runs).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON on stdout.")
@click.option("--host", help="A Linux board (rpi4, linux-host): copy its program over SSH to [user@]host[:port] or "
              "an ~/.ssh/config alias (keys/agent only, host key verified).")
@click.option("--ssh-config", type=click.Path(dir_okay=False, path_type=Path),
              help="With --host: the ssh_config file to use (ssh -F) [~/.ssh/config].")
@click.option("--service", metavar="NAME", help="With --host: install, enable and start a systemd user unit NAME "
              "running it at boot (an audio app behind arecord); '--service remove' takes fwtool's units away.")
@click.option("--capture-device", metavar="ALSA_PCM", help="With --host: the ALSA capture device an audio app "
              "reads (checked for 16 kHz before copying) [board file's [sdk] capture_device, else the first one "
              "'arecord -l' lists, as plughw:CARD,DEV].")
@lab_options.labgrid_options()
def flash(uf2_path, elf_path, bin_path, hex_path, board, serial, method, drive_path, verify, skip_same, reboot, timeout,
          wait_app, no_boot2_check, list_only, virtual, as_json, host=None, ssh_config=None, service=None, capture_device=None,
          lab=None):
    """Put firmware on a board (any family fwtool builds for) and start it, verified.

    Takes the last build's image (firmware.uf2 for RP2040, firmware.hex for PSoC 6) unless --uf2/--elf/--bin/--hex
    is given. A board running a pico-sdk app with USB stdio
    is rebooted into BOOTSEL without the button (USB reset interface, else the 1200-baud touch). Writing uses
    PICOBOOT: only sectors that differ are erased and written, then everything is read back and compared. Without
    libusb or USB permission it copies the UF2 to the RPI-RP2 drive instead (not verifiable). A PSoC 6 kit is
    flashed through its KitProg3 with the board's runners (pyOCD, read back and compared; OpenOCD; make program).

    Exit codes: 0 ok, 1 write/verify failed, 3 bad image, 4 no libusb/permission, 6 no board or several,
    7 timeout, 9 board lost.

    \b
    Examples:
      fwtool flash                              # last build -> the one attached board
      fwtool flash --uf2 firmware.uf2 --serial E6614103E7452D2F
      fwtool flash --method drive --drive /media/$USER/RPI-RP2
      fwtool flash --json > flash.json
      fwtool flash --labgrid my-pico            # through the labgrid exporter the place's board hangs off
      fwtool flash --virtual --json             # the virtual board (or the one 'fwtool emulate --bootsel' serves)
      fwtool flash --board rpi4 --host pi@raspberrypi.local --service fwtool-kws   # a Pi over SSH, at boot
      fwtool flash --board rpi4 --host pi@raspberrypi.local --capture-device plughw:1,0
      fwtool flash --board rpi4 --host pi@raspberrypi.local --service remove
    """
    ui.set_json(as_json)
    if host is not None and service == "remove":  # nothing to copy: the units fwtool installed go
        _print_ssh(remove_service(board or _last_board() or "linux-host", host, ssh_config), as_json)
        return
    if list_only:
        listing = flash_api.list_devices(board)
        if as_json:
            ui.emit_json({k: v for k, v in listing.items() if k != "targets"})
        else:
            _print_devices(listing)
        return
    given = [p for p in (uf2_path, elf_path, bin_path, hex_path) if p is not None]
    if len(given) > 1:
        raise BadInput("--uf2, --elf, --bin and --hex exclude each other", "pass one image")
    if given:
        path = given[0]
        kind = "uf2" if uf2_path else "elf" if elf_path else "hex" if hex_path else "bin"
        if board is None and kind != "uf2":  # a UF2 names its family; an ELF/BIN does not: the last build's board
            last = last_build()
            board = last.board if last else None
    else:
        path, report_board, report = _default_image(board)
        board = board or report_board
        kind = None  # the last build's image: .uf2 (RP2040) or .hex (PSoC 6), told by its name
        stdio = report.get("build", {}).get("stdio") or report.get("board", {}).get("stdio")
        if wait_app is None and stdio == "uart":
            wait_app = 0.0  # no USB port will appear: do not wait for one
    if host is not None:  # a Linux board's program over SSH (fwtool/flash/ssh.py)
        _print_ssh(flash_over_ssh(path, board or "linux-host", host, ssh_config, service, capture_device), as_json)
        return
    if (service or ssh_config or capture_device) and host is None:
        raise BadInput("--service, --ssh-config and --capture-device need --host", "add --host [user@]host[:port]")
    if board is not None and get_board(board).family == "linux":
        raise BadInput(f"{board} is a Linux board: its program is deployed over SSH, not USB",
                       f"add --host [user@]host[:port] (fwtool flash --board {board} --host pi@raspberrypi.local)")
    if lab is not None:  # the exporter's fwtool flashes it (its board file's runners, verified there)
        lab_options.flash_on_lab(lab, path, as_json)
        return
    step = (lambda msg: None) if as_json else ui.info
    if virtual:
        if method not in ("auto", "picoboot") or drive_path or serial:
            raise BadInput("--virtual flashes through PICOBOOT only", "drop --method/--drive/--serial")
        with _Bar(enabled=not as_json) as bar:
            result, vboard = virtual_flash.flash_virtual(path, board or "pico", verify=verify, on_step=step,
                                                         wait_app=wait_app, progress=bar, kind=kind,
                                                         skip_same=skip_same, reboot=reboot, timeout=timeout,
                                                         boot2_check=not no_boot2_check)
        vboard.stop()
    else:
        with _Bar(enabled=not as_json) as bar:
            result = flash_api.flash_image(request=FlashRequest(
                image=path, board=board, device=serial, method=method, kind=kind, drive=drive_path, verify=verify,
                skip_same=skip_same, reboot=reboot, timeout=timeout, wait_app=wait_app,
                boot2_check=not no_boot2_check, progress=bar, on_step=step))
    if as_json:
        ui.emit_json(result.to_dict())
        return
    r, w = result, result.written
    if isinstance(w.details, PicobootDetails):
        click.echo(f"written   {w.bytes_written:,} B in {w.sectors_written} of {w.details.sectors_total} sectors, "
                   f"{w.bytes_skipped:,} B unchanged (skipped)")
        click.echo("verified  " + ("yes, read back and compared" if w.verified else "NO (--no-verify)"))
        if r.virtual is not None:
            v = r.virtual
            click.echo(f"virtual   {v.sector_erases} sector erases, {v.page_programs} page programs in the "
                       f"emulated flash (kept in {v.flash_state})")
    elif isinstance(w.details, DriveDetails):
        click.echo(f"copied    {w.details.uf2_bytes:,} B of UF2 to {r.drive} ({w.details.confirmed_by})")
        click.echo("verified  no (the drive cannot be read back; PICOBOOT can: see 'fwtool doctor')")
    else:  # a debug-probe runner (pyOCD, OpenOCD, make program)
        probe = w.details if isinstance(w.details, ProbeDetails) else ProbeDetails(None, [])
        click.echo(f"written   {w.bytes_written:,} B in {len(probe.segments)} segment(s) through probe {probe.probe}")
        click.echo("verified  " + ("yes, read back and compared" if w.verified else "NO (--no-verify)"))
    if r.started:
        click.echo(f"started   app running{' on ' + r.port if r.port else ''}"
                   f"{' (serial ' + r.serial + ')' if r.serial else ''}")
    elif w.rebooted:
        click.echo("started   rebooted into the new firmware")
    else:
        click.echo("started   no (--no-reboot: the board stays in BOOTSEL mode)")
    for note in r.notes:
        click.echo(f"note      {terminal(note)}")
    click.echo(f"done      {r.method} in {r.seconds:.1f} s")


@click.command()
@click.option("--board", "-b", help="Only this board's family.")
@click.option("--udev-rule", is_flag=True, help="Print a Linux udev rule granting USB access, and exit.")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def devices(board, udev_rule, as_json):
    """List attached boards of every family and the mode each is in.

    RP2040 boards: BOOTSEL, running app, BOOTSEL drive; PSoC 6 kits by their KitProg3 (probe serial = UID, and the
    kit's USB-UART port).

    \b
    Examples:
      fwtool devices
      fwtool devices --json
      fwtool devices --udev-rule | sudo tee /etc/udev/rules.d/60-fwtool.rules
    """
    if udev_rule:
        click.echo(device_layer.udev_rule(), nl=False)
        return
    ui.set_json(as_json)
    listing = flash_api.list_devices(board)
    if as_json:
        ui.emit_json({k: v for k, v in listing.items() if k != "targets"})
    else:
        _print_devices(listing)


def _last_board() -> str | None:
    last = last_build()
    return last.board if last else None


def _print_ssh(out: dict, as_json: bool) -> None:
    """What an SSH deploy (or --service remove) did."""
    if as_json:
        ui.emit_json(out)
        return
    if "removed" in out:
        ui.info(f"removed   {', '.join(out['removed'])} on {out['host']} (the program {out['program']} stays)"
                if out["removed"] else f"no fwtool unit for {out['program']} on {out['host']}: nothing removed")
        return
    ui.info(f"deployed {out['bytes']:,} B to {out['host']}:{out['remote_path']} ({out['remote_arch']}, "
            f"sha256 {out['sha256'][:12]} verified)" + (f", service {out['service']} enabled and started"
                                                          if out.get("service") else ""))
    for note in out.get("notes", []):
        ui.info(f"note     {note}")

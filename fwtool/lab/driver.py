"""A labgrid driver that flashes a board by running fwtool on the exporter the board hangs off.

labgrid has no RP2040/UF2 support, but it knows where a resource lives (``resource.host``), can copy a file there
(``ManagedFile.sync_to_resource``, rsync over ssh, skipped when the file is already visible there) and run a
command there (``resource.wrap_command``, plain ssh). ``FwtoolFlashDriver`` uses exactly that: it syncs the image
and runs ``fwtool flash --json --board BOARD [--serial S] --uf2|--hex IMAGE`` on the exporter, so PICOBOOT, the
BOOTSEL drive fallback and the PSoC 6 KitProg3 runners (pyOCD, OpenOCD) all work the same as on a desk. PSoC 6
kits go through this driver too (``board: cy8cproto_062_4343w``): labgrid's OpenOCDDriver would need the kit's
OpenOCD target script and flash bank config by hand, while fwtool's runners already carry them per board.

It is labgrid's ``BootstrapProtocol``: put it in an env file (``imports: [fwtool.lab.plugin]``) and
``labgrid-client -c env.yaml bootstrap firmware.uf2`` or ``target.get_driver("BootstrapProtocol").load(path)``
flash through it. Failures map to labgrid's errors: fwtool's exit codes 2 (usage), 3 (bad image) and 4 (fwtool or a
tool missing on the exporter) raise ``InvalidConfigError`` (retrying will not help); every other failure raises
``ExecutionError``. Both carry ``fwtool_code`` (the exit code), ``cause`` and ``fix``.

Virtual boards (``fwtool lab --virtual``) set ``virtual: true``: "flashing" runs ``fwtool lab reflash --port PORT
IMAGE`` on the exporter, which re-launches that board's emulator with the new image on the same TCP port.

labgrid is imported only when :func:`register` runs (the default install does not have it).
"""
from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

from fwtool.core.errors import Exit, FwtoolError

RETRY_USELESS = (Exit.USAGE, Exit.BAD_INPUT, Exit.MISSING_TOOL)
SSH_FAILED = 255  # ssh's own exit code: the exporter could not be reached
NOT_FOUND = 127  # the shell on the exporter found no fwtool

_registered: dict = {}


def flash_command(image: str, *, board: str, serial: str | None = None, fwtool: str = "fwtool",
                  virtual: bool = False, port: int | None = None) -> list[str]:
    """The command run on the exporter (an argument list; ``wrap_command`` shell-quotes it for ssh)."""
    base = shlex.split(fwtool)
    if virtual:
        return [*base, "lab", "reflash", "--port", str(port), "--json", image]
    kind = "--hex" if image.lower().endswith(".hex") else "--elf" if image.lower().endswith(".elf") else "--uf2"
    return [*base, "flash", "--json", "--board", board, *(["--serial", serial] if serial else []), kind, image]


def result_of(returncode: int, stdout: str, stderr: str, host: str) -> dict:
    """fwtool's JSON result, or the FwtoolError its exit code and JSON error line describe."""
    data: dict = {}
    text = stdout.strip()
    starts = [i for i, ln in enumerate(text.splitlines()) if ln.startswith("{")]
    for i in starts:  # the JSON document fwtool printed last (indented or one line)
        try:
            data = json.loads("\n".join(text.splitlines()[i:]))
            break
        except ValueError:
            continue
    if returncode == 0:
        return data
    tail = (stderr.strip().splitlines() or [""])[-1]
    if returncode == SSH_FAILED:
        raise FwtoolError(f"cannot reach the exporter {host} over ssh: {tail}",
                          f"check 'ssh {host} true' works without a password (labgrid uses plain ssh)",
                          Exit.NO_DEVICE)
    if returncode == NOT_FOUND:
        raise FwtoolError(f"fwtool is not installed on the exporter {host}: {tail}",
                          f"install it there ('pip install fwtool' on {host}), or set the driver's fwtool: path",
                          Exit.MISSING_TOOL)
    try:
        code = Exit(returncode)
    except ValueError:
        code = Exit.FAILED
    cause = data.get("error") or tail or f"fwtool exited with {returncode}"
    raise FwtoolError(f"on {host}: {cause}", data.get("fix"), code)


def run_remote(resource, cmd: list[str], timeout: float, ssh: bool = True) -> dict:
    """Run ``cmd`` where ``resource`` lives (``ssh=False``: here) and return fwtool's JSON result (raises
    FwtoolError)."""
    full = resource.wrap_command(cmd) if ssh else cmd
    host = getattr(resource, "host", "localhost")
    try:
        p = subprocess.run(full, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except FileNotFoundError as e:
        raise FwtoolError(f"'{full[0]}' was not found", "install openssh-client", Exit.MISSING_TOOL) from e
    except subprocess.TimeoutExpired as e:
        raise FwtoolError(f"flashing on {host} did not finish within {timeout:g} s", "check the board on the "
                          "exporter ('fwtool devices' there)", Exit.TIMEOUT) from e
    return result_of(p.returncode, p.stdout, p.stderr, host)


def sync_image(image: Path, resource) -> str:
    """Copy ``image`` to where ``resource`` lives (labgrid's ManagedFile); its path there."""
    from labgrid.util.managedfile import ManagedFile

    mf = ManagedFile(str(image), resource)
    mf.sync_to_resource()
    return mf.get_remote_path()


def register():
    """Define and register ``FwtoolFlashDriver`` with labgrid's target factory (once); returns the class."""
    if "driver" in _registered:
        return _registered["driver"]
    import attr
    from labgrid.driver.common import Driver
    from labgrid.driver.exception import ExecutionError
    from labgrid.exceptions import InvalidConfigError
    from labgrid.factory import target_factory
    from labgrid.protocol import BootstrapProtocol
    from labgrid.step import step

    def labgrid_error(e: FwtoolError) -> Exception:
        msg = e.cause + (f" (fix: {e.fix})" if e.fix else "")
        err = InvalidConfigError(msg) if e.code in RETRY_USELESS else ExecutionError(msg)
        err.fwtool_code, err.cause, err.fix = int(e.code), e.cause, e.fix
        return err

    opt_str = attr.validators.optional(attr.validators.instance_of(str))

    @target_factory.reg_driver
    @attr.s(eq=False)
    class FwtoolFlashDriver(Driver, BootstrapProtocol):
        """Flash the board behind ``port`` with fwtool on its exporter (see fwtool.lab.driver)."""

        bindings = {"port": {"NetworkSerialPort", "USBSerialPort", "RawSerialPort", "SerialPort"}}
        board = attr.ib(default="pico", validator=attr.validators.instance_of(str))
        serial = attr.ib(default=None, validator=opt_str)
        fwtool = attr.ib(default="fwtool", validator=attr.validators.instance_of(str))
        virtual = attr.ib(default=False, validator=attr.validators.instance_of(bool))
        timeout = attr.ib(default=180.0, converter=float)
        # False: run fwtool here instead of over ssh (fwtool's own flows do this for exporters on 127.0.0.1)
        ssh = attr.ib(default=True, validator=attr.validators.instance_of(bool))

        def __attrs_post_init__(self):
            super().__attrs_post_init__()
            self.last_result: dict = {}

        def command(self, remote_image: str) -> list[str]:
            return flash_command(remote_image, board=self.board, serial=self.serial, fwtool=self.fwtool,
                                 virtual=self.virtual, port=getattr(self.port, "port", None))

        @Driver.check_active
        @step(args=["filename"])
        def load(self, filename=None):
            """BootstrapProtocol: flash ``filename``; returns fwtool's JSON result."""
            if filename is None:
                raise InvalidConfigError("FwtoolFlashDriver.load needs the image to flash")
            return self.flash(filename)

        def flash(self, filename):
            """load() without labgrid's step bookkeeping (which is not thread-safe): fleet runs flash in parallel."""
            try:
                remote = sync_image(Path(filename), self.port) if self.ssh else str(Path(filename).resolve())
                cmd = self.command(remote)
                self.last_result = run_remote(self.port, cmd, self.timeout, ssh=self.ssh)
            except FwtoolError as e:
                raise labgrid_error(e) from e
            except ExecutionError as e:  # ManagedFile: ssh/rsync failed
                err = ExecutionError(f"copying {filename} to {getattr(self.port, 'host', '?')} failed: {e.msg}")
                err.fwtool_code, err.cause, err.fix = int(Exit.NO_DEVICE), err.msg, "check ssh/rsync to the exporter"
                raise err from e
            return self.last_result

    _registered["driver"] = FwtoolFlashDriver
    return FwtoolFlashDriver

"""The OpenOCD runner: ``program FILE verify reset exit`` through the kit's KitProg3.

Two OpenOCDs (docs/notes/psoc6-flashing.md §3.1):

* **Infineon's OpenOCD** (ModusToolbox's ``tools_*/openocd``, or an ``Infineon/openocd`` release; told apart by
  its ``interface/kitprog3.cfg``): the command line of ModusToolbox's ``make program`` -
  ``openocd -s SCRIPTS -c "source [find interface/kitprog3.cfg]; adapter serial UID; transport select swd;
  source [find target/infineon/cy8cxxa.cfg]; psoc6 allow_efuse_program off; psoc6 sflash_restrictions 1;
  program FILE verify reset exit;"`` - for every PSoC 6 part.
* **Upstream/Debian OpenOCD 0.12**: plain CMSIS-DAP + ``target/psoc6.cfg``, whose psoc6 flash driver hard-codes
  PSoC 6-BLE2 registers: used only for boards whose file names a ``debian_target`` (CY8CKIT-062-BLE); the 2 MiB
  parts are refused with that reason.
"""
from __future__ import annotations

import os
import time
from pathlib import Path

from fwtool.core.errors import FlashFailed, FwtoolError, MissingTool, NoDevice, ToolTimeout
from fwtool.devices.device import Device
from fwtool.devices.probes import not_found_fix
from fwtool.flash.base import Image, Runner
from fwtool.flash.request import WriteOptions, Written
from fwtool.flash.probe import counters, find_tool, hex_file, last_error_line, probe_refusal, probe_usable

INFINEON_MARK = "interface/kitprog3.cfg"  # only Infineon's OpenOCD ships it
INSTALL_FIX = ("install Infineon's OpenOCD (ModusToolbox Programming Tools, or github.com/Infineon/openocd "
               "releases) and put its bin/ on PATH, or use pyOCD: pip install 'fwtool[psoc6]'")


def mtb_tools_dirs() -> list[Path]:
    """ModusToolbox tools folders: CY_TOOLS_PATHS (as MTB's make reads it), then ~/ModusToolbox/tools_* newest
    first (the default install locations)."""
    out = [Path(p) for p in os.environ.get("CY_TOOLS_PATHS", "").split() if p]
    for root in (Path.home() / "ModusToolbox", Path("/opt/ModusToolbox"), Path("C:/Infineon/ModusToolbox")):
        if root.is_dir():
            out.extend(sorted(root.glob("tools_*"), reverse=True))
    return [p for p in out if p.is_dir()]


def installs() -> list[tuple[str, Path]]:
    """(openocd executable, its scripts folder) for every OpenOCD found: ModusToolbox's first, then PATH."""
    out = []
    for tools in mtb_tools_dirs():
        exe = tools / "openocd" / "bin" / "openocd"
        if exe.is_file() and (tools / "openocd" / "scripts").is_dir():
            out.append((str(exe), tools / "openocd" / "scripts"))
    exe = find_tool("openocd")
    if exe:
        real = Path(exe).resolve()
        for scripts in (real.parent.parent / "scripts", real.parent.parent / "share" / "openocd" / "scripts"):
            if scripts.is_dir():
                out.append((exe, scripts))
                break
    return out


def is_infineon(scripts: Path) -> bool:
    return (scripts / INFINEON_MARK).is_file()


class OpenocdRunner(Runner):
    name = "openocd"
    title = "OpenOCD 'program ... verify reset' (Infineon's; Debian's for PSoC 6-BLE2 only)"
    label = "OpenOCD"
    verifies = True
    skips_unchanged = False
    resets = True
    needs_bootloader = False
    image_kinds = frozenset({"hex", "elf", "bin"})
    missing = "no OpenOCD that supports this part"

    def plan(self, board) -> tuple[list[str], str] | tuple[None, str]:
        """(command line without the image, "") for the best OpenOCD for ``board``, or (None, why not)."""
        s = self.settings(board)
        found = installs()
        if not found:
            return None, "OpenOCD is not installed"
        for exe, scripts in found:
            if is_infineon(scripts):
                target = next((t for t in s.get("targets", []) if (scripts / t).is_file()), None)
                if target is None:
                    continue
                script = (f"source [find {s.get('interface', INFINEON_MARK)}]; adapter serial {{serial}}; "
                          f"transport select swd; source [find {target}]; psoc6 allow_efuse_program off; "
                          "psoc6 sflash_restrictions 1; program {image} verify reset exit;")
                return [exe, "-s", str(scripts), "-c", script], ""
        upstream = [(e, sc) for e, sc in found if not is_infineon(sc)]
        if not upstream:
            return None, f"{found[0][0]} has none of {', '.join(s.get('targets', [])) or 'the target configs'}"
        exe, scripts = upstream[0]
        if not s.get("debian_target"):
            return None, (f"{exe} is not Infineon's OpenOCD, and upstream OpenOCD's psoc6 driver supports PSoC 6-BLE2 "
                          f"parts only, not the {board.mcu}")
        if not (scripts / s["debian_target"]).is_file():
            return None, f"{exe} has no {s['debian_target']}"
        return [exe, "-s", str(scripts), "-f", s.get("debian_interface", "interface/cmsis-dap.cfg"),
                "-c", "adapter serial {serial}", "-c", "transport select swd", "-f", s["debian_target"],
                "-c", "program {image} verify reset exit"], ""

    def supports(self, board) -> tuple[bool, str]:
        """Whether an installed OpenOCD can program ``board``'s part (before any device is looked at)."""
        cmd, why = self.plan(board)
        return cmd is not None, why

    def usable(self, device: Device) -> tuple[bool, str]:
        if not installs():
            return False, "OpenOCD is not installed"
        return probe_usable(device)

    def refuse(self, device: Device, found, why: str) -> FwtoolError:
        if not installs():
            return MissingTool("OpenOCD is not installed", INSTALL_FIX)
        return probe_refusal(self.label, device, why)

    def refuse_board(self, board, why: str) -> FwtoolError:
        return MissingTool(f"OpenOCD cannot flash {board.name}: {why}", INSTALL_FIX)

    def flash(self, image: Image, device: Device, board, opts: WriteOptions = WriteOptions()) -> Written:
        self.accepts(image)
        verify, reboot, progress, timeout = opts.verify, opts.reboot, opts.progress, opts.timeout
        cmd, why = self.plan(board)
        if cmd is None:
            raise self.refuse_board(board, why)
        if not verify or not reboot:
            cmd = [c.replace(" verify reset exit", (" verify" if verify else "") + (" reset" if reboot else "")
                             + " exit") for c in cmd]
        t0 = time.monotonic()
        with hex_file(image) as (path, segs):
            total = sum(len(d) for _, d in segs)
            progress("writing", 0, total)
            full = [c.replace("{serial}", str(device.serial)).replace("{image}", Path(path).as_posix())
                    for c in cmd]
            run_programmer(self, full, "OpenOCD", device, max(180.0, timeout * 18))
            progress("writing", total, total)
        return counters(image, segs, verified=verify, rebooted=reboot, seconds=time.monotonic() - t0,
                        probe=device.serial, openocd=full[0])

    def doctor_rows(self) -> list[dict]:
        found = installs()
        if not found:
            return [{"name": "psoc6: OpenOCD", "ok": True,
                     "detail": "not installed (optional; pyOCD is the default PSoC 6 runner)"}]
        rows = []
        for exe, scripts in found:
            what = ("Infineon's: every PSoC 6 kit" if is_infineon(scripts) else
                    "upstream/Debian: CY8CKIT-062-BLE (PSoC 6-BLE2) only, not the 2 MiB parts")
            rows.append({"name": "psoc6: OpenOCD", "ok": True, "detail": f"{exe} ({what})"})
        return rows


def run_programmer(runner: Runner, cmd: list[str], what: str, device: Device, timeout: float):
    """Run an OpenOCD-based programming command (OpenOCD itself, or ModusToolbox's ``make qprogram``) through the
    runner's logged tool call; a hang or a non-zero exit becomes fwtool's error for it."""
    try:
        res = runner.run_tool(cmd, check=False, timeout=timeout)
    except ToolTimeout as e:
        raise FlashFailed(f"{what} did not finish ({device.describe()})",
                          "replug the kit (KitProg3 USB connector) and retry") from e
    if res.returncode != 0:
        raise map_error(res.stdout + "\n" + res.stderr, res.returncode, device)
    return res


def map_error(output: str, rc: int, device: Device) -> FwtoolError:
    """OpenOCD's messages (cmsis_dap.c, kitprog.c, the 'program' proc in startup.tcl) -> one fwtool error."""
    if "unable to find a matching CMSIS-DAP device" in output or "Can't find a KitProg device" in output \
            or "No device found" in output:
        return NoDevice(f"OpenOCD found no probe with serial {device.serial} (fwtool sees {device.describe()})",
                        f"{not_found_fix()}; close other programs using the probe")
    if "Verify Failed" in output or "checksum mismatch" in output or "verify failed" in output.lower():
        return FlashFailed(f"verify failed: OpenOCD read back different bytes ({last_error_line(output)})",
                           "flash again; if it fails the same way, erase the part and retry")
    if "Programming Failed" in output:
        return FlashFailed(f"OpenOCD could not program the chip: {last_error_line(output)}",
                           "check the kit is powered, replug the KitProg3 USB connector and retry")
    return FlashFailed(f"OpenOCD failed (exit {rc}): {last_error_line(output) or 'no output'}",
                       "run the logged openocd command to see its whole output")

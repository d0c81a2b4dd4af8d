"""The pyOCD runner: program, verify, reset and run a PSoC 6 kit through its KitProg3 (CMSIS-DAP).

pyOCD (PyPI ``pyocd``, the ``psoc6`` extra) has built-in ``cy8c6xxa`` / ``cy8c6xx7`` targets with their flash
algorithms, so no pack download is needed (docs/notes/psoc6-flashing.md §3.2). It is run as a command,
not imported: the logged command line can be pasted to reproduce a flash, pyOCD's own output and log setup stay
out of fwtool's, a hung probe is bounded by a timeout, and tests fake it at fwtool's boundary (a ``pyocd`` on PATH).

Steps (each command logged through ``Runner.run_tool``):

1. ``pyocd flash -W -t <target> -u <probe UID> --format hex FILE`` (``--no-reset`` with ``--no-reboot``).
   ``-W`` (no wait) always: without it pyOCD waits forever for a probe. ``-u`` always: with two probes and no
   UID pyOCD would ask on stdin which one to use.
2. Verify: pyOCD's ``flash`` does not read the flash back after programming (its "smart flash" only compares
   pages *before* writing, to skip unchanged ones; pyocd/flash/builder.py), so fwtool reads every written
   segment back with ``pyocd cmd -W -t <target> -u <UID> -c "savemem ADDR LEN FILE"`` (commander's default
   connect mode is attach: the new firmware keeps running) and compares the bytes.
"""
from __future__ import annotations

import re
import tempfile
import time
from pathlib import Path

from fwtool.core import runner as proc
from fwtool.core.errors import FlashFailed, FwtoolError, MissingTool, NoDevice, ToolTimeout
from fwtool.devices.device import Device
from fwtool.devices.probes import SWITCH_FIX, not_found_fix
from fwtool.flash.base import Image, Progress, Runner
from fwtool.flash.request import WriteOptions, Written
from fwtool.flash.probe import counters, find_tool, hex_file, last_error_line, probe_refusal, probe_usable

INSTALL_FIX = "pip install 'fwtool[psoc6]'   (or: pip install 'pyocd>=0.36')"
MIN_VERSION = (0, 36)


class PyocdRunner(Runner):
    name = "pyocd"
    title = "pyOCD through the kit's KitProg3 (CMSIS-DAP), verified by read-back"
    label = "pyOCD"
    verifies = True
    skips_unchanged = False  # pyOCD's smart flash may skip unchanged pages, but fwtool cannot see it: not declared
    resets = True
    needs_bootloader = False
    image_kinds = frozenset({"hex", "elf", "bin"})
    missing = "pyOCD is not installed"

    def tool(self) -> str | None:
        return find_tool("pyocd")

    def usable(self, device: Device) -> tuple[bool, str]:
        if self.tool() is None:
            return False, "pyOCD is not installed"
        return probe_usable(device)

    def refuse(self, device: Device, found, why: str) -> FwtoolError:
        if self.tool() is None:
            return MissingTool("pyOCD is not installed: it flashes PSoC 6 kits through the KitProg3", INSTALL_FIX)
        return probe_refusal(self.label, device, why)

    def target(self, board) -> str:
        t = self.settings(board).get("target")
        if not t:
            raise FwtoolError(f"boards/{board.name}.toml has no [flash.pyocd] target",
                              "add the pyOCD target name (pyocd list --targets)")
        return str(t)

    def base_cmd(self, sub: str, board, device: Device) -> list[str]:
        return [self.tool() or "pyocd", sub, "-W", "-t", self.target(board), "-u", str(device.serial)]

    def flash(self, image: Image, device: Device, board, opts: WriteOptions = WriteOptions()) -> Written:
        self.accepts(image)
        verify, reboot, progress, timeout = opts.verify, opts.reboot, opts.progress, opts.timeout
        if self.tool() is None:
            raise self.refuse(device, None, "")
        t0 = time.monotonic()
        tool_timeout = max(120.0, timeout * 12)  # erasing + writing 2 MiB over CMSIS-DAP takes a while
        with hex_file(image) as (path, segs):
            total = sum(len(d) for _, d in segs)
            progress("writing", 0, total)
            cmd = self.base_cmd("flash", board, device) + ["--format", "hex"]
            if not reboot:
                cmd.append("--no-reset")
            self._run(cmd + [str(path)], device, board, tool_timeout)
            progress("writing", total, total)
        if verify:
            self.verify(segs, device, board, progress, tool_timeout)
        return counters(image, segs, verified=verify, rebooted=reboot, seconds=time.monotonic() - t0,
                        probe=device.serial, target=self.target(board))

    def verify(self, segs, device: Device, board, progress: Progress, tool_timeout: float) -> None:
        total = sum(len(d) for _, d in segs)
        progress("verifying", 0, total)
        with tempfile.TemporaryDirectory(prefix="fwtool-verify-") as tmp:
            files = [Path(tmp) / f"seg{i}.bin" for i in range(len(segs))]
            cmd = self.base_cmd("cmd", board, device)
            for (addr, data), f in zip(segs, files):
                cmd += ["-c", f"savemem 0x{addr:08X} {len(data)} {f}"]
            self._run(cmd, device, board, tool_timeout)
            done = 0
            for (addr, data), f in zip(segs, files):
                got = f.read_bytes() if f.is_file() else b""
                if got != data:
                    at = next((i for i, (a, b) in enumerate(zip(got, data)) if a != b), min(len(got), len(data)))
                    raise FlashFailed(f"verify failed: flash at 0x{addr + at:08X} does not hold the image "
                                      f"(read back {len(got):,} of {len(data):,} B of the segment at 0x{addr:08X})",
                                      "flash again; if it fails the same way, erase the part (pyocd erase -W "
                                      f"-t {self.target(board)} --chip) and retry")
                done += len(data)
                progress("verifying", done, total)

    def _run(self, cmd: list[str], device: Device, board, tool_timeout: float) -> None:
        try:
            res = self.run_tool(cmd, check=False, timeout=tool_timeout)
        except ToolTimeout as e:
            raise FlashFailed(f"pyOCD did not finish within {tool_timeout:.0f} s ({device.describe()})",
                              "replug the kit (KitProg3 USB connector) and retry") from e
        if res.returncode != 0:
            err = map_error(res.stdout + "\n" + res.stderr, res.returncode, device, self.target(board))
            if isinstance(err, FlashFailed) and err.fix is None:
                err.fix = f"run the same command to see pyOCD's whole output: {proc.command_line(cmd)}"
            raise err

    def doctor_rows(self) -> list[dict]:
        tool = self.tool()
        if tool is None:
            return [{"name": "psoc6: pyOCD", "ok": False, "detail": f"not installed: {INSTALL_FIX}"}]
        try:
            res = self.run_tool([tool, "--version"], check=False, timeout=60)
            version = (res.stdout or res.stderr).strip().splitlines()[-1:] or ["?"]
            version = version[0]
        except FwtoolError as e:
            return [{"name": "psoc6: pyOCD", "ok": False, "detail": f"{tool} does not run ({e.cause})"}]
        nums = tuple(int(x) for x in re.findall(r"\d+", version)[:2])
        ok = len(nums) == 2 and nums >= MIN_VERSION
        detail = f"{version}  {tool}" + ("" if ok else f"  (older than {'.'.join(map(str, MIN_VERSION))}: "
                                                      "pip install -U 'pyocd>=0.36')")
        return [{"name": "psoc6: pyOCD", "ok": ok, "detail": detail}]


def map_error(output: str, rc: int, device: Device, target: str) -> FwtoolError:
    """pyOCD's own messages (pyocd/core/helpers.py, board/board.py, probe/pydapaccess) -> one fwtool error."""
    uid = device.serial
    if "No connected debug probe" in output or "No available debug probes" in output:
        return NoDevice(f"pyOCD found no debug probe with UID {uid} (fwtool sees {device.describe()})",
                        f"{not_found_fix()}; close other programs using the probe; if it is not in CMSIS-DAP mode: "
                        f"{SWITCH_FIX}")
    if "More than one debug probe matches" in output:
        return NoDevice(f"several debug probes match UID {uid}", "pass the full serial with --serial "
                        "(see 'fwtool devices')")
    if re.search(r"Target type \S+ not recognized", output):
        return MissingTool(f"this pyOCD does not know the target '{target}'", "pip install -U 'pyocd>=0.36'")
    if re.search(r"No ACK|SWD/JTAG communication failure|Transfer fault|TransferFaultError|"
                 r"Error while initing target|Transfer error", output):
        return FlashFailed(f"pyOCD could not talk to the chip through the KitProg3: {last_error_line(output)}",
                           "check the kit is powered and its target is not held in reset, replug the KitProg3 "
                           "USB connector and retry")
    return FlashFailed(f"pyOCD failed (exit {rc}): {last_error_line(output) or 'no output'}")

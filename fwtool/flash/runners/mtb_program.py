"""The ``mtb-program`` runner: ModusToolbox's own programming step, when ModusToolbox is installed.

``make -C PROJECT qprogram MTB_PROBE_SERIAL=<UID> CY_TOOLS_PATHS=<tools_x.y>`` in the ModusToolbox project that
built the image: the recipe runs its OpenOCD with ``program <app>.hex verify reset exit`` (the command line in
docs/notes/psoc6-flashing.md §3.1). ``qprogram`` programs the project's last build without rebuilding it,
so this runner only flashes an image that *is* that build output (the same bytes); anything else is refused
before the probe is touched (``--method pyocd`` flashes any image). ``MTB_PROBE_SERIAL`` selects the kit
(``adapter serial``).
"""
from __future__ import annotations

import time
from pathlib import Path

from fwtool.core.errors import BadInput, FwtoolError, MissingTool
from fwtool.devices.device import Device
from fwtool.flash.base import Image, Runner
from fwtool.flash.request import WriteOptions, Written
from fwtool.flash.probe import counters, find_tool, probe_refusal, probe_usable, segments_of
from fwtool.flash.runners.openocd import mtb_tools_dirs, run_programmer
from fwtool.image.firmware import read

INSTALL_FIX = ("install ModusToolbox (it sets CY_TOOLS_PATHS or uses ~/ModusToolbox/tools_*), or use pyOCD: "
               "pip install 'fwtool[psoc6]'")
MTB_MARKS = ("CY_TOOLS_PATHS", "make/start.mk")  # what every ModusToolbox application Makefile includes


def tools_dir() -> Path | None:
    """The ModusToolbox tools folder whose make layer is there (tools_x.y/make/start.mk), or None."""
    return next((d for d in mtb_tools_dirs() if (d / "make" / "start.mk").is_file()), None)


def is_mtb_project(folder: Path) -> bool:
    mk = folder / "Makefile"
    try:
        return mk.is_file() and any(m in mk.read_text(errors="replace") for m in MTB_MARKS)
    except OSError:
        return False


def find_project(image_path: Path) -> Path | None:
    """The ModusToolbox project the image belongs to: a folder above the image (its build output lives under
    PROJECT/build/...) or a folder next to it (fwtool's out dir holding the generated project)."""
    here = image_path.resolve().parent
    for folder in [here, *list(here.parents)[:5]]:
        if is_mtb_project(folder):
            return folder
    for child in sorted(p for p in here.iterdir() if p.is_dir()) if here.is_dir() else []:
        if is_mtb_project(child):
            return child
    return None


def build_output(project: Path, segs) -> Path | None:
    """The project's build output (.hex under build/) holding exactly ``segs``, or None."""
    for hexfile in sorted((project / "build").rglob("*.hex")) if (project / "build").is_dir() else []:
        try:
            if [(a, bytes(d)) for a, d in read(hexfile, "hex").segments] == segs:
                return hexfile
        except FwtoolError:
            continue
    return None


class MtbProgramRunner(Runner):
    name = "mtb-program"
    title = "ModusToolbox 'make qprogram' of the project that built the image (OpenOCD, verified)"
    label = "ModusToolbox make program"
    verifies = True  # the recipe's OpenOCD command is 'program FILE verify reset exit'
    skips_unchanged = False
    resets = True
    needs_bootloader = False
    image_kinds = frozenset({"hex"})
    missing = "ModusToolbox is not installed"

    def supports(self, board) -> tuple[bool, str]:
        if tools_dir() is None:
            return False, "ModusToolbox is not installed (no CY_TOOLS_PATHS, no ~/ModusToolbox/tools_*)"
        if find_tool("make") is None:
            return False, "GNU make is not on PATH"
        return True, ""

    def usable(self, device: Device) -> tuple[bool, str]:
        ok, why = self.supports(None)
        return (ok, why) if not ok else probe_usable(device)

    def refuse(self, device: Device, found, why: str) -> FwtoolError:
        ok, why_tools = self.supports(None)
        if not ok:
            return MissingTool(why_tools, INSTALL_FIX)
        return probe_refusal(self.label, device, why)

    def refuse_board(self, board, why: str) -> FwtoolError:
        return MissingTool(f"'make program' cannot flash {board.name}: {why}", INSTALL_FIX)

    def flash(self, image: Image, device: Device, board, opts: WriteOptions = WriteOptions()) -> Written:
        self.accepts(image)
        reboot, progress, timeout = opts.reboot, opts.progress, opts.timeout
        tools = tools_dir()
        if tools is None:
            raise MissingTool("ModusToolbox is not installed", INSTALL_FIX)
        if not reboot:
            raise BadInput("--no-reboot is not possible with make program (the recipe always resets)",
                           "use --method pyocd --no-reboot")
        segs = segments_of(image)
        project = find_project(Path(image.source))
        if project is None:
            raise BadInput(f"'make program' flashes a ModusToolbox project's own build, and no ModusToolbox project "
                           f"(a Makefile with CY_TOOLS_PATHS) holds {image.source}",
                           "flash it with --method pyocd, or pass the .hex the MTB project built")
        if build_output(project, segs) is None:
            raise BadInput(f"the ModusToolbox project {project} has not built {image.source} (no build/**/*.hex "
                           "with the same bytes)", f"run 'make build' in {project}, or use --method pyocd")
        t0 = time.monotonic()
        total = sum(len(d) for _, d in segs)
        progress("writing", 0, total)
        cmd = [find_tool("make") or "make", "-C", str(project), "qprogram", f"MTB_PROBE_SERIAL={device.serial}",
               f"CY_TOOLS_PATHS={tools}"]
        run_programmer(self, cmd, "make qprogram", device, max(300.0, timeout * 30))
        progress("writing", total, total)
        return counters(image, segs, verified=True, rebooted=True, seconds=time.monotonic() - t0,
                        probe=device.serial, project=str(project))

    def doctor_rows(self) -> list[dict]:
        tools = tools_dir()
        return [{"name": "psoc6: ModusToolbox", "ok": True,
                 "detail": f"{tools} (make program, MTB's own build)" if tools else
                 "not installed (optional: fwtool builds PSoC 6 without it and flashes with pyOCD)"}]

"""Reset the target once the monitor has its port open, so the boot banner (FWT:BOOT) reaches a listening host —
what ESP-IDF's monitor does by pulsing DTR/RTS when it opens the port.

A PSoC 6 kit's KitProg3 USB-UART bridge has no reset line a host can pulse (the UART is a CDC interface of the
composite probe; the probe drives the target's XRES only through its CMSIS-DAP interface), so the reset goes through
that interface of the same probe: ``pyocd reset -W -m hw -t <target> -u <probe UID>`` (the USB-UART and the probe
share one USB serial number, notes psoc6-modustoolbox.md §3.3; ``-m hw``: the nRESET pin, no debug session left
behind; ``-W``: never wait for a probe). Where that is not possible (no pyOCD, the probe busy or absent, a board with
no probe), the firmware re-announces its identity every FWT_REANNOUNCE_MS (5 s) and the monitor takes the identity
from whichever FWT:BOOT comes first, so a failed reset costs at most those seconds.
"""
from __future__ import annotations

import shutil
from typing import Callable

from fwtool.core import runner
from fwtool.core.board_schema import usb_id
from fwtool.core.boards import Board
from fwtool.core.errors import FwtoolError, MissingTool
from fwtool.devices.ports import PortInfo

RESET_TIMEOUT_S = 20.0
ResetFn = Callable[[Board, PortInfo], "str | None"]


def probe_reset_command(board: Board | None, port: PortInfo) -> list[str] | None:
    """The pyOCD command that resets ``board`` through the probe behind ``port``; None when there is none (no pyOCD
    target in the board file, or the port is not one of the board's probes, or it has no serial number)."""
    settings = (board.runner_settings.get("pyocd") or {}) if board is not None else {}
    if not settings.get("target") or not port.serial_number or port.vid is None:
        return None
    if (port.vid, port.pid) not in {usb_id(x) for x in board.usb.probe}:
        return None
    return ["pyocd", "reset", "-W", "-m", "hw", "-t", str(settings["target"]), "-u", port.serial_number]


def reset_after_open(board: Board | None, port: PortInfo) -> str | None:
    """Reset the target behind ``port`` now; a message for the user, None when this board has no such reset.
    FwtoolError when it has one but it failed (the caller falls back to the firmware's re-announce)."""
    cmd = probe_reset_command(board, port)
    if cmd is None:
        return None
    tool = shutil.which(cmd[0])
    if tool is None:
        raise MissingTool("pyOCD is not installed, so the KitProg3 cannot reset the kit",
                          "pip install 'fwtool[psoc6]'; until then the identity comes with the next re-announce (5 s)")
    proc = runner.capture([tool, *cmd[1:]], check=False, timeout=RESET_TIMEOUT_S)
    if proc.returncode != 0:
        last = next((ln for ln in reversed((proc.stderr or proc.stdout or "").splitlines()) if ln.strip()), "")
        raise FwtoolError(f"'{' '.join(cmd)}' failed: {last.strip()[:160] or f'exit {proc.returncode}'}",
                          "the identity comes with the firmware's next re-announce (every 5 s)")
    return f"reset the target through the KitProg3 ({' '.join(cmd[:5])}): the boot banner follows"

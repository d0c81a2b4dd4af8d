"""The virtual RP2040 board: pico-sdk firmware run in rp2040js (npm, MIT) on Node.js.

Python API (used by ``fwtool emulate``, ``fwtool run --emulator`` and ``fwtool validate``)::

    from fwtool import emulator
    result = emulator.run_capture("build/pico/firmware.uf2", count=3)   # serial lines until 3 FWT:INFER lines
    board = emulator.start("build/pico/firmware.uf2")                   # serial on socket://127.0.0.1:PORT
    ... fwtool monitor --port board.url ...                             # execution starts when it attaches
    board.stop()

Parts: :mod:`.node` (Node >= 18, the pinned npm package in fwtool's cache), :mod:`.bootrom` (B1 bootrom from the
rp2040js repository's demo/bootrom.ts), :mod:`.image` (UF2/ELF/HEX/bin -> flash bytes), ``runner.mjs`` (the
JavaScript side), :mod:`.session` (process ownership), :mod:`.latency` (p50/p95 and the real-time budget),
:mod:`.result` (the one RunResult and failure() of every virtual target), :mod:`.targets` (the virtual targets of
fwtool/targets/: ``rp2040js`` and ``qemu-mps2-an386``, on :mod:`.qemu`; the one ``run_capture``).

Flashing it like a board (issue 16): :mod:`.virtual_flash` (PICOBOOT through the real bootrom, then boot from the
written flash), :mod:`.virtual_usb` (the ``--usb-bridge`` process), :mod:`.usb_backend` (pyusb backend);
JavaScript: ``bridge.mjs`` (chip lifecycle, control socket), ``usbhost.mjs`` (USB host + buffer engine),
``flashchip.mjs`` (W25Q16JV SPI NOR model), ``patches.mjs`` (every runtime patch of rp2040js, with a self-test).
"""
from __future__ import annotations

from pathlib import Path

from fwtool.emulator import bootrom, node

from fwtool.emulator.latency import LatencyStats, latency_stats
from fwtool.emulator.result import RunResult, failure
from fwtool.emulator.session import CLOCK_MHZ, TIMING_NOTE, Rp2040jsProcess
from fwtool.emulator.targets import QemuM4, Rp2040js, VIRTUAL_TARGETS, run_capture

__all__ = ["start", "run_capture", "Rp2040jsProcess", "RunResult", "failure", "latency_stats", "LatencyStats",
           "TIMING_NOTE", "CLOCK_MHZ", "check", "Rp2040js", "QemuM4", "VIRTUAL_TARGETS"]


def start(image: Path, port: int = 0, start_on_connect: bool = True, max_emulated_s: float | None = None,
          max_wall_s: float | None = 3600.0) -> Rp2040jsProcess:
    """Start the virtual board with its serial stream on ``socket://127.0.0.1:<port>`` (``board.url``).

    With ``start_on_connect`` the firmware starts executing when the first client (e.g. fwtool monitor) attaches,
    so nothing it prints is missed. Call ``board.stop()`` when done (or use it as a context manager).
    """
    board = Rp2040jsProcess(Path(image), serial="tcp", start="on-connect" if start_on_connect else "now", port=port,
                         max_emulated_s=max_emulated_s, max_wall_s=max_wall_s)
    return board.start()


def check() -> dict:
    """What the virtual board needs, without starting it: node, the npm package (installed if missing), bootrom."""
    n = node.find_node()
    pkg = node.ensure_rp2040js()
    rom = bootrom.bootrom_file()
    return {"node": n.path, "node_version": n.version_str, "rp2040js": pkg.to_dict(), "bootrom": str(rom)}

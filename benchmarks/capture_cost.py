"""What ``fwtool build --capture`` costs: python3 benchmarks/capture_cost.py [BOARD] [SECONDS].

Not a test: builds the kws app (example:micro_speech) for BOARD (default pico) without and with ``--capture``
SECONDS (default 3) in a temporary folder, in one run, and prints the RAM and flash the capture adds (the pre-roll
ring and the frame code) and the console budget it uses (need / what the link carries) on USB and on a
115,200-baud UART. Needs the ARM toolchain and the SDK trees (fwtool vendor sync --all).
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from fwtool.core.errors import FwtoolError
from fwtool.firmware.capture import plan_capture


def build(board: str, out: Path, *extra: str) -> dict:
    p = subprocess.run([sys.executable, "-m", "fwtool", "build", "-b", board, "--app", "kws", "-m",
                        "example:micro_speech", "--out", str(out), "--json", *extra],
                       capture_output=True, text=True, timeout=3600)
    if p.returncode:
        sys.exit(f"build failed ({p.returncode}): {p.stderr.strip().splitlines()[-1:]}")
    return json.loads(p.stdout)


def main() -> None:
    board = sys.argv[1] if len(sys.argv) > 1 else "pico"
    seconds = sys.argv[2] if len(sys.argv) > 2 else "3"
    with tempfile.TemporaryDirectory(prefix="fwtool-capture-cost-") as d:
        plain = build(board, Path(d) / "plain")
        cap = build(board, Path(d) / "capture", "--capture", f"{seconds}s")
    c = cap["capture"]
    for what, key in (("RAM", "ram_bytes"), ("flash", "flash_bytes")):
        a, b = plain["usage"][key], cap["usage"][key]
        print(f"{what:6s} {a:9,} B -> {b:9,} B  (+{b - a:,} B, x{b / a:.3f})")
    print(f"ring   {c['ring_samples']:,} samples ({c['pre_samples']:,} pre-roll), "
          f"{(c['pre_samples'] + c['post_samples']) / c['rate']:g} s per detection")
    print(f"link   {c['need_bytes_per_s']:,} B/s needed of {c['link_bytes_per_s']:,} B/s on {c['link']} "
          f"({c['need_bytes_per_s'] / c['link_bytes_per_s']:.0%})")
    try:
        plan_capture(float(seconds), None, app="kws", family="rp2040", stdio="uart", uart_baud=115200,
                     inferences_per_s=10.0, labels=4)
    except FwtoolError as e:
        print(f"UART   115,200 baud: refused ({e.cause.split(': ', 1)[1]})")


if __name__ == "__main__":
    main()

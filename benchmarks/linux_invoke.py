"""Linux-family numbers in one run: python3 benchmarks/linux_invoke.py [N] [OUT_DIR]

For fire_alarm and micro_speech (inference app): builds the linux-host (host g++) and rpi4 (aarch64-linux-gnu-g++)
static programs, runs each for N inferences — natively, and under qemu-aarch64-static — and prints the median
and p95 invoke time, the ratio qemu/native, and the program sizes (loaded bytes = the PT_LOAD file sizes; the
file itself carries debug info). qemu-user has no -icount: its times are wall time of translated code on this
machine, not a Raspberry Pi's.

Instructions: Debian's qemu-user-static 7.2 has no TCG plugins ("qemu: unknown option 'plugin'") and user mode has
no -icount, so they are counted the slow way: ``-singlestep -d exec,nochain`` logs one "Trace" line per executed
aarch64 instruction, into the same pipe as the program's stdout, so the count between two FWT:INFER lines is one
loop of the inference app (invoke + the line it prints) and the count up to the first is start-up + one loop.
"""
from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

from elftools.elf.elffile import ELFFile

from fwtool.core import protocol
from fwtool.emulator import linux_user

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"fire_alarm": "example:fire_alarm", "micro_speech": "example:micro_speech"}
BOARDS = {"linux-host": None, "rpi4": "aarch64"}


def build(board: str, model: str, out: Path, app: str = "inference") -> Path:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "fwtool", "build", "--board", board, "--app", app, "-m", model,
                        "--out", str(out)], capture_output=True, text=True, env=env)
    if p.returncode:
        raise SystemExit(f"build {board} {model} failed:\n{p.stderr}")
    return out / "firmware.elf"


def loaded_bytes(elf: Path) -> int:
    with open(elf, "rb") as f:
        return sum(s["p_filesz"] for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD")


def invoke_us(elf: Path, arch: str | None, n: int) -> list[int]:
    r = linux_user.run(linux_user.command(elf, arch), count=n + 1, timeout=600)
    us = [x.us for x in (protocol.parse_line(ln) for ln in r.lines) if isinstance(x, protocol.Inference)]
    return us[1:]  # the first one warms caches (and qemu's translation)


def instructions_per_inference(elf: Path, loops: int = 2, timeout: float = 900) -> tuple[int, list[int]]:
    """(instructions up to the first FWT:INFER line, [instructions between consecutive ones]) under
    qemu-aarch64 -singlestep (see the docstring)."""
    cmd = [linux_user.qemu_for("aarch64"), "-singlestep", "-d", "exec,nochain", "-D", "/dev/stdout", str(elf)]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    counts, n = [], 0
    try:
        for raw in p.stdout:
            line = raw.decode(errors="replace")
            n += line.count("Trace ")
            if re.search(r"FWT:INFER n=\d+", line):
                counts.append(n)
                n = 0
                if len(counts) > loops:
                    break
    finally:
        p.kill()
        p.wait(timeout=timeout)
    return counts[0], counts[1:]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("build/bench-linux")
    print(f"{'model':14s} {'board':11s} {'runs on':18s} {'p50 ms':>8s} {'p95 ms':>8s} {'loaded B':>10s}")
    for name, model in MODELS.items():
        p50 = {}
        for board, arch in BOARDS.items():
            elf = build(board, model, out / f"{name}-{board}")
            us = invoke_us(elf, arch, n)
            p50[board] = statistics.median(us) / 1000
            p95 = sorted(us)[int(0.95 * (len(us) - 1))] / 1000
            where = "native" if arch is None else "qemu-aarch64-static"
            print(f"{name:14s} {board:11s} {where:18s} {p50[board]:8.3f} {p95:8.3f} {loaded_bytes(elf):10,d}")
        print(f"{name:14s} qemu-aarch64 / native p50 = {p50['rpi4'] / p50['linux-host']:.1f}x")
        first, loops = instructions_per_inference(out / f"{name}-rpi4" / "firmware.elf")
        same = "identical" if len(set(loops)) == 1 else "differ"
        print(f"{name:14s} rpi4 aarch64 instructions: start-up + 1st inference {first:,}; each further "
              f"inference {', '.join(f'{c:,}' for c in loops)} ({same})")


if __name__ == "__main__":
    main()

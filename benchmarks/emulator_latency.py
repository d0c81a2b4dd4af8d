"""Emulated invoke latency of fire_alarm on the virtual RP2040, and what the emulator's quirk handling changes.

Prints, from one run on this machine:
  * p50/p95 invoke time of N inferences (the firmware's own time_us_64(), emulated 125 MHz clock) vs the Pico
    audio tutorial's 32 ms budget and its 24 ms real-hardware figure;
  * the same firmware without the CDC OUT hold (rp2040js's 0-byte-packet interrupt storm): latency ratio;
  * emulation speed (emulated seconds per wall second, cycles per wall second);
  * CMSIS-NN vs reference kernels, when the pinned pico-tflmicro has reference kernel sources to build.

    python benchmarks/emulator_latency.py [--model fire_alarm.tflite] [--out build/bench-emu] [-n 20]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fwtool.firmware import flow as build  # noqa: E402 - after the sys.path line above
from fwtool import emulator  # noqa: E402
from fwtool.core import protocol, vendor  # noqa: E402
from fwtool.core.errors import FwtoolError  # noqa: E402

TUTORIAL_REAL_MS = 24.0  # the Pico audio tutorial's reported inference time on real hardware
BUDGET_MS = 32.0  # 512 new samples at 16 kHz


def run(image: Path, n: int, extra: list[str] | None = None) -> tuple[list[int], emulator.RunResult, dict]:
    events: list[dict] = []
    board = emulator.Rp2040jsProcess(image, serial="stdout", start="now", max_wall_s=600, until=protocol.PREFIX_INFER,
                                  count=n, extra_args=extra, on_event=events.append)
    try:
        board.start()
        board.wait()
    finally:
        board.stop()
    result = board.result()
    if not result.ok:
        raise emulator.failure(result.reason, result.detail)
    exit_ev = next(e for e in events if e.get("event") == "exit")
    return [r.us for r in result.records if isinstance(r, protocol.Inference)], result, exit_ev


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT.parent / "shared" / "models" / "fire_alarm.tflite")
    ap.add_argument("--out", type=Path, default=Path("build") / "bench-emu")
    ap.add_argument("-n", type=int, default=20)
    args = ap.parse_args()
    try:
        emulator.check()
        t0 = time.monotonic()
        report = build.run(build.BuildOptions(board="pico", model=args.model, out_dir=args.out, tflm_cores=1))
        print(f"build      {report['model']['name']} --tflm-cores 1: {time.monotonic() - t0:.1f} s, "
              f"flash {report['sizes']['flash']:,} B")
        uf2 = Path(report["files"]["uf2"])

        us, res, ev = run(uf2, args.n)
        s = emulator.latency_stats(us, BUDGET_MS)
        print(f"latency    {s.summary()}")
        print(f"           p50 {s.p50_ms:.2f} ms = {s.p50_ms / TUTORIAL_REAL_MS:.2f} x the tutorial's {TUTORIAL_REAL_MS:g} ms "
              f"on real hardware; {100 * s.p95_ms / BUDGET_MS:.0f} % of the {BUDGET_MS:g} ms budget")
        print(f"speed      {res.emulated_us / 1e6:.2f} s emulated in {res.wall_s:.2f} s wall = "
              f"{res.emulated_us / 1e6 / res.wall_s:.2f} x real time overall (sleeps are free); "
              f"{ev['instructions'] / res.wall_s / 1e6:.1f} M instructions executed per wall second; "
              f"inference compute {sum(us) / 1e6 * emulator.CLOCK_MHZ:.0f} M cycles")

        n_storm = min(3, args.n)
        us2, res2, _ = run(uf2, n_storm, ["--no-out-hold"])
        s2 = emulator.latency_stats(us2)
        print(f"cdc quirk  without the OUT hold: p50 {s2.p50_ms:.2f} ms = {s2.p50_ms / s.p50_ms:.2f} x (interrupt "
              f"storm); wall {res2.wall_s / n_storm:.2f} s vs {res.wall_s / args.n:.2f} s per inference")

        root = vendor.require(vendor.manifest()["pico-tflmicro"])
        ref = root / "src" / "tensorflow" / "lite" / "micro" / "kernels" / "conv.cpp"
        if ref.is_file():
            print("reference  reference kernel sources exist but fwtool has no switch to build them yet")
        else:
            print(f"reference  not buildable: pico-tflmicro {vendor.manifest()['pico-tflmicro'].version} ships "
                  "only CMSIS-NN CONV_2D/FULLY_CONNECTED/MAX_POOL_2D kernels (no kernels/conv.cpp)")
        print(f"note       {emulator.TIMING_NOTE}")
    except FwtoolError as e:
        print(f"skipped: {e.cause}" + (f" ({e.fix})" if e.fix else ""))
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Cold vs incremental `fwtool build` for the Pico, measured in one run, plus the firmware size ratio.

    python benchmarks/build_incremental.py [--model M] [--jobs N]

1. cold: a fresh out dir with ccache disabled (FWTOOL_NO_CCACHE=1): pico-sdk + TFLM runtime + kernels compiled;
2. incremental: a second model (same ops, different bytes) built into the same out dir;
3. fresh out dir with ccache on (if installed), after (1) filled it.
Needs the toolchain and vendor trees (`fwtool doctor`).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import modelgen  # noqa: E402

TUTORIAL_TEXT = 949_684


def build(model, out, env_extra=None, jobs=None):
    env = dict(os.environ, **(env_extra or {}))
    cmd = [sys.executable, "-m", "fwtool", "build", "-b", "pico", "-m", str(model), "--out", str(out), "--json"]
    if jobs:
        cmd += ["-j", str(jobs)]
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.monotonic() - t
    if p.returncode:
        sys.exit(f"build failed: {p.stderr.strip()}")
    return dt, json.loads(p.stdout)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=modelgen.FIRE_ALARM)
    ap.add_argument("--jobs", type=int)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        second = tmp / "second.tflite"
        second.write_bytes(modelgen.padded_model(2048))
        cold, r = build(a.model, tmp / "out", {"FWTOOL_NO_CCACHE": "1", "CCACHE_DISABLE": "1"}, a.jobs)
        inc, r2 = build(second, tmp / "out", {"FWTOOL_NO_CCACHE": "1", "CCACHE_DISABLE": "1"}, a.jobs)
        print(f"cold build (no ccache)      {cold:7.1f} s   text {r['sizes']['text']:,} B")
        print(f"second model, same out dir  {inc:7.1f} s   changed: {', '.join(r2['build']['changed_files'])}")
        print(f"cold / incremental          {cold / inc:7.1f} x")
        if subprocess.run(["which", "ccache"], capture_output=True).returncode == 0:
            build(a.model, tmp / "warm1", {}, a.jobs)  # make sure ccache holds this configuration
            warm, _ = build(a.model, tmp / "warm2", {}, a.jobs)
            print(f"new out dir, warm ccache    {warm:7.1f} s   ({cold / warm:.1f} x faster than cold)")
        print(f"text vs tutorial by-hand    {r['sizes']['text']:,} / {TUTORIAL_TEXT:,} = "
              f"{100 * r['sizes']['text'] / TUTORIAL_TEXT:.1f} %")


if __name__ == "__main__":
    main()

"""End-to-end latency of keyword spotting on the linux family, audio in to FWT:DETECT out, in one run:
python3 benchmarks/linux_latency.py [REPEATS] [OUT_DIR]

Builds the kws app (micro_speech) for linux-host (native) and rpi4 (run under qemu-aarch64-static), then for each
of tflite-micro's micro_speech test clips yes_1000ms.wav and no_1000ms.wav runs the program with raw S16LE 16 kHz
mono on its stdin — exactly what `arecord -D plughw:… -f S16_LE -r 16000 -c 1 -t raw | program` gives it — written
at the sample rate in 10 ms pieces: 1 s of silence, the clip, 2 s of silence. The latency is the time from the
moment the clip's last sample went into the pipe to the moment the FWT:DETECT line came out (negative: detected
before the clip ended). It includes the pipe, the audio front end, the classifier every 100 ms and micro_speech's
averaging over recent inferences (most of it). The qemu rows are this machine translating aarch64 code, not a Pi 4.
It needs the linux family's audio input (the kws app reading stdin PCM); where a tree lacks it the build step fails
and says why.
"""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import threading
import time
import wave
from pathlib import Path

from fwtool.core import vendor
from fwtool.emulator import linux_user

ROOT = Path(__file__).resolve().parent.parent
RATE, PIECE = 16000, 320  # 10 ms of S16LE mono
BOARDS = {"linux-host": None, "rpi4": "aarch64"}
CLIPS = {"yes": "yes_1000ms.wav", "no": "no_1000ms.wav"}


def build(board: str, out: Path) -> Path:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    p = subprocess.run([sys.executable, "-m", "fwtool", "build", "--board", board, "--app", "kws", "-m",
                        "example:micro_speech", "--out", str(out)], capture_output=True, text=True, env=env)
    if p.returncode:
        raise SystemExit(f"build {board} kws failed:\n{p.stderr[-800:]}")
    return out / "firmware.elf"


def clip(name: str) -> bytes:
    tree = next(vendor.require(d) for d in vendor.deps_for("linux", "build") if d.name == "tflite-micro")
    with wave.open(str(tree / "tensorflow/lite/micro/examples/micro_speech/testdata" / CLIPS[name])) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (RATE, 1, 2)
        return w.readframes(w.getnframes())


def one_run(cmd: list[str], pcm: bytes) -> tuple[float | None, str]:
    """(seconds from the clip's last sample to FWT:DETECT, the label) for one paced run."""
    silence = bytes(2 * RATE)
    data = silence + pcm + silence * 2
    end_at = len(silence) + len(pcm)
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    detects: list[tuple[float, str]] = []

    def read():
        for raw in p.stdout:
            line = raw.decode(errors="replace")
            if line.startswith("FWT:DETECT"):
                label = next((f.split("=", 1)[1] for f in line.split() if f.startswith("label=")), "?")
                detects.append((time.monotonic(), label))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    t0 = time.monotonic()
    clip_end = None
    try:
        for i in range(0, len(data), PIECE):
            wait = t0 + i / (2 * RATE) - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            p.stdin.write(data[i:i + PIECE])
            p.stdin.flush()
            if clip_end is None and i + PIECE >= end_at:
                clip_end = time.monotonic()
        p.stdin.close()
        p.wait(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    reader.join(timeout=5)
    if not detects:
        return None, "none"
    return detects[0][0] - clip_end, detects[0][1]


def main() -> None:
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else Path("build/bench-linux-latency")
    print(f"{'board':11s} {'runs on':20s} {'clip':5s} {'detected':10s} {'min s':>7s} {'median s':>9s} {'max s':>7s}")
    for board, arch in BOARDS.items():
        elf = build(board, out / board)
        cmd = linux_user.command(elf, arch)
        where = "native" if arch is None else "qemu-aarch64-static"
        for name in CLIPS:
            pcm = clip(name)
            runs = [one_run(cmd, pcm) for _ in range(repeats)]
            lat = [s for s, label in runs if s is not None and label == name]
            labels = ",".join(sorted({label for _, label in runs}))
            if lat:
                print(f"{board:11s} {where:20s} {name:5s} {len(lat)}/{repeats} {labels:5s} {min(lat):7.3f} "
                      f"{statistics.median(lat):9.3f} {max(lat):7.3f}")
            else:
                print(f"{board:11s} {where:20s} {name:5s} 0/{repeats} ({labels})")


if __name__ == "__main__":
    main()

"""Audio pipeline speed: python3 benchmarks/audio_pipeline.py [SECONDS] [--model M] [--app audio_classifier]

From the virtual RP2040 (rp2040js at 125 MHz, TFLM on one core, the firmware built by `fwtool build --app
audio_classifier --tflm-cores 1`): per-hop DSP µs (the CMSIS-DSP spectrogram of the 4 new frames + copy into the
model input), invoke µs and their sum as a fraction of the real-time budget (512 samples / 16 kHz = 32 ms), over a
streamed noisy-chirp clip of SECONDS (default 2). Then the host feature extractor's clips per second.

Not a test: prints numbers. Emulated cycles are an estimate (zero-wait flash); confirm on a board.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

from fwtool.audio import capture, device, features
from fwtool.core.stats import percentile
from fwtool.firmware import flow as build_flow
from fwtool.emulator.audio import stream_clip
from fwtool.model.tflite import load_model

SHARED_MODEL = Path(__file__).resolve().parents[2] / "shared" / "models" / "fire_alarm.tflite"


def signal(seconds: float) -> np.ndarray:
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    rng = np.random.default_rng(0)
    x = 9000 * np.sin(2 * np.pi * (200 * t + 1500 * t ** 2)) + rng.normal(0, 800, n)
    return np.clip(np.round(x), -32768, 32767).astype(np.int16)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("seconds", nargs="?", type=float, default=2.0)
    ap.add_argument("--model", type=Path, default=SHARED_MODEL)
    ap.add_argument("--app", default="audio_classifier")
    ap.add_argument("--out", type=Path, default=Path("build") / "bench-audio-pipeline")
    a = ap.parse_args()
    model = load_model(a.model)
    fe = device.front_end(a.app, device.model_input_of(model.inputs[0]))
    t0 = time.perf_counter()
    built = build_flow.run(build_flow.BuildOptions(board="pico", model=a.model, out_dir=a.out, app=a.app,
                                                   tflm_cores=1))
    print(f"build      {a.app} for {model.name}: {time.perf_counter() - t0:.1f} s -> {built.artifacts.image}")
    pcm = signal(a.seconds)
    t0 = time.perf_counter()
    cap = stream_clip(built.artifacts.image, pcm, fe)
    wall = time.perf_counter() - t0
    capture.require_complete(cap, fe, len(pcm), "benchmark clip")
    dsp = [i.dsp_us for i in cap.inferences]
    inv = [i.invoke_us for i in cap.inferences]
    hop = [i.us for i in cap.inferences]
    budget = fe.inference_period_ms * 1000
    print(f"virtual    {len(hop)} inferences over {a.seconds:g} s of audio, streamed in {wall:.1f} s wall "
          f"({a.seconds / wall:.2f}x real time incl. boot)")
    print(f"DSP        p50 {statistics.median(dsp):8.0f} µs   p95 {percentile(dsp, 95):8.0f} µs   "
          f"({fe.columns_per_inference} frames of FFT {fe.fft_size} + quantization per hop)")
    print(f"invoke     p50 {statistics.median(inv):8.0f} µs   p95 {percentile(inv, 95):8.0f} µs")
    print(f"hop total  p50 {statistics.median(hop):8.0f} µs   p95 {percentile(hop, 95):8.0f} µs   = "
          f"{percentile(hop, 95) / budget:.1%} of the {budget / 1000:g} ms budget (p95; p50 {statistics.median(hop) / budget:.1%})")
    print("note       emulated cycles at 125 MHz, one core, zero-wait flash: an estimate, typically optimistic")
    data = [signal(1.0)] * 50
    features.compute_pcm(a.app, data[:1], fe)
    t0 = time.perf_counter()
    features.compute_pcm(a.app, data, fe)
    dt = time.perf_counter() - t0
    print(f"host       {len(data) / dt:.1f} clips/s ({a.app} features of 1 s clips, model-quantized; "
          f"benchmarks/audio_features.py has more)")


if __name__ == "__main__":
    main()

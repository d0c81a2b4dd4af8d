"""Host feature extractor speed (clips per second) for both audio apps: python3 benchmarks/audio_features.py [N].

Not a test: prints numbers. The kws front end needs the tflite-micro vendor tree (fwtool vendor sync tflite-micro)
or FWTOOL_MICRO_SPEECH_DIR; the classifier with no model times the q15 spectrogram, with fire_alarm's input
(1x124x129x1, scale 0.443382, zero point -128) the quantized model input.
"""
from __future__ import annotations

import sys
import time

import numpy as np

from fwtool.audio import features, kws, params
from fwtool.core.errors import FwtoolError


def clips(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    return [np.clip(np.round(6000 * np.sin(2 * np.pi * (300 + 50 * i) * t) + rng.normal(0, 500, 16000)),
                    -32768, 32767).astype(np.int16) for i in range(n)]


def bench(name: str, app: str, fe: params.FrontEnd, data: list[np.ndarray], pp=None) -> None:
    features.compute_pcm(app, data[:1], fe, preprocessor=pp)  # warm-up (window, FFT tables, interpreter)
    t0 = time.perf_counter()
    x = features.compute_pcm(app, data, fe, preprocessor=pp)
    dt = time.perf_counter() - t0
    print(f"{name:40s} {len(data) / dt:8.1f} clips/s  ({1000 * dt / len(data):6.2f} ms per 1 s clip, "
          f"{len(data) / dt:6.1f}x real time)  -> {x.dtype}{list(x.shape[1:])}")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    data = clips(n)
    bench("audio_classifier (q15 spectrogram)", "audio_classifier", params.classifier(), data)
    fire = params.classifier_for(params.ModelInput((1, 124, 129, 1), "int8", 0.443382, -128))
    bench("audio_classifier (fire_alarm int8)", "audio_classifier", fire, data)
    try:
        pp = kws.Preprocessor()
    except FwtoolError as e:
        print(f"{'kws (micro_speech preprocessor)':40s} skipped: {e.cause} ({e.fix})")
        return
    bench("kws (micro_speech preprocessor)", "kws", params.kws(), data, pp)


if __name__ == "__main__":
    main()

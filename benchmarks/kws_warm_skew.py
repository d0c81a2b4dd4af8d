"""The kws front end's train/device skew, measured: python3 benchmarks/kws_warm_skew.py [N].

Not a test: prints numbers. N synthetic "yes" clips (espeak-ng voices, through fwtool dataset synth's
code) mixed with pink noise at ~15 dB SNR, classified by micro_speech's stock model twice: on features from a
fresh preprocessor (what `fwtool features` gives by default and the TinyML book trains on) and on the features
the listening device computes after 1 s of the same noise (`fwtool features --warm-up`, kws.warm_features).
Needs espeak-ng, sox, the tflite-micro Python runtime and the tflite-micro vendor tree.
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

from fwtool.audio import kws, params
from fwtool.train import synth


def main(n: int = 40) -> None:
    fe = params.kws()
    pp, clf = kws.Preprocessor(), kws.Classifier()
    voices = synth.voices("espeak-ng", n)
    noise = synth.noise("pink", 30, 1).astype(np.float64)
    rng = np.random.default_rng(0)
    cold_ok = warm_ok = 0
    with tempfile.TemporaryDirectory() as tmp:
        for i, v in enumerate(voices):
            pcm = synth.speak(synth.Take("espeak-ng", v, 50, 160, "yes", "yes"), Path(tmp)).astype(np.float64)
            off = int(rng.integers(0, len(noise) - 40000))
            seg = noise[off: off + 16160 + 16000]
            sig = np.sqrt(np.mean(pcm[np.abs(pcm) > 300] ** 2))
            seg = seg * sig / 10 ** (15 / 20) / np.sqrt(np.mean(seg ** 2))
            clip = np.clip(np.round(pcm + seg[16160:]), -32768, 32767).astype(np.int16)
            pre = np.clip(np.round(seg[:16160]), -32768, 32767).astype(np.int16)
            cold = clf.scores(kws.features(clip, fe, pp))
            warm = clf.scores(kws.warm_features(clip, pre, fe, pp))
            cold_ok += int(np.argmax(cold) == kws.LABELS.index("yes"))
            warm_ok += int(np.argmax(warm) == kws.LABELS.index("yes"))
    print(f"micro_speech stock model, {len(voices)} synthetic 'yes' clips in pink noise (15 dB SNR):")
    print(f"  fresh front end per clip (cold features):   {cold_ok}/{len(voices)} recognised")
    print(f"  after 1 s of the noise (the device's state): {warm_ok}/{len(voices)} recognised")
    print(f"  warm / cold: {warm_ok / max(cold_ok, 1):.2f}  (a model trained on cold features meets the warm ones)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40)

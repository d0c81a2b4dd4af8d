"""The device's features for every (clip, augmentation) pair, cached by content.

kws: micro_speech's preprocessor (fwtool.audio.kws, the firmware's kernels) in the listening state by default — the
variant's own background streamed from boot first (kws.warm_features), its frames dropped — or from a fresh front
end (``warm_up_seconds=None``). audio_classifier: the CMSIS-DSP q15 spectrogram (fwtool.audio.spectrogram); its
int8 quantization depends on the trained model's input scale, so the q15 magnitudes are cached and quantized later.

Cache: ``cache_dir()/train-features/<key>.npy``, key = sha256 of the clip's samples, the Spec, the front-end
numbers, the warm-up, the preprocessor model and the background/impulse recordings; written with core.files.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from fwtool.audio import kws, spectrogram
from fwtool.audio.params import FrontEnd
from fwtool.core.files import atomic_write
from fwtool.core.paths import cache_dir

from . import augment

FEATURES_VERSION = 1  # bump when the feature computation changes


class Featurizer:
    def __init__(self, fe: FrontEnd, backgrounds: list[np.ndarray], irs: list[np.ndarray],
                 warm_up_seconds: float | None, preprocessor: kws.Preprocessor | None = None,
                 cache: Path | None = None):
        self.fe, self.backgrounds, self.irs, self.warm = fe, backgrounds, irs, warm_up_seconds
        self.pp = preprocessor if fe.app != "kws" or preprocessor else kws.Preprocessor()
        self.pre = (kws.warm_up_frames(fe, self.warm) * fe.hop - (fe.window - fe.hop)) \
            if fe.app == "kws" and self.warm is not None else 0
        h = hashlib.sha256(json.dumps({"v": FEATURES_VERSION, "fe": asdict(fe), "warm": self.warm}).encode())
        if fe.app == "kws":
            h.update(hashlib.sha256(self.pp.path.read_bytes()).digest())
        for a in (*backgrounds, b"|", *irs):
            h.update(a if isinstance(a, bytes) else hashlib.sha256(np.asarray(a).tobytes()).digest())
        self.base = h.hexdigest()
        self.cache = Path(cache) if cache else cache_dir() / "train-features"
        self.hits = self.misses = 0

    def _path(self, sha: str, spec: augment.Spec) -> Path:
        k = hashlib.sha256(f"{self.base}:{sha}:{spec.key()}".encode()).hexdigest()
        return self.cache / k[:2] / f"{k}.npy"

    def compute(self, pcm: np.ndarray | None, spec: augment.Spec) -> np.ndarray:
        clip, pre = augment.render(spec, pcm, self.backgrounds, self.irs, self.pre)
        if self.fe.app == "kws":
            if self.warm is None:
                return kws.features(clip, self.fe, self.pp)
            return kws.warm_features(clip, pre, self.fe, self.pp, self.warm)
        return spectrogram.spectrogram_q15(clip, self.fe)[: self.fe.frames]

    def features(self, pcm: np.ndarray | None, sha: str, spec: augment.Spec) -> np.ndarray:
        p = self._path(sha, spec)
        try:
            x = np.load(p, allow_pickle=False)
            if x.shape == (self.fe.frames, self.fe.bins) and x.dtype == self.dtype:
                self.hits += 1
                return x
        except (OSError, ValueError, EOFError):  # missing, truncated (EOFError: empty), garbage: computed again
            pass
        x = self.compute(pcm, spec)
        buf = io.BytesIO()
        np.save(buf, x, allow_pickle=False)
        try:
            atomic_write(p, buf.getvalue())
        except OSError:
            pass  # a cache that cannot be written only costs time
        self.misses += 1
        return x

    @property
    def dtype(self):
        return np.dtype(np.int8 if self.fe.app == "kws" else np.int16)

    def many(self, items: list[tuple[np.ndarray | None, str, augment.Spec]],
             on_progress: Callable[[int, int], None] = lambda i, n: None) -> np.ndarray:
        out = np.empty((len(items), self.fe.frames, self.fe.bins),
                       np.int8 if self.fe.app == "kws" else np.int16)
        for i, (pcm, sha, spec) in enumerate(items):
            out[i] = self.features(pcm, sha, spec)
            if i % 50 == 0 or i == len(items) - 1:
                on_progress(i + 1, len(items))
        return out


def to_float(x: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """What Keras trains on: kws int8 features dequantized with the preprocessor's fixed scale (26/256, -128);
    classifier q15 magnitudes / 64 (the Pico notebook's features). Shape [n, frames, bins, 1]."""
    if fe.app == "kws":
        f = (x.astype(np.float32) - fe.input_zero_point) * np.float32(fe.input_scale)
    else:
        f = x.astype(np.float32) / np.float32(64.0)
    return f[..., None]


def to_int8(x: np.ndarray, fe: FrontEnd, scale: float, zero_point: int) -> np.ndarray:
    """The int8 model input the device computes: kws features as they are; classifier magnitudes through the
    firmware's threshold table for the model's input scale (spectrogram.quantize)."""
    if fe.app == "kws":
        return x.astype(np.int8)[..., None]
    return spectrogram.quantize(x, spectrogram.Quant(scale, zero_point))[..., None]

"""Waveform augmentation before the device's front end (so the features stay the device's), in numpy.

Every variant of a clip is described by a small ``Spec`` (shift, gain, background file/offset/SNR, reverb) drawn
from a generator seeded by (``--seed``, the clip's content hash, the variant number): the same seed gives the same
variants whatever the folder order, and the Spec is part of the feature cache key.

``render(spec, ...)`` returns the clip (1 s, int16) and the background that preceded it (the kws warm-up pre-roll
continues the same background at the same level), so warm-up and mixing describe one continuous recording.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass

import numpy as np

RATE = 16000


@dataclass(frozen=True)
class Policy:
    """What augmentation may do (the command's options)."""

    copies: int = 2  # augmented variants per training clip, besides the clean one
    shift_ms: int = 250  # time shift up to +/- this (a word must be recognised over several 100 ms inferences)
    gain_db: float = 6.0  # gain up to +/- this
    bg_probability: float = 0.8
    snr_db: tuple[float, float] = (5.0, 25.0)
    reverb_probability: float = 0.3
    rt60_s: tuple[float, float] = (0.15, 0.6)
    silence_fraction: float = 0.1  # kws: generated silence clips, as a fraction of the training clips
    unknown_fraction: float = 0.1  # kws: cropped-keyword unknowns


@dataclass(frozen=True)
class Spec:
    """One variant of one clip (all the randomness, drawn up front)."""

    kind: str  # clean | aug | silence | crop
    shift: int = 0  # samples (positive: later)
    gain_db: float = 0.0
    bg: int = -1  # background recording index (-1: low mic-like noise)
    bg_offset: int = 0
    snr_db: float = 99.0  # kind == silence: the background's level in dBFS
    rt60: float = 0.0  # 0: dry; else reverb
    ir: int = -1  # impulse response index (-1: the room model)
    crop: tuple[int, int] = (0, 0)  # kind == crop: kept sample range of the keyword
    noise_seed: int = 0

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


def rng_for(seed: int, sha: str, variant: int) -> np.random.Generator:
    return np.random.default_rng([seed, int(sha[:15], 16), variant])


def draw(policy: Policy, rng: np.random.Generator, n_bg: int, bg_lengths: list[int], n_ir: int,
         kind: str = "aug") -> Spec:
    """A random Spec of ``kind`` (aug, silence or crop)."""
    noise_seed = int(rng.integers(0, 2**31))
    bg = int(rng.integers(0, n_bg)) if n_bg else -1
    off = int(rng.integers(0, max(1, bg_lengths[bg]))) if bg >= 0 else 0
    if kind == "silence":
        return Spec("silence", bg=bg, bg_offset=off, snr_db=float(rng.uniform(-70, -25)), noise_seed=noise_seed)
    shift = int(rng.integers(-policy.shift_ms, policy.shift_ms + 1)) * RATE // 1000
    gain = float(rng.uniform(-policy.gain_db, policy.gain_db))
    use_bg = rng.random() < policy.bg_probability
    snr = float(rng.uniform(*policy.snr_db)) if use_bg else 99.0
    reverb = rng.random() < policy.reverb_probability
    rt60 = float(rng.uniform(*policy.rt60_s)) if reverb else 0.0
    ir = int(rng.integers(0, n_ir)) if reverb and n_ir else -1
    crop = (0, 0)
    if kind == "crop":  # the start or the end of a keyword: sounds like it, is not it
        n = int(rng.uniform(0.25, 0.45) * RATE)
        crop = (0, n) if rng.random() < 0.5 else (RATE - n, RATE)
    return Spec(kind, shift, gain, bg if use_bg else -1, off, snr, rt60, ir, crop, noise_seed)


def fit_one_second(pcm: np.ndarray, n: int = RATE) -> np.ndarray:
    """Exactly ``n`` samples: short clips zero-padded at the end, long ones cut around their loudest second."""
    x = np.asarray(pcm, np.int16)
    if len(x) == n:
        return x
    if len(x) < n:
        return np.concatenate([x, np.zeros(n - len(x), np.int16)])
    e = np.convolve(x.astype(np.float64) ** 2, np.ones(n // 4), "valid")  # energy in 250 ms windows
    c = int(np.argmax(e)) + n // 8
    start = int(min(max(c - n // 2, 0), len(x) - n))
    return x[start:start + n]


def room_ir(rt60: float, rng: np.random.Generator) -> np.ndarray:
    """A simple room: the direct sound, then exponentially decaying noise (-60 dB after rt60) from 5 ms."""
    n = int(rt60 * RATE)
    t = np.arange(n) / RATE
    tail = rng.normal(0, 1, n) * np.exp(-6.9 * t / rt60) * 0.5
    tail[: int(0.005 * RATE)] = 0
    ir = tail
    ir[0] = 1.0
    return ir / np.sqrt(np.sum(ir ** 2))


def _convolve(x: np.ndarray, ir: np.ndarray) -> np.ndarray:
    n = len(x) + len(ir) - 1
    size = 1 << (n - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(ir, size), size)[: len(x)]
    return y


def _segment(bg: np.ndarray, offset: int, n: int) -> np.ndarray:
    return np.resize(np.roll(bg, -(offset % len(bg))), n).astype(np.float64)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(x ** 2))) if len(x) else 0.0


def render(spec: Spec, pcm: np.ndarray | None, backgrounds: list[np.ndarray], irs: list[np.ndarray],
           pre: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(clip int16[16000], pre-roll int16[pre]): the variant, and the background heard just before it."""
    rng = np.random.default_rng(spec.noise_seed)
    total = pre + RATE
    if spec.bg >= 0 and backgrounds:
        noise = _segment(backgrounds[spec.bg], spec.bg_offset, total)
    else:  # no recording of the room: a microphone's own low noise
        noise = rng.normal(0, 1, total)
    if spec.kind == "silence":
        level = 32768 * 10 ** (spec.snr_db / 20)
        noise = noise * (level / max(_rms(noise), 1e-9))
        out = np.clip(np.round(noise), -32768, 32767).astype(np.int16)
        return out[pre:], out[:pre]
    x = fit_one_second(pcm).astype(np.float64)
    if spec.kind == "crop":
        a, b = spec.crop
        x = np.concatenate([np.zeros(a), x[a:b], np.zeros(RATE - b)])
    if spec.shift:
        x = np.roll(x, spec.shift)
        if spec.shift > 0:
            x[: spec.shift] = 0
        else:
            x[spec.shift:] = 0
    if spec.rt60 > 0:
        ir = irs[spec.ir].astype(np.float64) if spec.ir >= 0 and irs else room_ir(spec.rt60, rng)
        ir = ir / max(np.sqrt(np.sum(ir ** 2)), 1e-9)
        x = _convolve(x, ir)
    x = x * 10 ** (spec.gain_db / 20)
    sig = _rms(x[np.abs(x) > 0.05 * max(np.max(np.abs(x)), 1)]) or _rms(x)
    if spec.snr_db < 99:
        noise = noise * (sig / 10 ** (spec.snr_db / 20) / max(_rms(noise), 1e-9))
    else:
        noise = noise * (8.0 / max(_rms(noise), 1e-9))  # ~ -72 dBFS: a quiet microphone
    mix = noise.copy()
    mix[pre:] += x
    peak = np.max(np.abs(mix))
    if peak > 32767:  # keep the variant unclipped (a clipped keyword teaches distortion)
        mix *= 32767 / peak
    out = np.round(mix).astype(np.int16)
    return out[pre:], out[:pre]

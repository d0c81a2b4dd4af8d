"""Host twin of the audio_classifier device front end: CMSIS-DSP q15 spectrogram and its exact int8 quantization.

Per frame k (samples [hop*k, hop*k + fft) of the clip, a plain sliding window -- not the tutorial's half-moving
memmove):

    window  w[i] = arm_float_to_q15(0.5 * (1 - arm_cos_f32(2*PI*i/fft)))      (float32 arithmetic, no rounding
                                                                             mode: ARM_MATH_ROUNDING off)
    x       = arm_mult_q15(w, frame)                                        ((w*s) >> 15, saturated)
    X       = arm_rfft_q15(S) with arm_rfft_init_q15(&S, fft, 0, 1)
    mag     = arm_cmplx_mag_q15(X, fft/2 + 1)                               (2.14, >= 0)

The host runs these through the ``cmsisdsp`` wheel, which was checked bit for bit against CMSIS-DSP v1.17.1's C
(portable / Cortex-M0+ paths, with and without ARM_MATH_LOOPUNROLL; see tests/test_audio_spectrogram.py).

Quantization into the model's int8 input (training features are mag/64; scale s, zero point z from the model):

    q(m) = clamp(floor(m / (64*s) + 1/2) + z, -128, 127)                   (exact rational arithmetic, s = the
                                                                             float32 scale stored in the model)

is computed, on host and device alike, from a 255-entry uint16 threshold table built once from (s, z):

    T[k] = clamp(ceil(64*s*(k - 127 - z - 1/2)), 0, 32768)      for k = 0..254 (level L = k - 127)
    q(m) = -128 + #{k : T[k] <= m}                                           (T is non-decreasing)

so the device needs no float and no division: a binary search over T (8 comparisons) per bin.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from fwtool.core.errors import BadInput, MissingTool

from .params import CLASSIFIER_MAG_DIVISOR, FrontEnd

Q15_MAX = 32767
TABLE_LEN = 255  # thresholds for the int8 levels -127..127
NEVER = 32768  # a threshold no q15 magnitude reaches


def _dsp():
    try:
        import cmsisdsp  # noqa: PLC0415
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise MissingTool("the audio_classifier front end needs the CMSIS-DSP Python package (cmsisdsp), which is "
                          "not installed", "python3 -m pip install 'cmsisdsp>=1.10,<1.11'") from e
    return cmsisdsp


def hann_q15(fft_size: int = 256) -> np.ndarray:
    """The device's q15 Hann window: arm_cos_f32 then arm_float_to_q15, exactly as the firmware builds it."""
    dsp = _dsp()
    two_pi = np.float32(2.0 * math.pi)  # the float32 PI * 2 of the C code, (float32_t)(2*PI) == 6.2831855f
    w = np.empty(fft_size, dtype=np.float32)
    for i in range(fft_size):
        arg = np.float32(two_pi * np.float32(i)) / np.float32(fft_size)
        w[i] = np.float32(0.5) * (np.float32(1.0) - np.float32(dsp.arm_cos_f32(np.float32(arg))))
    return np.asarray(dsp.arm_float_to_q15(w), dtype=np.int16)


class _Rfft:
    def __init__(self, fft_size: int):
        dsp = _dsp()
        self.dsp = dsp
        self.inst = dsp.arm_rfft_instance_q15()
        status = dsp.arm_rfft_init_q15(self.inst, fft_size, 0, 1)
        if status != 0:
            raise BadInput(f"arm_rfft_init_q15 refused FFT size {fft_size} (status {status})",
                           "use FFT 256 (129 bins)")


def spectrogram_q15(pcm: np.ndarray, fe: FrontEnd) -> np.ndarray:
    """All whole frames of ``pcm`` (int16): int16 [frames_in(len(pcm)), fft/2+1] q15 magnitudes (2.14)."""
    pcm = _as_pcm(pcm)
    n = fe.frames_in(len(pcm))
    out = np.zeros((n, fe.bins), dtype=np.int16)
    if n == 0:
        return out
    w = hann_q15(fe.fft_size)
    r = _Rfft(fe.fft_size)
    dsp = r.dsp
    for k in range(n):
        frame = pcm[k * fe.hop: k * fe.hop + fe.fft_size]
        x = dsp.arm_mult_q15(w, frame)
        spec = dsp.arm_rfft_q15(r.inst, np.asarray(x, dtype=np.int16))
        out[k] = np.asarray(dsp.arm_cmplx_mag_q15(spec), dtype=np.int16)[: fe.bins]
    return out


@dataclass(frozen=True)
class Quant:
    """Quantization of q15 magnitudes into the model's int8 input: q = round(m / divisor / scale) + zero_point."""

    scale: float
    zero_point: int
    divisor: int = CLASSIFIER_MAG_DIVISOR
    table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "table", threshold_table(self.scale, self.zero_point, self.divisor))

    @classmethod
    def of(cls, fe: FrontEnd) -> "Quant":
        return cls(fe.input_scale, fe.input_zero_point)


def _exact_scale(scale: float) -> Fraction:
    """The model's scale is a float32 in the flatbuffer: use that exact binary value."""
    s = Fraction(float(np.float32(scale)))
    if s <= 0:
        raise BadInput(f"input scale {scale} is not positive", "re-export the model with int8 quantization")
    return s


def threshold_table(scale: float, zero_point: int, divisor: int = CLASSIFIER_MAG_DIVISOR) -> np.ndarray:
    """uint16 [255]: T[k] = smallest q15 magnitude whose int8 value is >= k - 127 (32768 = never)."""
    s = _exact_scale(scale)
    z = int(zero_point)
    if not -128 <= z <= 127:
        raise BadInput(f"int8 zero point {z} is outside -128..127", "re-export the model with int8 quantization")
    t = np.empty(TABLE_LEN, dtype=np.uint16)
    for k in range(TABLE_LEN):
        level = k - 127
        bound = divisor * s * (Fraction(level - z) - Fraction(1, 2))  # m >= bound  <=>  q(m) >= level
        t[k] = min(max(math.ceil(bound), 0), NEVER)
    return t


def quantize(mag_q15: np.ndarray, quant: Quant) -> np.ndarray:
    """int8 model input from q15 magnitudes, by the threshold table (what the device computes)."""
    m = np.asarray(mag_q15)
    if m.dtype != np.int16:
        raise BadInput(f"quantize takes int16 q15 magnitudes, got {m.dtype}", "pass spectrogram_q15(...) output")
    if m.size and m.min() < 0:
        raise BadInput("q15 magnitudes are never negative; got a negative value", "pass spectrogram_q15(...) output")
    return (np.searchsorted(quant.table, m.astype(np.int32), side="right") - 128).astype(np.int8)


def quantize_reference(mag_q15: np.ndarray, scale: float, zero_point: int,
                       divisor: int = CLASSIFIER_MAG_DIVISOR) -> np.ndarray:
    """Float64 statement of the same formula: clamp(floor(m/divisor/scale + 0.5) + z) (for tests)."""
    m = np.asarray(mag_q15, dtype=np.float64)
    s = float(np.float32(scale))
    q = np.floor(m / (divisor * s) + 0.5) + int(zero_point)
    return np.clip(q, -128, 127).astype(np.int8)


def features(pcm_int16: np.ndarray, fe: FrontEnd, quant: Quant | None = None) -> np.ndarray:
    """One model input: int8 [fe.frames, fe.bins] from the first fe.clip_samples samples of the clip."""
    pcm = _as_pcm(pcm_int16)
    if len(pcm) < fe.clip_samples:
        raise BadInput(f"the clip has {len(pcm)} samples ({len(pcm) / fe.sample_rate:.3f} s); one "
                       f"{fe.frames}x{fe.bins} spectrogram needs {fe.clip_samples} "
                       f"({fe.clip_samples / fe.sample_rate:.3f} s)",
                       "pad the clip with silence: sox in.wav out.wav pad 0 1 trim 0 1")
    mags = spectrogram_q15(pcm[: fe.clip_samples], fe)
    return quantize(mags, quant or Quant.of(fe))


def stream_features(pcm_int16: np.ndarray, fe: FrontEnd, quant: Quant | None = None) -> np.ndarray:
    """Every frame the device computes on a stream that starts with these samples: int8 [n, bins].

    The device keeps fft - hop samples of history, zeroed at start, so its frame k covers stream samples
    [hop*k - (fft - hop), hop*(k + 1)); the host prefixes the same zeros.
    """
    pcm = _as_pcm(pcm_int16)
    pre = np.concatenate([np.zeros(fe.window - fe.hop, np.int16), pcm])
    return quantize(spectrogram_q15(pre, fe), quant or Quant.of(fe))


def _as_pcm(pcm) -> np.ndarray:
    a = np.asarray(pcm)
    if a.ndim != 1 or a.dtype != np.int16:
        raise BadInput(f"audio samples must be a 1-D int16 array (16-bit PCM), got {a.dtype} {a.shape}",
                       "read clips with fwtool.audio.wav.read_wav")
    return np.ascontiguousarray(a)


def device_header(fe: FrontEnd, quant: Quant | None = None) -> str:
    """C header with the constants the device front end (audio_frontend.h) is compiled with."""
    q = quant or Quant.of(fe)
    rows = [", ".join(str(int(v)) for v in q.table[i: i + 15]) for i in range(0, TABLE_LEN, 15)]
    body = ",\n    ".join(rows)
    return (f"// Generated by fwtool: audio_classifier front end for an int8 input "
            f"(scale {float(np.float32(q.scale))!r}, zero point {q.zero_point}).\n"
            "// q(m) = clamp(floor(m / (64*scale) + 1/2) + zero_point, -128, 127) = -128 + #{k : T[k] <= m}\n"
            "#pragma once\n#include <stdint.h>\n"
            f"#define FWT_AUDIO_FFT_SIZE {fe.fft_size}\n#define FWT_AUDIO_HOP {fe.hop}\n"
            f"#define FWT_AUDIO_FRAMES {fe.frames}\n#define FWT_AUDIO_BINS {fe.bins}\n"
            f"#define FWT_AUDIO_COLUMNS_PER_INFERENCE {fe.columns_per_inference}\n"
            f"#define FWT_AUDIO_SAMPLES_PER_INFERENCE {fe.samples_per_inference}\n"
            f"static const uint16_t kFwtQuantThresholds[{TABLE_LEN}] = {{\n    {body}\n}};\n")

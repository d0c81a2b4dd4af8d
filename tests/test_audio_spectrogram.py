"""fwtool.audio.spectrogram / params (audio_classifier): CMSIS-DSP q15 spectrogram and exact int8 quantization.

Expected values marked "C" were produced by CMSIS-DSP v1.17.1's C sources (commit 4b4fa8ff218c) built twice:
with host gcc (-D__GNUC_PYTHON__, with and without ARM_MATH_LOOPUNROLL) and with arm-none-eabi-gcc
-mcpu=cortex-m0plus run under qemu; both gave these bytes, and so does the cmsisdsp wheel.
"""
import hashlib

import numpy as np
import pytest

from fwtool.audio import features, params
from fwtool.audio.params import ModelInput
from fwtool.core.errors import BadInput

cmsisdsp = pytest.importorskip("cmsisdsp", reason="cmsisdsp (CMSIS-DSP Python wrapper) not installed: "
                                                  "python3 -m pip install cmsisdsp")
from fwtool.audio import spectrogram as sp  # noqa: E402

FIRE_ALARM_IN = ModelInput((1, 124, 129, 1), "int8", 0.44338235, -128)
FE = params.classifier_for(FIRE_ALARM_IN)

# C: arm_float_to_q15(0.5f * (1.0f - arm_cos_f32(2.0f * PI * i / 256.0f))), i = 0..255 (first half; symmetric)
C_WINDOW_HALF = [
    0, 4, 19, 44, 78, 123, 177, 241, 314, 398, 491, 593, 705, 826, 957, 1097, 1247, 1405, 1573, 1749, 1934, 2128,
    2330, 2541, 2761, 2988, 3224, 3467, 3718, 3977, 4244, 4517, 4798, 5086, 5381, 5682, 5990, 6304, 6624, 6949,
    7281, 7618, 7960, 8308, 8660, 9017, 9378, 9744, 10114, 10487, 10864, 11244, 11627, 12014, 12403, 12794, 13187,
    13582, 13979, 14378, 14778, 15178, 15580, 15981, 16384, 16786, 17187, 17589, 17989, 18389, 18788, 19185, 19580,
    19973, 20364, 20753, 21140, 21523, 21903, 22280, 22653, 23023, 23389, 23750, 24107, 24459, 24807, 25149, 25486,
    25818, 26143, 26463, 26777, 27085, 27386, 27681, 27969, 28250, 28523, 28790, 29049, 29300, 29543, 29779, 30006,
    30226, 30437, 30639, 30833, 31018, 31194, 31362, 31520, 31670, 31810, 31941, 32062, 32174, 32276, 32369, 32453,
    32526, 32590, 32644, 32689, 32723, 32748, 32763, 32767,
]


def lcg_noise(n, seed=12345):
    out, x = np.empty(n, np.int16), seed
    for i in range(n):
        x = (1103515245 * x + 12345) & 0x7FFFFFFF
        out[i] = ((x >> 15) & 0xFFFF) - 32768
    return out


def square37(n):
    i = np.arange(n)
    return np.where((i % 37) < 18, 20000, -20000).astype(np.int16)


def saw977(n):
    return (((np.arange(n, dtype=np.int64) * 977) % 65536) - 32768).astype(np.int16)


def nyquist_full_scale(n):
    return np.where(np.arange(n) % 2 == 0, 32767, -32768).astype(np.int16)


# C: sha256 of the 124x129 int16 little-endian spectrogram of 16000 samples, plus row 60's first 8 bins
C_SPECTROGRAMS = {
    "lcg_noise": (lcg_noise, "f5abb88e049d44ab000f43d582be9ceecffdd0c4dd27ab58ebc089fb7bac53ea",
                  [487, 235, 451, 456, 447, 141, 188, 192]),
    "square37": (square37, "9e4fa538e8ce84731d14fee160b27275c7b7e9fda0cefecf441fc902b9fe9f43",
                 [141, 65, 3, 5, 11, 49, 1785, 3170]),
    "saw977": (saw977, "14b91abb6b6aae494a9b2700fd16e983c07df9e395c61a8e5fe3aa7879229f5a",
               [65, 61, 102, 1657, 2549, 980, 177, 985]),
    "nyquist_full_scale": (nyquist_full_scale, "cb882af8d220da58edbf21f24b9a59733208cd339e125020884a7ba0f5034b64",
                           [2, 2, 0, 1, 0, 1, 0, 1]),
}


def fnv1a(data: bytes, h: int = 2166136261) -> int:
    for b in data:
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return h


# ---------------------------------------------------------------- window, spectrum: against the C results


def test_window_is_the_c_window():
    w = sp.hann_q15(256)
    assert w.dtype == np.int16
    assert w[:129].tolist() == C_WINDOW_HALF
    assert w[129:].tolist() == C_WINDOW_HALF[1:128][::-1]


def test_window_vs_a_libm_hann():
    """arm_cos_f32 is a table cosine. For N = 256 its q15 Hann happens to equal a libm one (checked here, so a
    change would show); for N = 1024 they differ, so the host must use arm_cos_f32 like the device."""
    def libm(n):
        i = np.arange(n)
        return np.asarray(cmsisdsp.arm_float_to_q15((0.5 * (1 - np.cos(2 * np.pi * i / n))).astype(np.float32)),
                          np.int16)
    assert np.array_equal(libm(256), sp.hann_q15(256))
    assert not np.array_equal(libm(1024), sp.hann_q15(1024))


@pytest.mark.parametrize("name", sorted(C_SPECTROGRAMS))
def test_spectrogram_matches_cmsis_dsp_c(name):
    gen, sha, row60 = C_SPECTROGRAMS[name]
    s = sp.spectrogram_q15(gen(16000), FE)
    assert s.shape == (124, 129) and s.dtype == np.int16
    assert s[60, :8].tolist() == row60
    assert hashlib.sha256(s.astype("<i2").tobytes()).hexdigest() == sha


def test_frame_count_and_sliding_window():
    assert FE.frames_in(16000) == 124 and FE.clip_samples == 16000
    assert FE.frames_in(255) == 0 and FE.frames_in(256) == 1 and FE.frames_in(383) == 1 and FE.frames_in(384) == 2
    pcm = np.zeros(4000, np.int16)
    pcm[1000] = 20000  # frames k with 128k <= 1000 < 128k + 256: k = 6, 7
    s = sp.spectrogram_q15(pcm, FE)
    assert s.shape == (1 + (4000 - 256) // 128, 129)
    assert [k for k in range(len(s)) if s[k].any()] == [6, 7]


def test_each_frame_is_the_plain_window_at_128k():
    """Frame k == the spectrum of samples [128k, 128k+256) alone (not the tutorial's half-moved buffer)."""
    pcm = lcg_noise(3000)
    s = sp.spectrogram_q15(pcm, FE)
    for k in (0, 1, 5, len(s) - 1):
        alone = sp.spectrogram_q15(pcm[128 * k: 128 * k + 256].copy(), FE)
        assert np.array_equal(alone[0], s[k])


def test_mult_q15_is_the_specified_integer_product():
    """arm_mult_q15 (no DSP extension): sat16((a * b) >> 15) with an arithmetic shift."""
    rng = np.random.default_rng(3)
    a = rng.integers(-32768, 32768, 4096).astype(np.int16)
    b = rng.integers(-32768, 32768, 4096).astype(np.int16)
    a[:4], b[:4] = [-32768, -32768, 32767, -1], [-32768, 32767, 32767, 1]
    ref = np.clip((a.astype(np.int32) * b.astype(np.int32)) >> 15, -32768, 32767).astype(np.int16)
    assert np.array_equal(np.asarray(cmsisdsp.arm_mult_q15(a, b)), ref)


def test_magnitude_is_half_the_euclidean_norm_truncated():
    """arm_cmplx_mag_q15 is 2.14: ~ sqrt(re^2 + im^2) / 2, via a Newton sqrt (within 1 LSB here)."""
    inst = cmsisdsp.arm_rfft_instance_q15()
    cmsisdsp.arm_rfft_init_q15(inst, 256, 0, 1)
    for pcm in (lcg_noise(256), square37(256), nyquist_full_scale(256)):
        spec = np.asarray(cmsisdsp.arm_rfft_q15(inst, cmsisdsp.arm_mult_q15(sp.hann_q15(), pcm)), np.int64)
        re, im = spec[0:258:2], spec[1:258:2]
        mag = np.asarray(cmsisdsp.arm_cmplx_mag_q15(spec), np.int64)[:129]
        d = mag - np.sqrt(re * re + im * im) / 2  # (re^2 + im^2) >> 1 and sqrt_q31 >> 16 truncate
        assert d.max() <= 0.01 and d.min() >= -1.5


def test_spectrum_tracks_a_tone():
    t = np.arange(16000) / 16000
    pcm = np.round(12000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)  # 1 kHz = bin 16 at 62.5 Hz/bin
    s = sp.spectrogram_q15(pcm, FE)
    assert set(np.argmax(s, axis=1).tolist()) == {16}


def test_chirp_peak_moves_up():
    t = np.arange(16000) / 16000
    pcm = np.round(16000 * np.sin(2 * np.pi * (100 * t + 0.5 * 7000 * t * t))).astype(np.int16)
    peaks = np.argmax(sp.spectrogram_q15(pcm, FE), axis=1)
    assert peaks[5] < peaks[60] < peaks[118]
    assert np.all(np.diff(peaks) >= -1)


def test_clipping_and_silence():
    silent = sp.spectrogram_q15(np.zeros(16000, np.int16), FE)
    assert not silent.any()
    loud = np.clip(np.round(3 * 32767 * np.sin(np.arange(16000) * 0.3)), -32768, 32767).astype(np.int16)
    s = sp.spectrogram_q15(loud, FE)
    assert s.min() >= 0 and s.max() <= 32767 and s.max() > 4000


# ---------------------------------------------------------------- quantization


ALL_MAGS = np.arange(32768, dtype=np.int16)


@pytest.mark.parametrize("scale,zp", [(0.44338235, -128), (0.443382, -128), (0.1, -5), (1.0, 0), (3.7, 100),
                                      (0.01, -128), (123.0, -128), (0.5, 127), (0.5, -128), (1 / 32, 0),
                                      (2.0 ** -7, -128), (0.0157, 3)])
def test_table_equals_the_exact_formula_for_every_q15_magnitude(scale, zp):
    q = sp.Quant(scale, zp)
    assert q.table.dtype == np.uint16 and q.table.shape == (255,)
    assert np.all(np.diff(q.table.astype(np.int32)) >= 0)
    assert np.array_equal(sp.quantize(ALL_MAGS, q), sp.quantize_reference(ALL_MAGS, scale, zp))


def test_halves_round_up():
    # scale 1/32: x = m / 2, so odd m sit exactly on .5 and round up (TFLite's round-half-away-from-zero, m >= 0)
    q = sp.Quant(1 / 32, -128)
    assert sp.quantize(np.array([0, 1, 2, 3, 4], np.int16), q).tolist() == [-128, -127, -127, -126, -126]


def test_fire_alarm_levels_and_saturation():
    q = sp.Quant.of(FE)
    # 64 * 0.44338235 = 28.3765: level L >= -127 once m >= 28.3765 * 0.5 = 14.19 -> 15
    assert q.table[0] == 15
    # level -126 from 28.3765 * 1.5 = 42.56 -> 43; level 127 from 28.3765 * 254.5 = 7221.8 -> 7222
    out = sp.quantize(np.array([0, 14, 15, 42, 43, 7221, 7222, 32767], np.int16), q)
    assert out.tolist() == [-128, -128, -127, -127, -126, 126, 127, 127]


def test_quantize_refuses_floats_and_negatives():
    q = sp.Quant(0.5, 0)
    with pytest.raises(BadInput):
        sp.quantize(np.zeros(3, np.float32), q)
    with pytest.raises(BadInput):
        sp.quantize(np.array([-1], np.int16), q)


def test_features_shape_silence_and_input_checks():
    f = sp.features(np.zeros(16000, np.int16), FE)
    assert f.shape == (124, 129) and f.dtype == np.int8 and np.all(f == -128)
    assert np.array_equal(sp.features(lcg_noise(16100), FE), sp.features(lcg_noise(16000), FE))
    with pytest.raises(BadInput) as ei:
        sp.features(np.zeros(15000, np.int16), FE)
    assert "16000" in ei.value.cause
    with pytest.raises(BadInput):
        sp.features(np.zeros(16000, np.float32), FE)


def test_features_are_quantized_spectrogram():
    pcm = saw977(16000)
    assert np.array_equal(sp.features(pcm, FE),
                          sp.quantize_reference(sp.spectrogram_q15(pcm, FE), FE.input_scale, FE.input_zero_point))


# ---------------------------------------------------------------- device stream semantics


def _device_simulation(pcm, fe, q):
    """Independent statement of the device loop: zeroed history, one row per hop, input shifted row by row."""
    hist = np.zeros(fe.fft_size, np.int16)
    fill = fe.fft_size - fe.hop
    inp = np.full((fe.frames, fe.bins), sp.quantize(np.zeros(1, np.int16), q)[0], np.int8)
    outs = []
    for blk in range(len(pcm) // fe.samples_per_inference):
        for s in pcm[blk * fe.samples_per_inference: (blk + 1) * fe.samples_per_inference]:
            hist[fill] = s
            fill += 1
            if fill == fe.fft_size:
                row = sp.quantize(sp.spectrogram_q15(hist.copy(), fe)[0], q)
                inp = np.concatenate([inp[1:], row[None]])
                hist[: fe.fft_size - fe.hop] = hist[fe.hop:].copy()
                fill = fe.fft_size - fe.hop
        outs.append(inp.copy())
    return np.stack(outs)


def test_stream_windows_match_the_device_loop():
    pcm = np.concatenate([saw977(9000), lcg_noise(9000)])
    q = sp.Quant.of(FE)
    dev = _device_simulation(pcm, FE, q)
    wins = features.device_windows(sp.stream_features(pcm, FE, q), FE)
    assert len(dev) == 35 and len(wins) == 35 - 30
    assert np.array_equal(dev[-len(wins):], wins)


def test_device_draft_on_cortex_m0plus_hash():
    """the device front end (templates/common/fwt_audio.h.j2's arithmetic, first drafted as a standalone header) on arm-none-eabi -mcpu=cortex-m0plus under qemu: 40 blocks of
    512 LCG samples (>> blk % 5), FNV-1a over each block's 124x129 input tensor = 0x0249fb6a."""
    noise = lcg_noise(40 * 512)
    pcm = np.concatenate([noise[b * 512:(b + 1) * 512] >> (b % 5) for b in range(40)]).astype(np.int16)
    fe = params.classifier_for(ModelInput((1, 124, 129, 1), "int8", 0.443382, -128))
    q = sp.Quant.of(fe)
    frames = sp.stream_features(pcm, fe, q)
    allf = np.concatenate([np.full((124, 129), -128, np.int8), frames])
    h = 2166136261
    for i in range(40):
        h = fnv1a(allf[4 * (i + 1): 4 * (i + 1) + 124].tobytes(), h)
    assert h == 0x0249FB6A


def test_device_header_carries_the_table():
    q = sp.Quant.of(FE)
    text = sp.device_header(FE, q)
    body = text.split("kFwtQuantThresholds[255] = {", 1)[1].split("}", 1)[0]
    assert [int(v) for v in body.replace("\n", " ").split(",")] == q.table.tolist()
    assert "#define FWT_AUDIO_FRAMES 124" in text and "#define FWT_AUDIO_SAMPLES_PER_INFERENCE 512" in text


# ---------------------------------------------------------------- params


def test_params_from_fire_alarm_input():
    assert (FE.fft_size, FE.hop, FE.frames, FE.bins, FE.columns_per_inference) == (256, 128, 124, 129, 4)
    assert FE.samples_per_inference == 512 and FE.inference_period_ms == 32.0
    assert (FE.input_scale, FE.input_zero_point, FE.threshold) == (0.44338235, -128, 0.5)
    assert params.classifier_for(ModelInput((1, 124, 129), "int8", 0.5, 0)).frames == 124
    assert params.classifier_for(ModelInput((1, 61, 257, 1), "int8", 0.5, 0)).fft_size == 512


@pytest.mark.parametrize("shape,dtype,scale,words", [
    ((1, 100, 100, 1), "int8", 0.5, ["1x100x100x1", "100 bins", "fft/2+1", "129 for FFT 256"]),
    ((1, 124, 129, 3), "int8", 0.5, ["1x124x129x3", "1 x frames x bins x 1"]),
    ((1, 1960), "int8", 0.5, ["1x1960"]),
    ((2, 124, 129, 1), "int8", 0.5, ["2x124x129x1"]),
    ((1, 124, 129, 1), "float32", 0.0, ["int8", "float32"]),
    ((1, 124, 129, 1), "int8", 0.0, ["scale"]),
    ((1, 5000, 129, 1), "int8", 0.5, ["5000 frames"]),
])
def test_params_refusals_give_the_numbers(shape, dtype, scale, words):
    with pytest.raises(BadInput) as ei:
        params.for_model("audio_classifier", ModelInput(shape, dtype, scale, -128))
    for w in words:
        assert w in ei.value.cause, ei.value.cause
    assert ei.value.fix


def test_unknown_app():
    with pytest.raises(BadInput):
        params.for_model("vision", FIRE_ALARM_IN)


# ---------------------------------------------------------------- compute()


def test_compute_stacks_clips_and_refuses_long_ones(tmp_path):
    from fwtool.audio import wav

    a = wav.write_wav(tmp_path / "a.wav", saw977(16000))
    b = wav.write_wav(tmp_path / "b.wav", lcg_noise(16050))
    x = features.compute("audio_classifier", [a, b], FIRE_ALARM_IN)
    assert x.shape == (2, 124, 129) and x.dtype == np.int8
    assert np.array_equal(x[0], sp.features(saw977(16000), FE))
    assert x.reshape((-1,) + FIRE_ALARM_IN.shape[1:]).shape == (2, 124, 129, 1)
    long = wav.write_wav(tmp_path / "long.wav", lcg_noise(20000))
    with pytest.raises(BadInput) as ei:
        features.compute("audio_classifier", [a, long], FIRE_ALARM_IN)
    assert "long.wav" in ei.value.cause and "--all-windows" in ei.value.fix
    w = features.compute("audio_classifier", [long], FIRE_ALARM_IN, all_windows=True)
    assert w.shape == ((20000 // 512) - 30, 124, 129)
    short = wav.write_wav(tmp_path / "short.wav", lcg_noise(15000))
    with pytest.raises(BadInput) as ei:
        features.compute("audio_classifier", [short], FIRE_ALARM_IN)
    assert "short.wav" in ei.value.cause
    with pytest.raises(BadInput):
        features.compute("audio_classifier", [a])  # no model: no scale to quantize with

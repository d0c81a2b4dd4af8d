"""fwtool.audio.kws / params (kws): micro_speech features from TFLM's audio_preprocessor_int8.tflite.

The model tests need tflite-micro's micro_speech example (models/audio_preprocessor_int8.tflite and
models/micro_speech_quantized.tflite): the pinned vendor tree (``fwtool vendor sync tflite-micro``) or a folder named
by FWTOOL_MICRO_SPEECH_DIR; they skip, saying so, without it. With the example's testdata/ folder there too (the
vendor tree keeps it), the example's own clips and expected features are checked as well.
"""
import os
from pathlib import Path

import numpy as np
import pytest

from fwtool.audio import features, params, wav
from fwtool.audio.params import ModelInput
from fwtool.core.errors import BadInput, MissingTool

MICRO_SPEECH_IN = ModelInput((1, 1960), "int8", 0.10171568, -128)  # micro_speech_quantized.tflite

# micro_speech_test.cc (NoFeatureTest / YesFeatureTest): first feature row of no_30ms.wav / yes_30ms.wav
EXPECTED_30MS = {
    "no": [126, 103, 124, 102, 124, 102, 123, 100, 118, 97, 118, 100, 118, 98, 121, 100, 121, 98, 117, 91, 96, 74,
           54, 87, 100, 87, 109, 92, 91, 80, 64, 55, 83, 74, 74, 78, 114, 95, 101, 81],
    "yes": [124, 105, 126, 103, 125, 101, 123, 100, 116, 98, 115, 97, 113, 90, 91, 82, 104, 96, 117, 97, 121, 103,
            126, 101, 125, 104, 126, 104, 125, 101, 116, 90, 81, 74, 80, 71, 83, 76, 82, 71],
}


def _model_dir():
    from fwtool.audio import kws

    try:
        return kws.find_model(kws.PREPROCESSOR).parent
    except MissingTool as e:
        return e.cause


@pytest.fixture(scope="module")
def kws():
    pytest.importorskip("tflite_micro", reason="tflite-micro Python package not installed")
    from fwtool.audio import kws as mod

    found = _model_dir()
    if not isinstance(found, Path):
        print(f"\nskipping kws model tests: {found}")
        pytest.skip(f"{found} (run 'fwtool vendor sync tflite-micro', or set FWTOOL_MICRO_SPEECH_DIR to "
                    "tflite-micro's tensorflow/lite/micro/examples/micro_speech)")
    return mod


@pytest.fixture(scope="module")
def pp(kws):
    return kws.Preprocessor()


def tone(freq, seconds=1.0, amp=8000, phase=0.0):
    t = np.arange(int(16000 * seconds)) / 16000
    return np.round(amp * np.sin(2 * np.pi * freq * t + phase)).astype(np.int16)


def example_clip(name):
    found = _model_dir()
    bases = [Path(os.environ.get("FWTOOL_MICRO_SPEECH_DIR") or "/nonexistent")]
    if isinstance(found, Path):
        bases.append(found.parent)  # <example>/models/x.tflite -> <example>
    p = next((b / "testdata" / name for b in bases if (b / "testdata" / name).is_file()), None)
    if p is None:
        pytest.skip(f"micro_speech example clip {name} not found (testdata/ of the example folder)")
    return wav.read_wav(p)


# ---------------------------------------------------------------- params (no model needed)


@pytest.mark.parametrize("shape", [(1, 1960), (1, 49, 40), (1, 49, 40, 1)])
def test_params_from_micro_speech_shapes(shape):
    fe = params.for_model("kws", ModelInput(shape, "int8", 0.10171568, -128))
    assert (fe.window, fe.hop, fe.frames, fe.bins, fe.fft_size) == (480, 320, 49, 40, 512)
    assert fe.clip_samples == 15840 and fe.frames_in(16000) == 49
    assert fe.columns_per_inference == 5 and fe.inference_period_ms == 100.0
    assert (fe.threshold, fe.smoothing) == (0.8, 10)


def test_params_other_frame_counts():
    assert params.for_model("kws", ModelInput((1, 99 * 40), "int8", 0.1016, -128)).frames == 99


@pytest.mark.parametrize("mi,words", [
    (ModelInput((1, 1961), "int8", 0.1017, -128), ["1x1961", "40 features"]),
    (ModelInput((1, 49, 41, 1), "int8", 0.1017, -128), ["1x49x41x1"]),
    (ModelInput((1, 124, 129, 1), "int8", 0.44, -128), ["1x124x129x1"]),
    (ModelInput((1, 1960), "float32", 0.0, 0), ["int8", "float32"]),
    (ModelInput((1, 1960), "int8", 0.5, 0), ["scale 0.5", "zero point 0", "0.1016"]),
])
def test_params_refusals(mi, words):
    with pytest.raises(BadInput) as ei:
        params.for_model("kws", mi)
    for w in words:
        assert w in ei.value.cause, ei.value.cause
    assert ei.value.fix


def test_missing_model_is_a_missing_tool(tmp_path, monkeypatch):
    from fwtool.audio import kws as mod

    monkeypatch.setenv("FWTOOL_MICRO_SPEECH_DIR", str(tmp_path))
    with pytest.raises(MissingTool) as ei:
        mod.find_model()
    assert "audio_preprocessor_int8.tflite" in ei.value.cause and "FWTOOL_MICRO_SPEECH_DIR" in ei.value.fix
    assert "fwtool vendor sync tflite-micro" in ei.value.fix
    monkeypatch.delenv("FWTOOL_MICRO_SPEECH_DIR")
    monkeypatch.setenv("FWTOOL_TFLITE_MICRO_PATH", str(tmp_path / "absent"))  # the vendor tree: missing
    with pytest.raises(MissingTool) as ei:
        mod.find_model()
    assert "fwtool vendor sync tflite-micro" in ei.value.fix


def test_model_from_the_vendor_tree(tmp_path, monkeypatch):
    from fwtool.audio import kws as mod

    models = tmp_path / mod.EXAMPLE_PATH / "models"
    models.mkdir(parents=True)
    (models / mod.PREPROCESSOR).write_bytes(b"x")
    monkeypatch.delenv("FWTOOL_MICRO_SPEECH_DIR", raising=False)
    monkeypatch.setenv("FWTOOL_TFLITE_MICRO_PATH", str(tmp_path))
    assert mod.find_model() == models / mod.PREPROCESSOR
    assert mod.find_model(model_dir=models / mod.PREPROCESSOR) == models / mod.PREPROCESSOR


# ---------------------------------------------------------------- the preprocessor (model needed)


def test_preprocessor_io(pp):
    out = pp.frame(np.zeros(480, np.int16))
    assert out.shape == (40,) and out.dtype == np.int8


def test_preprocessor_is_stateful_and_reset_restores(pp):
    x = tone(700, 0.03)
    pp.reset()
    first = pp.frame(x)
    second = pp.frame(x)
    pp.reset()
    again = pp.frame(x)
    assert not np.array_equal(first, second)  # noise estimate / PCAN carried over
    assert np.array_equal(first, again)


def test_features_shape_and_per_clip_reset(kws, pp):
    fe = params.kws_for(MICRO_SPEECH_IN)
    a = kws.features(tone(500), fe, pp)
    assert a.shape == (49, 40) and a.dtype == np.int8
    kws.features(tone(2500), fe, pp)  # another clip in between must not leak state
    assert np.array_equal(kws.features(tone(500), fe, pp), a)
    # frame k covers samples [320k, 320k + 480): feeding the frames by hand with one reset gives the same
    pcm = tone(500)
    pp.reset()
    by_hand = np.stack([pp.frame(pcm[320 * k: 320 * k + 480]) for k in range(49)])
    assert np.array_equal(by_hand, a)


def test_features_separate_tones_silence_and_noise(kws, pp):
    fe = params.kws()
    low, high = kws.features(tone(300), fe, pp), kws.features(tone(3000), fe, pp)
    silence = kws.features(np.zeros(16000, np.int16), fe, pp)
    noise = kws.features(np.random.default_rng(0).normal(0, 3000, 16000).round().astype(np.int16), fe, pp)
    assert np.argmax(low[-1].astype(int)) < np.argmax(high[-1].astype(int))
    assert len({low.tobytes(), high.tobytes(), silence.tobytes(), noise.tobytes()}) == 4
    clipped = np.clip(tone(1000, amp=100000), -32768, 32767).astype(np.int16)
    assert kws.features(clipped, fe, pp).shape == (49, 40)


def test_short_clip_refused(kws, pp):
    with pytest.raises(BadInput) as ei:
        kws.features(np.zeros(15000, np.int16), params.kws(), pp)
    assert "15840" in ei.value.cause


def test_stream_features_and_windows(kws, pp):
    fe = params.kws()
    pcm = np.concatenate([tone(400, 1.0), tone(1200, 1.0)])
    frames = kws.stream_features(pcm, fe, pp)
    assert frames.shape == (32000 // 320, 40)  # one frame per 320 samples (160 zeroed history samples first)
    pp.reset()
    head = np.concatenate([np.zeros(160, np.int16), pcm[:1120]])  # 1280 samples: 3 frames
    assert np.array_equal(frames[:3], pp.run(head))
    wins = features.device_windows(frames, fe)
    assert wins.shape == ((100 - 49) // 5 + 1, 49, 40)
    assert np.array_equal(wins[-1], frames[-49:])


def test_compute_kws(kws, pp, tmp_path):
    a = wav.write_wav(tmp_path / "a.wav", tone(440))
    b = wav.write_wav(tmp_path / "b.wav", tone(880))
    x = features.compute("kws", [a, b], MICRO_SPEECH_IN, preprocessor=pp)
    assert x.shape == (2, 49, 40) and x.dtype == np.int8
    assert np.array_equal(x[1], kws.features(tone(880), params.kws(), pp))
    assert features.compute("kws", [a], None, preprocessor=pp).shape == (1, 49, 40)


# ---------------------------------------------------------------- the example's own data (if present)


@pytest.mark.parametrize("word", ["no", "yes"])
def test_example_30ms_features_match_micro_speech_test(kws, pp, word):
    pcm = example_clip(f"{word}_30ms.wav")
    pp.reset()
    assert pp.run(pcm).tolist() == [EXPECTED_30MS[word]]


@pytest.mark.parametrize("word", ["yes", "no"])
def test_example_clips_classify(kws, pp, word):
    pcm = example_clip(f"{word}_1000ms.wav")
    fe = params.kws_for(MICRO_SPEECH_IN)
    clf = kws.Classifier()
    scores = clf.scores(kws.features(pcm, fe, pp))
    assert kws.LABELS[int(np.argmax(scores))] == word
    assert scores.max() > 0.9

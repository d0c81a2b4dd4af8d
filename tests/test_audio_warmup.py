"""The kws front end's warm-up (fwtool features --warm-up, kws.warm_features) and the detection file (detection.json).

The warm-up must give exactly the rows the kws firmware computes for a clip after it heard the background from
boot: the host twin of the device (kws.stream_features + features.device_windows on pre-roll + clip) is the
reference. Needs the tflite-micro Python runtime and micro_speech's preprocessor; skips otherwise.
"""
import json
import subprocess
import sys

import numpy as np
import pytest

from fwtool.audio import detection, features, params, wav
from fwtool.core.errors import BadInput, MissingTool


@pytest.fixture(scope="module")
def pp():
    pytest.importorskip("tflite_micro", reason="tflite-micro Python package not installed")
    from fwtool.audio import kws

    try:
        kws.find_model(kws.PREPROCESSOR)
    except MissingTool as e:
        pytest.skip(f"{e.cause} (fwtool vendor sync tflite-micro)")
    return kws.Preprocessor()


def noise(seconds, amp, seed):
    return np.clip(np.random.default_rng(seed).normal(0, amp, int(16000 * seconds)), -32768, 32767).astype(np.int16)


def chirp_in_noise(seed=1):
    t = np.arange(16000) / 16000
    sig = 6000 * np.sin(2 * np.pi * (500 * t + 900 * t * t)) * (np.abs(t - 0.5) < 0.25)
    return np.clip(sig + noise(1, 1500, seed), -32768, 32767).astype(np.int16)


def test_warm_up_frames_complete_a_device_inference():
    from fwtool.audio import kws

    fe = params.kws()
    w = kws.warm_up_frames(fe)
    assert w == 51 and (w + fe.frames) % fe.columns_per_inference == 0
    assert kws.warm_up_frames(fe, 0) == 1  # 0 s still aligns the clip's last frame with an inference
    assert len(kws.pre_roll(noise(0.1, 100, 0), fe)) == 51 * 320 - 160  # a short background repeats


def test_warm_features_equal_the_device_window(pp):
    from fwtool.audio import kws

    fe = params.kws()
    bg, clip = noise(3, 1500, 7), chirp_in_noise()
    warm = kws.warm_features(clip, bg, fe, pp, offset=4000)
    stream = kws.stream_features(np.concatenate([kws.pre_roll(bg, fe, offset=4000), clip]), fe, pp)
    wins = features.device_windows(stream, fe)  # what the firmware feeds its classifier, inference by inference
    assert np.array_equal(wins[-1], warm)  # the clip's window is exactly the last device inference
    cold = kws.features(clip, fe, pp)
    assert not np.array_equal(cold, warm)  # the skew the warm-up removes: the adapted front end differs
    assert np.mean(np.abs(cold.astype(int) - warm.astype(int))) > 1.0
    # The warm-up is deterministic and does not leak state into the next cold clip.
    assert np.array_equal(kws.warm_features(clip, bg, fe, pp, offset=4000), warm)
    assert np.array_equal(kws.features(clip, fe, pp), cold)


def test_compute_pcm_warm_up_and_refusals(pp):
    fe = params.kws()
    bg, clip = noise(2, 1500, 3), chirp_in_noise(2)
    x = features.compute_pcm("kws", [clip, clip], fe, preprocessor=pp, warm_up=bg)
    assert x.shape == (2, 49, 40) and np.array_equal(x[0], x[1])
    with pytest.raises(BadInput, match="exclude each other"):
        features.compute_pcm("kws", [clip], fe, all_windows=True, preprocessor=pp, warm_up=bg)
    with pytest.raises(BadInput, match="keeps no state"):
        features.check_warm_up("audio_classifier", False)


def test_features_cli_warm_up(pp, tmp_path):
    bg, clip = tmp_path / "bg.wav", tmp_path / "clip.wav"
    wav.write_wav(bg, noise(2, 1500, 5))
    wav.write_wav(clip, chirp_in_noise(3))
    cmd = [sys.executable, "-m", "fwtool", "features", "--app", "kws", str(clip), "-o"]
    cold = subprocess.run(cmd + [str(tmp_path / "cold.npy"), "--json"], capture_output=True, text=True)
    warm = subprocess.run(cmd + [str(tmp_path / "warm.npy"), "--warm-up", str(bg), "--json"], capture_output=True,
                          text=True)
    assert cold.returncode == 0 and warm.returncode == 0, warm.stderr
    s = json.loads(warm.stdout)
    assert s["warm_up"]["frames_dropped"] == 51 and json.loads(cold.stdout)["warm_up"] is None
    assert not np.array_equal(np.load(tmp_path / "cold.npy"), np.load(tmp_path / "warm.npy"))
    bad = subprocess.run([sys.executable, "-m", "fwtool", "features", "--app", "audio_classifier", str(clip), "-o",
                          str(tmp_path / "x.npy"), "--warm-up", str(bg)], capture_output=True, text=True)
    assert bad.returncode == 3 and bad.stderr.startswith("error: ") and "fix:" in bad.stderr
    assert not (tmp_path / "x.npy").exists()


def test_detection_file(tmp_path):
    fe = params.kws()
    p = tmp_path / "detection.json"
    p.write_text(detection.payload(0.65, 4, fa_per_hour=1.5))
    assert detection.read(p) == (0.65, 4)
    fe2 = detection.apply(fe, p)
    assert (fe2.threshold, fe2.smoothing, fe2.frames) == (0.65, 4, fe.frames)
    assert detection.apply(fe, None) is fe
    for bad in ('{"threshold": 1.5, "smoothing": 3}', '{"threshold": 0.5, "smoothing": 0}',
                '{"threshold": 0.5}', "not json", '{"threshold": true, "smoothing": 3}'):
        p.write_text(bad)
        with pytest.raises(BadInput):
            detection.read(p)
    p.write_text(detection.payload(0.5, 3))
    with pytest.raises(BadInput, match="kws"):
        detection.apply(params.classifier(), p)

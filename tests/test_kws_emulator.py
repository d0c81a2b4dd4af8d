"""The kws app end to end on the virtual RP2040: build micro_speech for the emulator (--tflm-cores 1), stream
synthetic audio (numpy: tones, noise, silence) into the firmware's real preprocessor + classifier path over its
serial link, and compare with the host twin: every FWT:FEAT row identical to fwtool.audio.kws.stream_features,
every classifier output within 1 quantization step of the host TFLM interpreter on the same features, and the
per-stride processing time against the 20 ms real-time budget.

Runs where the ARM toolchain, the SDK trees, the tflite-micro tree, Node and rp2040js are present; skips with the
reason otherwise."""
import json
import subprocess
import sys

import numpy as np
import pytest

from fwtool.audio import features as features_mod
from fwtool.audio import kws, params
from fwtool.audio.capture import expected_counts
from fwtool.core import vendor

MODELS = "tensorflow/lite/micro/examples/micro_speech/models"
RATE = 16000


def synthetic_clip(seed: int = 7) -> np.ndarray:
    """2 s: 0.5 s of a 440 Hz tone, 0.5 s of a 1.2 -> 3 kHz chirp, 0.5 s of white noise, 0.5 s of silence."""
    rng = np.random.default_rng(seed)
    t = np.arange(RATE // 2) / RATE
    tone = 9000 * np.sin(2 * np.pi * 440 * t)
    chirp = 6000 * np.sin(2 * np.pi * (1200 * t + 1800 * t * t))
    noise = rng.normal(0, 3000, RATE // 2)
    silence = np.zeros(RATE // 2)
    return np.clip(np.concatenate([tone, chirp, noise, silence]), -32768, 32767).astype(np.int16)


@pytest.fixture(scope="module")
def models():
    loc = vendor.locate(vendor.manifest()["tflite-micro"])
    if loc.path is None:
        pytest.skip("vendor tree tflite-micro not available (fwtool vendor sync tflite-micro)")
    return loc.path / MODELS


@pytest.fixture(scope="module")
def kws_emu_build(tmp_path_factory, real_build_reason, emulator_ready, models):
    if real_build_reason:
        pytest.skip(real_build_reason)
    out = tmp_path_factory.mktemp("kws") / "pico-kws-emu"
    p = subprocess.run([sys.executable, "-m", "fwtool", "build", "--board", "pico", "--app", "kws", "--model",
                        str(models / "micro_speech_quantized.tflite"), "--out", str(out), "--tflm-cores", "1",
                        "--json"], capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stderr[-3000:]
    return out, json.loads(p.stdout)


@pytest.fixture(scope="module")
def capture(kws_emu_build):
    from fwtool.emulator.audio import stream_clip

    out, _ = kws_emu_build
    pcm = synthetic_clip()
    cap = stream_clip(out / "firmware.uf2", pcm, params.kws(), features=True, max_wall_s=900)
    return pcm, cap


def test_the_report_names_the_embedded_preprocessor(kws_emu_build):
    _, report = kws_emu_build
    pre = report["preprocessor"]
    assert pre["name"] == "audio_preprocessor_int8" and pre["origin"].startswith("tflite-micro")
    assert "CUSTOM:SignalPCAN" in pre["ops"] and pre["arena"]["arena_bytes"] > pre["arena"]["measured_bytes"]
    assert report["labels"] == ["silence", "unknown", "yes", "no"]


def test_device_features_are_identical_to_the_host_twin(capture):
    pcm, cap = capture
    fe = params.kws()
    frames, infs = expected_counts(len(pcm), fe)
    assert cap.complete and not cap.errors, cap.lines[-5:]
    assert cap.banner.app == "kws" and (cap.banner.window, cap.banner.hop, cap.banner.bins) == (480, 320, 40)
    host = kws.stream_features(pcm, fe)
    assert host.shape == (frames, 40) and not cap.missing_rows(frames, 40)
    device = cap.feature_rows(frames, 40)
    assert np.array_equal(device, host), f"first differing frame {np.argwhere(device != host)[0][0]}"
    assert len(np.unique(host)) > 20  # the clip exercises the front end (not all-silence features)


def test_device_scores_are_within_one_step_of_the_host(capture, models):
    pcm, cap = capture
    fe = params.kws()
    windows = features_mod.device_windows(kws.stream_features(pcm, fe), fe)
    assert len(cap.inferences) == len(windows) == expected_counts(len(pcm), fe)[1]
    clf = kws.Classifier(models / "micro_speech_quantized.tflite")
    for inf, win in zip(cap.inferences, windows):
        clf.scores(win)
        host_q = np.asarray(clf._it.get_output(0)).reshape(-1).astype(int)
        assert np.max(np.abs(np.asarray(inf.q) - host_q)) <= 1, (inf.n, inf.q, host_q.tolist())
    assert [i.frame for i in cap.inferences] == list(range(49, 49 + 5 * len(windows), 5))


def test_device_detections_follow_the_host_rule(capture, models):
    pcm, cap = capture
    fe = params.kws()
    q = [inf.q for inf in cap.inferences]
    host = kws.detections(q, 1 / 256, -128, fe, ["silence", "unknown", "yes", "no"])
    assert [{"n": d.n, "label": d.label} for d in cap.detections] == host


def test_per_stride_time_is_within_the_20_ms_budget(capture):
    _, cap = capture
    per_stride_us = [(i.dsp_us + i.invoke_us) / 5 for i in cap.inferences]
    dsp_per_frame = [i.dsp_us / 5 for i in cap.inferences]
    print(f"\nkws on the virtual RP2040: preprocessor {np.median(dsp_per_frame):.0f} us/frame, classifier "
          f"{np.median([i.invoke_us for i in cap.inferences]):.0f} us/inference, "
          f"{np.median(per_stride_us):.0f} us per 20 ms stride (p95 {np.percentile(per_stride_us, 95):.0f})")
    assert max(per_stride_us) < 20_000
    assert all(i.dropped == 0 for i in cap.inferences)

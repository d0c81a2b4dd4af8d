"""On the virtual RP2040: build --app audio_classifier for fire_alarm, stream synthetic clips (tone, chirp, silence,
clipping, noise; numpy) through the firmware's real CMSIS-DSP + model path and check, through
``fwtool validate --app audio_classifier``'s own API, that every feature row is bit-identical to the host twin's,
the scores match the host TFLM reference and the detections are equal. Skipped with the reason when the trees,
the toolchain or Node are absent."""
import numpy as np
import pytest

from fwtool.audio import wav
from fwtool.validate.audio import AudioValidateOptions, run_audio

from modelgen import FIRE_ALARM

N = 16896  # 132 frames: inferences at frames 124, 128 and 132


def clips(tmp_path):
    t = np.arange(N) / 16000
    rng = np.random.default_rng(7)
    signals = {
        "tone": 8000 * np.sin(2 * np.pi * 1000 * t),
        "chirp": 12000 * np.sin(2 * np.pi * (100 * t + 3900 * t ** 2 / (2 * N / 16000))),
        "silence": np.zeros(N),
        "clipping": np.clip(60000 * np.sin(2 * np.pi * 440 * t), -32768, 32767),
        "noise": rng.normal(0, 6000, N),
    }
    return [wav.write_wav(tmp_path / f"{k}.wav", np.clip(np.round(v), -32768, 32767).astype(np.int16))
            for k, v in signals.items()]


def test_streamed_clips_give_bit_identical_features_and_matching_scores(tmp_path, real_build_reason,
                                                                       emulator_ready):
    if real_build_reason:
        pytest.skip(real_build_reason)
    if not FIRE_ALARM.is_file():
        pytest.skip("shared model fire_alarm.tflite not found")
    from test_audio_app import trees_reason
    if trees_reason():
        pytest.skip(trees_reason())
    steps = []
    report = run_audio(AudioValidateOptions(model=FIRE_ALARM, app="audio_classifier", audio=clips(tmp_path),
                                            out_dir=tmp_path / "build"), on_step=steps.append)
    assert [c["clip"] for c in report["clips"]] == ["tone.wav", "chirp.wav", "silence.wav", "clipping.wav",
                                                    "noise.wav"]
    for c in report["clips"]:
        assert c["frames"] == 132 and c["inferences"] == 3, c["clip"]
        assert c["features_identical"] and c["rows_differing"] == 0 and c["rows_missing"] == 0, c["clip"]
        assert c["max_abs_diff"] is not None and c["max_abs_diff"] <= 1, c["clip"]
        assert c["detections"]["equal"], c["clip"]
        assert len(c["dsp_us"]) == 3 and all(0 < u for u in c["dsp_us"] + c["invoke_us"])
        assert c["stream"]["samples"] == N and c["dropped"] == 0
    silence = report["clips"][2]
    assert silence["device_q"][0] == silence["device_q"][-1]  # silence in, a constant input, one answer
    t = report["timing"]
    assert t["budget_ms"] == 32.0 and t["hop"]["count"] == 15 and t["hop"]["p95_ms"] > t["invoke"]["p50_ms"]
    assert report["ok"] == (not report["problems"]) and report["exit_code"] in (0, 8)
    assert not [p for p in report["problems"] if "budget" not in p]  # everything but (possibly) the budget agrees

"""fwtool features (fwtool.commands.features): model-derived front ends, refusals (exit 3), atomic .npy output."""
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from fwtool.audio import features, params, spectrogram, wav
from fwtool.cli import cli

FIRE_ALARM = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "fire_alarm.tflite"


def tone(tmp_path, name="tone.wav", n=16000, f=1000):
    t = np.arange(n) / 16000
    return wav.write_wav(tmp_path / name, np.round(8000 * np.sin(2 * np.pi * f * t)).astype(np.int16))


def invoke(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False, standalone_mode=False)


def test_classifier_without_model_gives_q15_magnitudes(tmp_path):
    a = tone(tmp_path)
    out = tmp_path / "x.npy"
    r = CliRunner().invoke(cli, ["features", "--app", "audio_classifier", str(a), "-o", str(out), "--json"])
    assert r.exit_code == 0, r.output
    s = json.loads(r.output)
    assert s["shape"] == [1, 124, 129] and s["dtype"] == "int16" and s["clips"] == 1 and s["seconds"] == 1.0
    x = np.load(out)
    assert np.array_equal(x[0], spectrogram.spectrogram_q15(wav.read_wav(a), params.classifier()))


@pytest.mark.skipif(not FIRE_ALARM.is_file(), reason=f"{FIRE_ALARM} not present")
def test_classifier_with_model_is_its_int8_input(tmp_path):
    a, b = tone(tmp_path), tone(tmp_path, "b.wav", f=3000)
    out = tmp_path / "x.npy"
    r = CliRunner().invoke(cli, ["features", "-a", "audio_classifier", "-m", str(FIRE_ALARM), str(a), str(b),
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    x = np.load(out)
    assert x.shape == (2, 124, 129, 1) and x.dtype == np.int8
    fe = params.classifier_for(params.ModelInput((1, 124, 129, 1), "int8", 0.443382, -128))
    ref = features.compute("audio_classifier", [a, b], params.ModelInput((1, 124, 129, 1), "int8",
                                                                       fe.input_scale, -128))
    assert np.array_equal(x[..., 0], ref)


def test_bad_wav_and_mismatched_model_exit_3(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    out = tmp_path / "x.npy"
    r = CliRunner().invoke(cli, ["features", "-a", "audio_classifier", str(bad), "-o", str(out)])
    assert r.exit_code != 0 and not out.exists()
    from fwtool.cli import main
    with pytest.raises(SystemExit) as ei:
        main(["features", "-a", "audio_classifier", str(bad), "-o", str(out)])
    assert ei.value.code == 3 and not out.exists()
    if FIRE_ALARM.is_file():
        with pytest.raises(SystemExit) as ei:
            main(["features", "-a", "kws", "-m", str(FIRE_ALARM), str(tone(tmp_path)), "-o", str(out)])
        assert ei.value.code == 3 and not out.exists()
    with pytest.raises(SystemExit) as ei:
        main(["features", "-a", "kws", str(tone(tmp_path)), "-o", str(tmp_path / "x.txt")])
    assert ei.value.code == 3


def test_help_has_examples():
    r = CliRunner().invoke(cli, ["features", "--help"])
    assert "Examples:" in r.output and "--all-windows" in r.output

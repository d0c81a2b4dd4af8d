"""The audio_classifier app: front end derived from the model into the template context, the rendered project
(app sources, vendor trees, the board's PDM wiring), refusals through the CLI with their exit codes, the capture's
expected counts, and the monitor's audio lines. (On the virtual board: test_audio_app_emulator.py.)"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from fwtool.audio import capture, device, features, params, spectrogram, wav
from fwtool.firmware import render
from fwtool.firmware.context import template_context
from fwtool.firmware.plan import BuildOptions, plan
from fwtool.core import vendor
from fwtool.core.lines import Line
from fwtool.monitor.stats import Stats, classify
from fwtool.monitor.view import audio_rows, render_panel, PanelState

from fwtool.core.errors import MissingTool
from modelgen import FIRE_ALARM, tiny_fc_model


def trees_reason():
    for name in ("pico-sdk", "tinyusb", "pico-tflmicro", "cmsis-dsp", "microphone-library-for-pico"):
        try:
            vendor.require(vendor.manifest()[name])  # fetched on first use unless offline
        except MissingTool as e:
            return f"vendor tree {name} not available: {e.cause}"
    if not FIRE_ALARM.is_file():
        return "shared model fire_alarm.tflite not found"
    return None


needs_trees = pytest.mark.skipif(trees_reason() is not None, reason=str(trees_reason()))


class Result:
    def __init__(self, proc):
        self.exit_code, self.output = proc.returncode, proc.stdout + proc.stderr


def invoke(args):
    """The real command line (exit codes and one-line errors come from fwtool's own error handler)."""
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return Result(subprocess.run([sys.executable, "-m", "fwtool", *args], capture_output=True, text=True, env=env,
                                 timeout=600))


def test_front_end_from_fire_alarm_input():
    mi = params.ModelInput((1, 124, 129, 1), "int8", 0.44338173, -128)
    fe = device.front_end("audio_classifier", mi)
    assert (fe.fft_size, fe.hop, fe.frames, fe.bins, fe.columns_per_inference) == (256, 128, 124, 129, 4)
    assert fe.samples_per_inference == 512 and fe.inference_period_ms == 32.0
    v = device.template_values(fe)["audio"]
    assert v["period_us"] == 32000 and v["shift"] == 4 and v["threshold"] == "0.5000f"
    head = v["header"]
    assert "#define FWT_AUDIO_FRAMES 124" in head and "#define FWT_AUDIO_BINS 129" in head
    table = spectrogram.threshold_table(0.44338173, -128)
    assert ", ".join(str(int(x)) for x in table[:15]) in head  # the device's quantization table
    assert device.front_end("inference", mi) is None
    none = device.template_values(None)["audio"]  # other apps: every key, and a header that stops the compile
    assert set(none) == set(v) and none["header"].startswith("#error")


def test_front_end_refuses_models_that_do_not_fit_with_the_numbers():
    from fwtool.core.errors import BadInput
    with pytest.raises(BadInput) as e:
        device.front_end("audio_classifier", params.ModelInput((1, 124, 100, 1), "int8", 0.4, -128))
    assert "100 bins" in e.value.cause and "129 for FFT 256" in e.value.cause
    with pytest.raises(BadInput) as e:
        device.front_end("audio_classifier", params.ModelInput((1, 124, 129, 1), "float32"))
    assert "int8" in e.value.cause


@pytest.mark.parametrize("n", [0, 100, 16000, 16383, 16384, 16896, 17000, 32000])
def test_expected_counts_match_the_host_twin(n):
    fe = params.classifier(scale=0.44338173, zero_point=-128)
    frames, infs = capture.expected_counts(n, fe)
    host = spectrogram.stream_features(np.zeros(n, np.int16), fe) if n else np.zeros((0, 129), np.int8)
    assert frames == len(host)
    assert infs == len(features.device_windows(host, fe))


@needs_trees
def test_plan_and_render_put_sources_vendor_trees_and_wiring_into_the_project(tmp_path):
    p = plan(BuildOptions(board="pico", model=FIRE_ALARM, app="audio_classifier", out_dir=tmp_path, tflm_cores=1))
    assert p.audio.frames == 124 and p.audio.bins == 129 and abs(p.audio.input_scale - 0.4434) < 1e-3
    assert set(p.app_vendor) == {"cmsis-dsp", "microphone-library-for-pico"}
    paths = p.family.vendor_paths()
    ctx = template_context(p, paths)
    assert ctx["audio"]["frames"] == 124 and ctx["mic"] == {"present": 1, "data_pin": 2, "clk_pin": 3, "pio": 0, "sm": 0}
    files = render.render_all(p.family.template_dir, ctx, p.app)
    cml = files["CMakeLists.txt"]
    for piece in ("main.cpp", "fwt_mic.cpp", "Source/TransformFunctions/arm_rfft_q15.c", "arm_cmplx_mag_q15.c",
                  "src/pdm_microphone.c", "pico_generate_pio_header(pico_pdm_mic", "cmsis_dsp_frontend",
                  "hardware_pwm"):
        assert piece in cml, piece
    assert "-DARM_MATH_ROUNDING" not in cml and not any("ARM_MATH_ROUNDING" in lib["defines"]
                                                         for lib in ctx["app_vendor_libs"])  # host twin: without it
    assert "arm_fir" not in cml and "Source/FilteringFunctions" not in cml  # only what the front end needs
    assert "{2, 3, pio0, 0, sample_rate" in " ".join(files["fwt_mic.cpp"].split()).replace("{ ", "{")
    assert "#define FWT_AUDIO_SAMPLES_PER_INFERENCE 512" in files["fwt_audio_config.h"]
    fe_src = files["audio_frontend.h"]
    code = [ln for ln in fe_src.splitlines() if not ln.lstrip().startswith("//")]
    assert not any("memmove" in ln and "/ 2" in ln for ln in code)  # the tutorial's byte-count memmove: not copied
    assert "(size_t)kHistory * sizeof(q15_t)" in fe_src
    plain = plan(BuildOptions(board="pico", model=FIRE_ALARM, out_dir=tmp_path))
    plain_ctx = template_context(plain, paths)
    assert plain_ctx["audio"]["frames"] == 0 and plain_ctx["app_vendor_libs"] == [] and not plain_ctx["tflm_fast_sources"]
    assert "cmsis_dsp" not in render.render_all(plain.family.template_dir, plain_ctx, plain.app)["CMakeLists.txt"]


@needs_trees
def test_board_without_a_microphone_is_refused_with_one_line(tmp_path):
    r = invoke(["build", "--board", "sparkfun_micromod_rp2040", "--app", "audio_classifier", "--model",
                str(FIRE_ALARM), "--out", str(tmp_path / "b")])
    assert r.exit_code == 3, r.output
    err = r.output.strip().splitlines()
    assert any("needs a pdm_mic but board 'sparkfun_micromod_rp2040' has none" in ln for ln in err)
    assert all(n in r.output for n in ("pico", "pico_w")) and "Traceback" not in r.output
    assert not (tmp_path / "b" / "project").exists()  # refused before anything is written


@needs_trees
def test_model_that_does_not_fit_the_front_end_is_refused(tmp_path):
    model = tmp_path / "fc.tflite"
    model.write_bytes(tiny_fc_model())
    r = invoke(["build", "--board", "pico", "--app", "audio_classifier", "--model", str(model), "--out",
                str(tmp_path / "b")])
    assert r.exit_code == 3, r.output
    assert "audio_classifier" in r.output and "Traceback" not in r.output
    r = invoke(["validate", "-m", str(model), "--app", "audio_classifier", "--audio", str(write_tone(tmp_path))])
    assert r.exit_code == 3, r.output


def write_tone(tmp_path, n=17000):
    t = np.arange(n) / 16000
    return wav.write_wav(tmp_path / "tone.wav", np.round(8000 * np.sin(2 * np.pi * 1000 * t)).astype(np.int16))


def bad_wavs(tmp_path):
    good = write_tone(tmp_path)
    data = good.read_bytes()
    stereo = bytearray(data)
    stereo[22:24] = (2).to_bytes(2, "little")
    (tmp_path / "stereo.wav").write_bytes(bytes(stereo))
    (tmp_path / "trunc.wav").write_bytes(data[:30])
    (tmp_path / "text.wav").write_text("not audio")
    return [tmp_path / "stereo.wav", tmp_path / "trunc.wav", tmp_path / "text.wav"]


@pytest.mark.skipif(not FIRE_ALARM.is_file(), reason="shared model fire_alarm.tflite not found")
def test_bad_wav_is_refused_with_exit_3_before_any_build(tmp_path):
    for bad in bad_wavs(tmp_path):
        for args in (["validate", "-m", str(FIRE_ALARM), "--app", "audio_classifier", "--audio", str(bad),
                      "--out", str(tmp_path / "v")],
                     ["run", "-b", "pico", "-m", str(FIRE_ALARM), "--app", "audio_classifier", "--emulator",
                      "--audio", str(bad), "--out", str(tmp_path / "r")]):
            r = invoke(args)
            assert r.exit_code == 3, (args, r.output)
            assert bad.name in r.output and "Traceback" not in r.output
        assert not (tmp_path / "v").exists() and not (tmp_path / "r").exists()


def test_validate_audio_needs_an_app(tmp_path):
    r = invoke(["validate", "-m", str(FIRE_ALARM), "--audio", str(write_tone(tmp_path))])
    assert r.exit_code == 2 and "--app" in r.output


def test_emulate_audio_refuses_a_firmware_that_is_not_an_audio_app(tmp_path):
    fw = tmp_path / "firmware.uf2"
    fw.write_bytes(b"\0" * 512)
    (tmp_path / "report.json").write_text(json.dumps({"build": {"app": "inference"}, "model": {"path": "x"}}))
    r = invoke(["emulate", str(fw), "--audio", str(write_tone(tmp_path))])
    assert r.exit_code == 3 and "not an audio app" in r.output


AUDIO_LINES = [
    "FWT:AUDIO app=audio_classifier rate=16000 window=256 fft=256 hop=128 frames=124 bins=129 shift=4 source=mic want=0",
    "FWT:AINF n=1 frame=123 dsp_us=4000 invoke_us=20000 dropped=0 top=fire score=0.2500 scores=0.2500 q=-64",
    "FWT:AINF n=2 frame=127 dsp_us=4200 invoke_us=20100 dropped=512 top=fire score=0.8750 scores=0.8750 q=96",
    "FWT:DETECT n=2 label=fire score=0.8750",
]


def test_monitor_shows_audio_lines_and_passes_them_as_json():
    stats = Stats()
    recs = [classify(Line(ln.encode(), 1000.0 + i)) for i, ln in enumerate(AUDIO_LINES)]
    for r in recs:
        stats.add(r)
    assert [r.kind for r in recs] == ["audio", "audio_inference", "audio_inference", "detection"]
    assert recs[1].to_json()["dsp_us"] == 4000 and recs[3].to_json()["label"] == "fire"
    a = stats.audio
    assert a.inferences == 2 and a.detection_count == 1 and a.budget_us == 32000
    assert a.budget_use(95) == pytest.approx(24300 / 32000)
    s = stats.summary()["audio"]
    assert s["dsp_ms"]["p95"] == 4.2 and s["invoke_ms"]["p50"] == 20.0 and s["dropped"] == 512
    from rich.console import Console
    con = Console(width=100, record=True, color_system=None)
    st = PanelState()
    st.port = "socket://x"
    con.print(render_panel(stats, st, width=100))
    text = con.export_text()
    assert "fire" in text and "0.8750" in text and "DSP 4.20 ms + invoke 20.10 ms" in text
    assert "76% of 32 ms" in text and "detections 1" in text and "dropped 512" in text and "#2 fire 0.88" in text
    assert len(audio_rows(stats, 80)) >= 4

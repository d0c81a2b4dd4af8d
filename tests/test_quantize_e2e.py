"""Keras model → fwtool quantize → fwtool inspect → fwtool build --board pico, with no converter code, and the
firmware's output on the virtual RP2040 equal to the int8 model's reference output.

Needs TensorFlow, the ARM toolchain and SDK trees (real build) and, for the run, Node + rp2040js; skips with the
reason otherwise. One build (~20 s with ccache warm, ~2 min cold) and one emulated inference.
"""
import json
import subprocess
import sys

import numpy as np
import pytest

import models_tf as M
from fwtool.core import protocol
from fwtool.model.evaluation import run_int8
from fwtool.model.tflite import load_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")


def _fwtool(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "fwtool", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_keras_to_firmware_matches_the_int8_reference(tmp_path, real_build_reason):
    c = M.conv_model()
    if real_build_reason:
        pytest.skip(real_build_reason)
    tflite = tmp_path / "alarm_int8.tflite"
    p = _fwtool("quantize", c["keras"], "--representative", c["rep"], "-o", tflite,
                "--eval", c["eval_x"], c["eval_y"], "--json")
    assert p.returncode == 0, p.stderr
    q = json.loads(p.stdout)
    assert q["eval"]["accuracy_drop"] <= 2.0 and tflite.read_bytes() == M.quantized("conv").read_bytes()

    p = _fwtool("inspect", tflite, "--board", "pico", "--json")
    assert p.returncode == 0, p.stderr
    insp = json.loads(p.stdout)
    assert insp["boards"][0]["runs"] and insp["totals"]["macs"] == 61 * 64 * 4 * 9 + 3840

    x = np.load(c["eval_x"])[1:2]  # a positive (alarm) sample, float as in training
    np.save(tmp_path / "one.npy", x)
    out = tmp_path / "b"
    # straight from the .keras file: quantized on the fly (the cache holds the same bytes as alarm_int8.tflite)
    p = _fwtool("build", "--board", "pico", "--model", c["keras"], "--representative", c["rep"], "--input",
                tmp_path / "one.npy", "--out", out, "--tflm-cores", "1", "--json")
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads(p.stdout)
    assert report["model"]["sha256"] == q["model"]["sha256"]
    # the figure inspect shows for the board is the one the firmware got (once a build measured it on the
    # virtual board; before that, inspect shows the larger host measurement + margin)
    p = _fwtool("inspect", tflite, "--board", "pico", "--json")
    assert p.returncode == 0, p.stderr
    assert report["arena"] == json.loads(p.stdout)["arena"]
    assert tflite.read_bytes() in (out / "firmware.bin").read_bytes()  # the exact model bytes are embedded
    assert any("quantized to int8" in n for n in report["build"]["notes"])

    from conftest import virtual_board_reason
    from fwtool import emulator

    reason = virtual_board_reason()
    if reason:
        pytest.skip(f"firmware built and checked; {reason}")
    run = emulator.run_capture(out / "firmware.uf2", count=1, timeout=300)
    assert run.ok, run.lines[-5:]
    infer = next(r for r in map(protocol.parse_line, run.lines) if isinstance(r, protocol.Inference))
    model = load_model(tflite)
    t_out = model.outputs[0]
    ref_q = int(np.round(run_int8(model, x)[0].item() / t_out.scale[0] + t_out.zero_point[0]))
    assert infer.q == [ref_q]  # bit-exact: same int8 output as TFLM's reference kernels on the host
    assert ref_q > 0  # and it is the alarm class (probability > 0.5)

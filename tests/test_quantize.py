"""fwtool quantize and build --representative: real TensorFlow conversions of tiny Keras models.

Tests that convert need TensorFlow and skip with the reason when it is absent; the data-handling and
no-TensorFlow behaviour is tested without it.
"""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import modelgen
import models_tf as M
from fwtool.model import quantize as q
from fwtool.firmware.flow import BuildOptions, plan
from fwtool.core.errors import BadInput, Exit
from fwtool.model.tflite import load_model, parse_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


# ---------------------------------------------------------------------------------------- no TensorFlow needed

def test_without_tensorflow_quantize_says_exactly_that(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # import tensorflow -> ImportError
    (tmp_path / "m.keras").write_bytes(b"PK")
    np.save(tmp_path / "rep.npy", np.zeros((100, 4), np.float32))
    code, out, err = M.run_cli(["quantize", tmp_path / "m.keras", "-r", tmp_path / "rep.npy"], capsys)
    assert code == Exit.MISSING_TOOL
    assert err.splitlines()[0] == ("error: TensorFlow is not installed, so fwtool cannot convert a Keras/SavedModel "
                                   "model")
    assert "pip install 'fwtool[tf]'" in err and "Traceback" not in err
    assert not (Path.cwd() / "m_int8.tflite").exists()


def test_samples_are_spread_evenly_and_too_few_is_refused():
    x = np.arange(1000, dtype=np.float32)[:, None]
    picked = q.pick(x, 100, "d.npy")
    assert len(picked) == 100 and picked[0, 0] == 0 and picked[-1, 0] == 999  # not just the first 100
    assert np.all(np.diff(picked[:, 0]) > 0)
    with pytest.raises(BadInput) as e:
        q.pick(x[:37], 100, "d.npy")
    assert "d.npy has 37 samples" in e.value.cause and "--samples 37" in e.value.fix


def test_data_shapes_batches_single_samples_and_channel_axis(tmp_path):
    a = np.ones((5, 124, 129), np.float32)  # no channel axis: a size-1 difference is accepted
    b = np.ones((124, 129, 1), np.int16)  # one sample, integer dtype
    folder = tmp_path / "feat"
    folder.mkdir()
    np.save(folder / "a.npy", a)
    np.savez(folder / "b.npz", x=b)
    x = q.as_samples(q.load_arrays(folder, "representative data"), (124, 129, 1), "representative data")
    assert x.shape == (6, 124, 129, 1) and x.dtype == np.float32
    np.save(tmp_path / "t.npy", np.ones((5, 129, 124), np.float32))
    with pytest.raises(BadInput) as e:  # transposed: refused, naming both shapes
        q.as_samples(q.load_arrays(tmp_path / "t.npy", "representative data"), (124, 129, 1), "representative data")
    assert "129x124" in e.value.cause and "124x129x1" in e.value.cause


def test_bad_data_files(tmp_path):
    np.savez(tmp_path / "two.npz", a=np.zeros(3), b=np.zeros(3))
    with pytest.raises(BadInput, match="which are the inputs"):
        q.load_arrays(tmp_path / "two.npz", "representative data")
    (tmp_path / "x.csv").write_text("1,2\n")
    with pytest.raises(BadInput, match="not a .npy/.npz"):
        q.load_arrays(tmp_path / "x.csv", "representative data")
    np.save(tmp_path / "nan.npy", np.full((2, 3), np.nan, np.float32))
    with pytest.raises(BadInput, match="NaN"):
        q.as_samples(q.load_arrays(tmp_path / "nan.npy", "d"), (3,), "d")


def test_quantize_refuses_a_tflite_and_a_missing_model(tmp_path, fire_alarm):
    with pytest.raises(BadInput) as e:
        q.quantize(q.QuantizeOptions(model=fire_alarm, representative=tmp_path / "r.npy"))
    assert "already a .tflite" in e.value.cause and "fwtool quantize" in e.value.fix
    with pytest.raises(BadInput, match="does not exist"):
        q.quantize(q.QuantizeOptions(model=tmp_path / "none.keras", representative=tmp_path / "r.npy"))


def test_float_tflite_refusal_names_the_exact_quantize_command(tmp_path, capsys):
    f = tmp_path / "kws.tflite"
    f.write_bytes(modelgen.float_model())
    code, _, err = M.run_cli(["build", "--board", "pico", "--model", f], capsys)
    assert code == Exit.BAD_INPUT
    assert err.splitlines()[0].startswith("error: kws.tflite is a float model")
    # no training export next to it: the fix names none (issue 13) and says what to quantize from and how
    assert "kws.keras" not in err and "no .keras/.h5/SavedModel export of it sits next to kws.tflite" in err
    assert f"fwtool quantize MODEL.keras --representative DATA.npy -o {tmp_path / 'kws_int8.tflite'}" in err
    (tmp_path / "kws.h5").write_bytes(b"x")  # the training export sits next to it: the command names it
    code, _, err = M.run_cli(["build", "--board", "pico", "--model", f], capsys)
    assert f"fwtool quantize {tmp_path / 'kws.h5'} --representative DATA.npy" in err
    assert len(err.strip().splitlines()) == 2  # one line of cause, one of fix


def test_build_with_keras_model_needs_representative(tmp_path, capsys):
    (tmp_path / "net.keras").write_bytes(b"PK")
    code, _, err = M.run_cli(["build", "-b", "pico", "-m", tmp_path / "net.keras"], capsys)
    assert code == Exit.BAD_INPUT
    assert "net.keras is a Keras model, not an int8 .tflite" in err
    assert "--representative DATA.npy" in err and f"fwtool quantize {tmp_path / 'net.keras'}" in err


def test_build_representative_with_a_tflite_is_refused(fire_alarm, tmp_path, capsys):
    np.save(tmp_path / "r.npy", np.zeros((100, 124, 129, 1), np.float32))
    code, _, err = M.run_cli(["build", "-b", "pico", "-m", fire_alarm, "-r", tmp_path / "r.npy"], capsys)
    assert code == Exit.BAD_INPUT and "--representative quantizes a Keras/SavedModel model" in err


# ------------------------------------------------------------------------------------------ with TensorFlow

def test_conv_model_quantizes_to_int8_with_expected_ops_and_accuracy():
    c = M.conv_model()
    data, r = q.quantize(q.QuantizeOptions(model=c["keras"], representative=c["rep"], eval_x=c["eval_x"],
                                           eval_y=c["eval_y"]))
    m = load_model(M.quantized("conv"))
    assert m.data == data  # same model + data -> same bytes (the cached file was made by another call)
    assert [t.dtype for t in m.inputs + m.outputs] == ["INT8", "INT8"]
    assert m.inputs[0].shape == [1, 124, 129, 1] and m.outputs[0].shape == [1, 1]
    assert m.op_names == ["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "LOGISTIC"]  # batch 1: no SHAPE
    assert all(t.dtype in ("INT8", "INT32") for t in m.tensors)  # full-integer: no float tensor anywhere
    ev = r["eval"]
    assert ev["samples"] == 120 and ev["float_accuracy"] >= 95
    assert ev["accuracy_drop"] <= 2.0 and ev["mean_abs_delta"] < 0.02
    assert r["representative"] == {"path": str(c["rep"]), "available": 240, "used": 100}
    assert r["tflm"] == {"ok": True}


def test_dense_model_quantizes_with_softmax_and_keeps_accuracy():
    d = M.dense_model()
    _, r = q.quantize(q.QuantizeOptions(model=d["keras"], representative=d["rep"], eval_x=d["eval_x"],
                                        eval_y=d["eval_y"], samples=200))
    m = load_model(M.quantized("dense"))
    assert [o.op for o in m.operators] == ["FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX"]
    assert [t.dtype for t in m.inputs + m.outputs] == ["INT8", "INT8"] and m.outputs[0].shape == [1, 3]
    assert r["representative"]["used"] == 200
    assert r["eval"]["float_accuracy"] >= 95 and r["eval"]["accuracy_drop"] <= 2.0
    assert r["eval"]["max_abs_delta"] < 0.05  # softmax probabilities agree to ~1/256


def test_quantize_is_deterministic_across_processes(tmp_path):
    c = M.conv_model()
    out = tmp_path / "again.tflite"
    code = ("import sys; from fwtool.cli import main; "
            f"main(['quantize', {str(c['keras'])!r}, '-r', {str(c['rep'])!r}, '-o', {str(out)!r}, '--json'])")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    report = json.loads(p.stdout)
    assert report["output"] == str(out) and report["model"]["sha256"] == load_model(out).sha256
    assert out.read_bytes() == M.quantized("conv").read_bytes()


def test_h5_and_savedmodel_sources(tmp_path):
    c = M.conv_model()
    c["model"].save(tmp_path / "conv.h5")
    c["model"].export(str(tmp_path / "saved"), verbose=False)
    h5, _ = q.quantize(q.QuantizeOptions(model=tmp_path / "conv.h5", representative=c["rep"]))
    assert h5 == M.quantized("conv").read_bytes()
    sm, r = q.quantize(q.QuantizeOptions(model=tmp_path / "saved", representative=c["rep"], eval_x=c["eval_x"],
                                         eval_y=c["eval_y"]))
    sm_model = parse_model(sm)
    assert r["source"]["kind"] == "savedmodel"
    assert sm_model.op_names == ["CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "LOGISTIC"]
    assert sm_model.inputs[0].dtype == "INT8" and r["eval"]["accuracy_drop"] <= 2.0


def test_accuracy_drop_over_the_limit_is_refused_and_nothing_written(tmp_path, capsys):
    c = M.conv_model()
    np.save(tmp_path / "narrow.npy", np.load(c["rep"]) * 0.02)  # calibration on 2 % of the real range
    out = tmp_path / "bad.tflite"
    code, _, err = M.run_cli(["quantize", c["keras"], "-r", tmp_path / "narrow.npy", "-o", out,
                              "--eval", c["eval_x"], c["eval_y"], "--max-accuracy-drop", "5"], capsys)
    assert code == Exit.MISMATCH
    assert "int8 accuracy 50.0% is 50.0 points below float 100.0% (limit 5)" in err
    assert "--max-accuracy-drop" in err
    assert not out.exists() and not list(tmp_path.glob("bad.tflite*"))


def test_representative_shape_mismatch_names_both_shapes(tmp_path):
    c = M.conv_model()
    np.save(tmp_path / "t.npy", np.zeros((100, 129, 124, 1), np.float32))
    with pytest.raises(BadInput) as e:
        q.quantize(q.QuantizeOptions(model=c["keras"], representative=tmp_path / "t.npy"))
    assert "129x124x1" in e.value.cause and "124x129x1" in e.value.cause


def test_cli_quantize_writes_output_and_reports(tmp_path, capsys):
    d = M.dense_model()
    out = tmp_path / "sub" / "dense.tflite"
    code, stdout, err = M.run_cli(["quantize", d["keras"], "--representative", d["rep"], "-o", out,
                                   "--eval", d["eval_x"], d["eval_y"]], capsys)
    assert code == 0, err
    assert out.read_bytes() == M.quantized("dense").read_bytes()
    assert "input        int8 1x16" in stdout and "accuracy float 100.0%  int8 100.0%" in stdout
    assert f"fwtool build --board pico --model {out}" in stdout


def test_unconvertible_op_gives_one_line_naming_it(tmp_path):
    t = M.tf()
    import keras

    @keras.saving.register_keras_serializable(package="fwtool_tests")
    class Erf(keras.layers.Layer):  # tf.math.erf has no TFLite builtin
        def call(self, v):
            return t.math.erf(v)

    inp = keras.Input((8,))
    keras.Model(inp, Erf()(keras.layers.Dense(4)(inp))).save(tmp_path / "erf.keras")
    np.save(tmp_path / "r.npy", np.ones((100, 8), np.float32))
    with pytest.raises(BadInput) as e:
        q.quantize(q.QuantizeOptions(model=tmp_path / "erf.keras", representative=tmp_path / "r.npy"))
    assert e.value.cause == ("the TFLite converter could not make a full-integer int8 model of erf.keras: "
                             "TensorFlow op(s) Erf have no TFLite builtin kernel (TFLM has no TF Select)")
    assert not list(tmp_path.glob("*.tflite"))


def test_build_quantizes_on_the_fly_and_caches(cache, monkeypatch):
    c = M.conv_model()
    opts = BuildOptions(board="pico", model=c["keras"], representative=c["rep"])
    p1 = plan(opts)
    assert p1.model.path.parent.parent == cache / "models" and p1.model.path.name == "conv.tflite"
    assert p1.model.data == M.quantized("conv").read_bytes()
    assert "converted now" in p1.notes[0]

    def boom(*a, **k):
        raise AssertionError("converted again despite the cache")

    monkeypatch.setattr(q, "quantize", boom)
    opts2 = BuildOptions(board="pico", model=c["keras"], representative=c["rep"])
    p2 = plan(opts2)
    assert p2.model.path == p1.model.path and "cached" in p2.notes[0]
    # other data -> another key
    assert q.cache_key(c["keras"], c["eval_x"], 100) != q.cache_key(c["keras"], c["rep"], 100)
    assert q.cache_key(c["keras"], c["rep"], 100) != q.cache_key(c["keras"], c["rep"], 101)

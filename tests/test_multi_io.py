"""Issue 13: models with several inputs and outputs. Every input gets test data (build ``--input`` once per input
or one .npz keyed by input name or index; validate ``--inputs`` likewise), every output is compared and printed
(FWT:OUT per output; the inference app's FWT:INFER_OUT for outputs 1..n). The model: tests/modelgen.py's
two-input (a, b) two-output (sum, product) int8 model. The end-to-end test runs on the virtual board."""
import json
import subprocess
import sys

import numpy as np
import pytest

import modelgen
from fwtool.firmware import userdata
from fwtool.core import protocol
from fwtool.core.errors import BadInput
from fwtool.model.tflite import load_model
from fwtool.validate import reference, vectors


@pytest.fixture
def two_io(tmp_path):
    p = tmp_path / "two_io.tflite"
    p.write_bytes(modelgen.two_in_two_out_model())
    return p


def _q(t, x):
    return np.clip(np.round(np.asarray(x) / t.scale[0]) + t.zero_point[0], -128, 127).astype(np.int8)


def test_build_input_one_file_per_input_in_order(two_io, tmp_path):
    m = load_model(two_io)
    a, b = np.arange(8, dtype=np.int8).reshape(1, 8), -np.arange(8, dtype=np.int8).reshape(1, 8)
    np.save(tmp_path / "a.npy", a)
    np.save(tmp_path / "b.npy", b)
    data, source = userdata.read_input([tmp_path / "a.npy", tmp_path / "b.npy"], m)
    assert data == a.tobytes() + b.tobytes() and source == "a.npy + b.npy"
    with pytest.raises(BadInput, match=r"1 --input|one --input array was given"):
        userdata.read_input([tmp_path / "a.npy"], m)
    with pytest.raises(BadInput, match="3 --input files for a model with 2 input"):
        userdata.read_input([tmp_path / "a.npy"] * 3, m)


@pytest.mark.parametrize("keys", [("a", "b"), ("1", "0"), ("arr_0", "arr_1")])
def test_build_input_npz_by_name_or_index(two_io, tmp_path, keys):
    m = load_model(two_io)
    first, second = np.full((1, 8), 0.5, np.float32), np.full((1, 8), -0.2, np.float32)
    arrays = {"1": second, "0": first} if keys == ("1", "0") else dict(zip(keys, (first, second)))
    np.savez(tmp_path / "x.npz", **arrays)
    data, _ = userdata.read_input(tmp_path / "x.npz", m)
    assert data == _q(m.inputs[0], first).tobytes() + _q(m.inputs[1], second).tobytes()


def test_build_input_npz_missing_an_input_is_named(two_io, tmp_path):
    np.savez(tmp_path / "x.npz", a=np.zeros(8, np.int8))
    with pytest.raises(BadInput, match="no array for input 1 'b'"):
        userdata.read_input(tmp_path / "x.npz", load_model(two_io))


def test_validate_vectors_for_every_input(two_io, tmp_path):
    m = load_model(two_io)
    vecs, source = vectors.make_vectors(m.inputs, None, 4, seed=2)
    assert [v.shape for v in vecs] == [(4, 1, 8), (4, 1, 8)] and "4 vectors" in source
    assert not np.array_equal(vecs[0], vecs[1])  # input i uses seed + i
    per = vectors.as_bytes(vecs)
    assert per[1] == vecs[0][1].tobytes() + vecs[1][1].tobytes()  # a vector = every input back to back
    np.savez(tmp_path / "v.npz", a=vecs[0], b=vecs[1])
    loaded, _ = vectors.make_vectors(m.inputs, [tmp_path / "v.npz"])
    assert all(np.array_equal(x, y) for x, y in zip(loaded, vecs))
    np.save(tmp_path / "a.npy", vecs[0])
    with pytest.raises(BadInput, match="model has 2 inputs"):
        vectors.make_vectors(m.inputs, [tmp_path / "a.npy"])


def test_reference_feeds_every_input_and_returns_every_output(two_io):
    m = load_model(two_io)
    a = np.full((1, 1, 8), 20, np.int8)  # 20 steps of 0.05 + 3 -> (20 + 3) * 0.05 = 1.15
    b = np.full((1, 1, 8), 30, np.int8)  # (30 - 5) * 0.04 = 1.0
    (out,) = reference.reference_outputs(m, [a, b])
    sum_t, prod_t = m.outputs
    assert len(out) == 2
    assert np.all(np.abs((out[0] - sum_t.zero_point[0]) * sum_t.scale[0] - 2.15) <= sum_t.scale[0])
    assert np.all(np.abs((out[1] - prod_t.zero_point[0]) * prod_t.scale[0] - 1.15) <= prod_t.scale[0])


def test_infer_out_line_round_trips_and_old_lines_parse():
    f = protocol.c_formats()
    assert f["infer_out"] == "FWT:INFER_OUT n=%lu t=%lu" and f["infer_out_vector"] == {"name": "q", "conv": "%ld"}
    line = (f["infer_out"] % (7, 1)) + " q=" + ",".join("%ld" % v for v in (-128, 5, 127))
    rec = protocol.parse_line(line)
    assert rec.to_dict() == {"type": "inference_output", "n": 7, "t": 1, "q": [-128, 5, 127]}
    old = protocol.parse_line("FWT:INFER n=7 us=24113 top=fire_alarm score=0.9961 scores=0.9961 q=127")
    assert isinstance(old, protocol.Inference) and old.q == [127]  # output 0's line is unchanged
    assert protocol.parse_line("FWT:INFER_OUT n=x t=1 q=1") is None


def test_validate_two_inputs_two_outputs_on_the_virtual_board(two_io, tmp_path, real_build_reason,
                                                              emulator_ready):
    """Builds pico's image as fwtool build does, feeds it both inputs per vector over its console on the virtual
    board, compares both outputs with the host TFLM reference: max |Δ| <= 1 on each."""
    if real_build_reason:
        pytest.skip(real_build_reason)
    p = subprocess.run([sys.executable, "-m", "fwtool", "validate", "-b", "pico", "-m", str(two_io), "--count", "6",
                        "--out", str(tmp_path / "v"), "--json"], capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout)
    assert r["ok"] and [o["name"] for o in r["outputs"]] == ["sum", "product"]
    assert all(o["max_abs_diff"] <= 1 and o["vectors"] == 6 for o in r["outputs"])
    assert [t["name"] for t in r["inputs"]["tensors"]] == ["a", "b"]
    assert r["firmware"]["mode"] == "image" and r["firmware"]["image"] == str(tmp_path / "v" / "firmware.uf2")


@pytest.mark.parametrize("which", ["inputs", "outputs"])
def test_a_model_without_inputs_or_outputs_is_refused_clearly(tmp_path, which):
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    m = schema.ModelT.InitFromPackedBuf(bytearray(modelgen.two_in_two_out_model()), 0)
    setattr(m.subgraphs[0], which, np.array([], np.int32))
    p = tmp_path / "none.tflite"
    p.write_bytes(modelgen.pack(m))
    with pytest.raises(BadInput, match=f"its subgraph declares no {which}"):
        load_model(p)

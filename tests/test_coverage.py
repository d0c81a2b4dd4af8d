"""Issue 13, part 1: which models TFLM runs. Only live tensors decide (an LSTM's never-allocated float32
``*_intermediate`` tensors do not make a model float); refusals name the op, its version and the missing type;
the float-model fix names a source model only if one exists; the scheme is reported as it is (int8, int16x8,
mixed). No TensorFlow needed (models from tests/modelgen.py); the TF-built corpus is tests/test_coverage_corpus.py.
"""
import numpy as np
import pytest

import modelgen
from fwtool.core.errors import BadInput
from fwtool.model.tflite import (check_for_tflm, kernel_type_gaps, load_model, parse_model, scheme, tflm_ops)
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema


def _model(tmp_path, data: bytes, name: str = "m.tflite"):
    p = tmp_path / name
    p.write_bytes(data)
    return load_model(p)


def test_unallocated_float_intermediates_do_not_make_a_float_model(tmp_path):
    m = _model(tmp_path, modelgen.with_intermediate_tensors())
    inter = [t for t in m.tensors if t.name.endswith("_intermediate")]
    assert inter and all(t.dtype == "FLOAT32" and t.index not in m.live for t in inter)
    check_for_tflm(m)  # accepted: before issue 13 this was "a float model (tensor 'input_to_input_intermediate')"
    assert scheme(m) == "int8"


def test_live_float_tensors_still_make_a_float_model(tmp_path):
    with pytest.raises(BadInput, match=r"float model \(tensor 'input_1' is float32\)"):
        check_for_tflm(_model(tmp_path, modelgen.float_model()))


def test_float_refusal_names_a_source_model_only_if_it_exists(tmp_path):
    f = tmp_path / "net.tflite"
    f.write_bytes(modelgen.float_model())
    with pytest.raises(BadInput) as e:
        check_for_tflm(load_model(f))
    assert "net.keras" not in e.value.fix and "no .keras/.h5/SavedModel export" in e.value.fix
    assert f"fwtool quantize MODEL.keras --representative DATA.npy -o {tmp_path / 'net_int8.tflite'}" in e.value.fix
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "saved_model.pb").write_bytes(b"x")  # a SavedModel folder next to it
    with pytest.raises(BadInput) as e:
        check_for_tflm(load_model(f))
    assert f"fwtool quantize {tmp_path / 'net'} --representative DATA.npy" in e.value.fix


def test_op_table_has_kernel_types_from_the_pinned_tree():
    table = tflm_ops()
    assert "int16" in table["FULLY_CONNECTED"]["types"] and "int8" in table["CONV_2D"]["types"]
    assert table["HARD_SWISH"]["types"] == ["float32", "int8"]  # pico-tflmicro's hard_swish has no int16 path
    assert "types" not in table["RESHAPE"]  # type-agnostic: copies bytes
    assert "types" not in table["SHAPE"]  # names only its int32 output type


def _retyped(data: bytes, ttype: int) -> bytes:
    m = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    for t in m.subgraphs[0].tensors:
        t.type = ttype
    return modelgen.pack(m)


def test_a_type_the_kernel_lacks_is_refused_naming_op_version_and_type(tmp_path):
    m = _model(tmp_path, _retyped(modelgen.two_in_two_out_model(), schema.TensorType.UINT8))
    assert [(op.op, t) for op, t in kernel_type_gaps(m)] == [("ADD", "UINT8"), ("MUL", "UINT8")]
    with pytest.raises(BadInput, match=r"operator 0 ADD \(version 1\) has a uint8 tensor, and pico-tflmicro's ADD "
                                       r"kernel \(cmsis_nn/add.cpp\) handles only float32, int16, int32, int8"
                                       r"; 1 more operator\(s\) have a type their kernel lacks"):
        check_for_tflm(m)


def test_missing_op_names_its_version(tmp_path):
    with pytest.raises(BadInput, match=r"HASHTABLE_LOOKUP \(version \d+\)"):
        check_for_tflm(_model(tmp_path, modelgen.unsupported_op_model()))


def test_scheme_int16x8_and_mixed(tmp_path):
    m16 = _model(tmp_path, _retyped(modelgen.tiny_fc_model(), schema.TensorType.INT16), "a.tflite")
    # weights retyped too: int16 everywhere is "int16"; int16 activations over int8 weights is "int16x8"
    assert scheme(m16) == "int16"
    mm = schema.ModelT.InitFromPackedBuf(bytearray(modelgen.tiny_fc_model()), 0)
    sg = mm.subgraphs[0]
    for i in (0, 3):
        sg.tensors[i].type = schema.TensorType.INT16
    sg.tensors[2].type = schema.TensorType.INT64  # 16x8 FULLY_CONNECTED has int64 bias
    assert scheme(parse_model(modelgen.pack(mm), tmp_path / "b.tflite")) == "int16x8"
    sg.tensors[3].type = schema.TensorType.INT8
    assert scheme(parse_model(modelgen.pack(mm), tmp_path / "c.tflite")) == "mixed (int16, int8)"


def test_inspect_reports_the_scheme_not_a_fixed_int8(tmp_path):
    from fwtool.commands.inspect import inspect_model

    m = _model(tmp_path, modelgen.with_intermediate_tensors())
    r = inspect_model(m, board="pico")
    assert r["tflm"] == {"ok": True, "scheme": "int8"}
    assert not any("model refused" in str(b.get("problems")) for b in r["boards"])
    assert np.isfinite(r["totals"]["macs"])


def test_int8_lstm_from_the_tf_converter_is_accepted():
    """A Keras LSTM converted by TF's converter (fused UNIDIRECTIONAL_SEQUENCE_LSTM, int8 in and out, float32
    ``*_intermediate`` tensors): accepted, scheme int8 (needs TensorFlow + tf_keras; cached conversion)."""
    import models_tf

    path, why = models_tf.corpus_tflite("lstm_fused", "int8")
    assert path is not None, why
    m = load_model(path)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in m.op_names
    assert any(t.name.endswith("_intermediate") and t.dtype == "FLOAT32" for t in m.tensors)
    check_for_tflm(m)
    assert scheme(m) == "int8"
    _, why16 = models_tf.corpus_tflite("lstm_fused", "16x8")  # TFLite has no 16x8 LSTM: the converter says so
    assert "16x8" in why16 and "UNIDIRECTIONAL_SEQUENCE_LSTM" in why16


def test_int16_fully_connected_with_per_channel_weights_is_refused_with_the_converter_fix(tmp_path):
    from fwtool.core.vendor import manifest, require

    m = schema.ModelT.InitFromPackedBuf(bytearray(modelgen.tiny_fc_model()), 0)
    sg = m.subgraphs[0]
    for i in (0, 3):
        sg.tensors[i].type = schema.TensorType.INT16
        sg.tensors[i].quantization.zeroPoint = np.array([0], np.int64)
    w = sg.tensors[1].quantization
    w.scale, w.zeroPoint = np.array([0.25, 0.5, 0.125], np.float32), np.zeros(3, np.int64)  # per output channel
    sg.tensors[2].type = schema.TensorType.INT64
    model = parse_model(modelgen.pack(m), tmp_path / "fc16.tflite")
    with pytest.raises(BadInput, match=r"operator 0 FULLY_CONNECTED \(version 1\) has an int16 input with "
                                       r"per-channel weights \(3 scales\)") as e:
        check_for_tflm(model)
    assert "_experimental_disable_per_channel_quantization_for_dense_layers = True" in e.value.fix
    # the limit is pico-tflmicro's own: its CMSIS-NN FULLY_CONNECTED Prepare() still says so
    try:
        root = require(manifest()["pico-tflmicro"])
    except Exception as err:  # no pinned tree here
        pytest.skip(f"pico-tflmicro tree not available: {err}")
    src = (root / "src/tensorflow/lite/micro/kernels" / tflm_ops()["FULLY_CONNECTED"]["kernel"]).read_text()
    assert "Currently only Int8 is supported for per channel quantization" in src

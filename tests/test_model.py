import pytest

import modelgen
from fwtool.core.errors import BadInput, Exit
from fwtool.model.tflite import check_for_tflm, load_model, parse_model, resolver_calls, tflm_ops


def test_fire_alarm_parsed_from_schema(fire_alarm):
    m = load_model(fire_alarm)
    assert m.size == 3936
    assert m.sha256.startswith("4d5f2cd1842e")
    assert m.op_names == ["RESIZE_NEAREST_NEIGHBOR", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED",
                          "LOGISTIC"]
    assert m.op_versions()["FULLY_CONNECTED"] == 4 and m.op_versions()["RESHAPE"] == 1
    (i,), (o,) = m.inputs, m.outputs
    assert (i.shape, i.dtype, i.zero_point) == ([1, 124, 129, 1], "INT8", [-128])
    assert i.scale[0] == pytest.approx(0.44338235)
    assert (o.shape, o.dtype, o.scale, o.zero_point) == ([1, 1], "INT8", [0.00390625], [-128])
    assert m.subgraph_count == 1 and len(m.operators) == 6
    conv = m.operators[1]
    assert conv.op == "CONV_2D" and conv.options["strideW"] == 2
    check_for_tflm(m)


def test_resolver_calls_are_exactly_the_models_ops(fire_alarm):
    calls = resolver_calls(load_model(fire_alarm))
    assert [c["method"] for c in calls] == ["AddResizeNearestNeighbor", "AddConv2D", "AddMaxPool2D", "AddReshape",
                                            "AddFullyConnected", "AddLogistic"]
    assert {c["op"] for c in calls if c["cmsis_nn"]} == {"CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED"}


def test_op_table_covers_common_ops():
    table = tflm_ops()
    for op, method in [("DEPTHWISE_CONV_2D", "AddDepthwiseConv2D"), ("SOFTMAX", "AddSoftmax"),
                       ("AVERAGE_POOL_2D", "AddAveragePool2D"), ("ADD", "AddAdd"), ("MEAN", "AddMean"),
                       ("QUANTIZE", "AddQuantize"), ("DEQUANTIZE", "AddDequantize")]:
        assert table[op]["method"] == method
    assert "CUSTOM" not in table and len(table) > 80


def _refused(data, match, tmp_path, name="m.tflite"):
    p = tmp_path / name
    p.write_bytes(data)
    with pytest.raises(BadInput, match=match) as e:
        check_for_tflm(load_model(p))
    assert e.value.code == Exit.BAD_INPUT and e.value.fix
    return e.value


def test_float_model_refused_with_quantize_command(tmp_path):
    e = _refused(modelgen.float_model(), "float model", tmp_path)
    assert "fwtool quantize" in e.fix


def test_op_without_kernel_is_named(tmp_path):
    _refused(modelgen.unsupported_op_model(), "HASHTABLE_LOOKUP", tmp_path)


def test_two_subgraphs_refused(tmp_path):
    _refused(modelgen.two_subgraph_model(), "2 subgraphs", tmp_path)


@pytest.mark.parametrize("cut", [8, 100, 1500, 3900])
def test_truncated_model_is_corrupt_not_a_crash(fire_alarm, tmp_path, cut):
    data = fire_alarm.read_bytes()[:cut]
    with pytest.raises(BadInput, match="corrupt or truncated|not a TensorFlow Lite"):
        parse_model(data, tmp_path / "x.tflite")


def test_not_tflite(tmp_path):
    with pytest.raises(BadInput, match="not a TensorFlow Lite model"):
        parse_model(b"\x89PNG\r\n\x1a\n" + bytes(100), "x.png")


def test_missing_file(tmp_path):
    with pytest.raises(BadInput, match="does not exist"):
        load_model(tmp_path / "nope.tflite")

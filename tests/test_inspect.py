"""fwtool inspect: per-layer numbers computed by hand, kernel/CMSIS-NN flags, arena = build's, fit per board,
and the app input-shape contract. The fire_alarm tests need no TensorFlow; the Keras-model tests skip without it.
"""
import json

import pytest

import modelgen
import models_tf as M
from fwtool.firmware import apps
from fwtool.core.boards import get_board
from fwtool.firmware.flow import BuildOptions, plan
from fwtool.core.errors import BadInput, Exit
from fwtool.firmware.families import get_family
from fwtool.firmware.verdict import inspect_model
from fwtool.model import arena
from fwtool.model.inspection import macs
from fwtool.model.tflite import load_model

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")

CMSIS_M0 = "CMSIS-NN (portable C)"
CMSIS_M4 = "CMSIS-NN (DSP)"


@pytest.fixture(scope="module")
def fire_report():
    from modelgen import FIRE_ALARM

    if not FIRE_ALARM.is_file():
        pytest.skip("shared model not found at ../shared/models/fire_alarm.tflite")
    return inspect_model(load_model(FIRE_ALARM))


def test_fire_alarm_layers_params_and_macs_by_hand(fire_report):
    r = fire_report
    assert [(la["op"], la["version"]) for la in r["layers"]] == [
        ("RESIZE_NEAREST_NEIGHBOR", 3), ("CONV_2D", 3), ("MAX_POOL_2D", 2), ("RESHAPE", 1),
        ("FULLY_CONNECTED", 4), ("LOGISTIC", 2)]
    conv, fc = r["layers"][1], r["layers"][4]
    # CONV_2D: 8 filters 8x8x1 over a 32x32x1 input, stride 2 valid -> 13x13x8
    assert conv["output_shape"] == [1, 13, 13, 8]
    assert conv["macs"] == 13 * 13 * 8 * (8 * 8 * 1) == 86_528
    assert conv["params"] == 8 * 8 * 8 * 1 + 8 and conv["param_bytes"] == 512 + 8 * 4
    # FULLY_CONNECTED: 288 inputs -> 1 unit
    assert fc["macs"] == 288 and fc["params"] == 288 + 1
    # RESIZE's size and RESHAPE's shape are int32 constants, not parameters
    assert r["layers"][0]["params"] == 0 and r["layers"][3]["params"] == 0
    assert [la["macs"] for la in r["layers"]] == [0, 86_528, 0, 0, 288, 0]
    assert r["totals"] == {"params": 809, "param_bytes": 836, "macs": 86_816, "model_bytes": 3936, "operators": 6}


def test_fire_alarm_ops_kernels_and_cmsis_flags(fire_report):
    ops = {o["op"]: o for o in fire_report["ops"]}
    assert len(ops) == 6 and all(o["tflm_kernel"] for o in ops.values())
    assert {n for n, o in ops.items() if o["cmsis_nn"]} == {"CONV_2D", "MAX_POOL_2D", "FULLY_CONNECTED"}
    assert ops["CONV_2D"]["kernel"] == "cmsis_nn/conv.cpp" and ops["LOGISTIC"]["kernel"] == "logistic.cpp"
    assert {k: ops["CONV_2D"]["implementation"][k] for k in ("cortex-m0plus", "cortex-m4")} == {"cortex-m0plus": CMSIS_M0, "cortex-m4": CMSIS_M4}
    assert {k: ops["RESIZE_NEAREST_NEIGHBOR"]["implementation"][k] for k in ("cortex-m0plus", "cortex-m4")} == {"cortex-m0plus": "reference",
                                                                "cortex-m4": "reference"}
    assert fire_report["cpus"]["cortex-m4"]["label"] == "M4 (PSoC 6)"
    assert fire_report["tflm"] == {"ok": True, "scheme": "int8"}


def test_arena_is_the_figure_build_uses(fire_report, fire_alarm):
    p = plan(BuildOptions(board="pico", model=fire_alarm))
    # the model's own figure is the host measurement; a board's row uses what a build for it allocates (the figure
    # measured on the family's virtual board when recorded, model/arena.py)
    assert fire_report["arena"]["measured_bytes"] == arena.cached_measure(load_model(fire_alarm))
    pico = next(b for b in fire_report["boards"] if b["board"] == "pico")
    assert pico["ram"]["arena"] == p.fit["ram"]["arena"] and pico["flash"]["required"] == p.fit["flash"]["required"]
    assert pico["runs"] and pico["fits"]
    assert pico["ram"]["margin"] == 270_336 - (p.arena.total + get_family("rp2040").ram_reserve_bytes)


def test_too_big_for_pico_flash_byte_exact_shortfall_but_fits_sparkfun(tmp_path, capsys):
    f = tmp_path / "padded.tflite"
    f.write_bytes(modelgen.padded_model(2_080_000))  # more than pico's flash with any code reserve
    m = load_model(f)
    r = inspect_model(m)
    rows = {b["board"]: b for b in r["boards"]}
    flash = rows["pico"]["flash"]  # the reserve a build would use: measured for this op set if cached, else default
    short = m.size + flash["code_reserve"] - get_board("pico").flash_bytes
    src = "" if flash["code_reserve_source"] == "family default" else f" ({flash['code_reserve_source']})"
    assert short > 0 and flash["code_reserve"] <= get_family("rp2040").code_reserve_bytes
    assert not rows["pico"]["fits"] and rows["pico"]["flash"]["margin"] == -short
    assert rows["pico"]["problems"][0].startswith(f"flash short by {short:,} bytes")
    assert rows["sparkfun_micromod_rp2040"]["fits"] and rows["sparkfun_micromod_rp2040"]["runs"]
    code, out, err = M.run_cli(["inspect", f, "--board", "pico"], capsys)
    assert code == Exit.DOES_NOT_FIT
    assert err.splitlines()[0] == f"error: padded.tflite does not fit pico: flash short by {short:,} bytes " \
        f"(model {m.size:,} + code reserve {flash['code_reserve']:,}{src} > 2,097,152)"
    assert "pico" in out and f"-{short:,}" in out
    code, out, _ = M.run_cli(["inspect", f, "--board", "sparkfun_micromod_rp2040"], capsys)
    assert code == 0


def test_text_output_when_piped_is_a_plain_wide_table(fire_alarm, capsys, monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    code, out, _ = M.run_cli(["inspect", fire_alarm], capsys)
    assert code == 0 and "\x1b[" not in out
    conv = next(ln for ln in out.splitlines() if " CONV_2D " in ln)
    assert conv.split()[:8] == ["1", "CONV_2D", "3", "int8", "1x13x13x8", "520", "86,528", "cmsis_nn/conv"]
    assert CMSIS_M0 in conv and CMSIS_M4 in conv  # one row, not wrapped at 80 columns
    assert "M0+ (RP2040)" in out and "M4 (PSoC 6)" in out and "A72 (Pi 4)" in out
    assert conv.split()[-1] == "reference"  # the Cortex-A columns: CMSIS-NN is Cortex-M only
    assert "total   809 parameters (836 B), 86,816 MACs per inference, model 3,936 B" in out
    assert "kernels 3 CMSIS-NN (CONV_2D, MAX_POOL_2D, FULLY_CONNECTED), 3 reference" in out
    assert "input   int8 1x124x129x1" in out
    # a board row whose code part is the family's default reserve says so; a measured one carries no mark
    rows = {ln.split()[0]: ln for ln in out.splitlines()[out.splitlines().index(next(
        ln for ln in out.splitlines() if ln.startswith("board "))) + 1:] if ln and not ln.startswith("*")}
    report = json.loads(M.run_cli(["inspect", fire_alarm, "--json"], capsys)[1])
    for b in report["boards"]:
        starred = rows[b["board"]].split()[1].endswith("*")
        assert starred == (b["flash"]["code_reserve_source"] == "family default"), rows[b["board"]]
    assert ("* code estimated" in out) == any(b["flash"]["code_reserve_source"] == "family default"
                                              for b in report["boards"])


def test_json_report(fire_alarm, capsys):
    code, out, _ = M.run_cli(["inspect", fire_alarm, "--board", "pico", "--json"], capsys)
    r = json.loads(out)
    assert code == 0 and [b["board"] for b in r["boards"]] == ["pico"]
    # "target": a build already measured the arena on the virtual board (the figure a build then uses)
    assert r["totals"]["macs"] == 86_816 and r["arena"]["source"] in ("measured", "target")
    assert r["model"]["inputs"][0]["shape"] == [1, 124, 129, 1]


def test_float_model_is_flagged_with_the_fix(tmp_path, capsys):
    f = tmp_path / "f.tflite"
    f.write_bytes(modelgen.float_model())
    r = inspect_model(load_model(f), board="pico")
    assert not r["tflm"]["ok"] and "float model" in r["tflm"]["error"]
    assert "fwtool quantize" in r["tflm"]["fix"] and not r["boards"][0]["runs"]
    code, out, err = M.run_cli(["inspect", f, "--board", "pico"], capsys)
    assert code == Exit.BAD_INPUT and "TFLM    refused" in out
    assert err.startswith("error: f.tflite is a float model")


def test_op_without_tflm_kernel_is_named(tmp_path):
    f = tmp_path / "u.tflite"
    f.write_bytes(modelgen.unsupported_op_model())
    r = inspect_model(load_model(f), board="pico")
    last = r["layers"][-1]
    assert last["op"] == "HASHTABLE_LOOKUP" and not last["tflm_kernel"]
    assert last["implementation"]["cortex-m0plus"] == "no TFLM kernel"
    assert "HASHTABLE_LOOKUP" in r["tflm"]["error"] and not r["boards"][0]["runs"]


def test_keras_model_without_representative_is_refused(tmp_path, capsys):
    (tmp_path / "m.keras").write_bytes(b"PK")
    code, _, err = M.run_cli(["inspect", tmp_path / "m.keras"], capsys)
    assert code == Exit.BAD_INPUT and "--representative DATA.npy" in err


def test_macs_rules_for_depthwise_and_transpose_conv():
    """Synthetic operators through the same rules (no such layers in the shared models)."""
    from fwtool.model.tflite import Model, Operator, Tensor

    def t(i, shape, const=False):
        return Tensor(i, f"t{i}", shape, "INT8", [1.0], [0], 4 if const else 0)

    tensors = [t(0, [1, 10, 10, 6]), t(1, [1, 3, 3, 6], True), t(2, [6], True), t(3, [1, 8, 8, 6]),
               t(4, [4], True), t(5, [5, 3, 3, 6], True), t(6, [1, 20, 20, 5])]
    m = Model(path=None, data=b"", sha256="", op_codes=[], subgraph_count=1, tensors=tensors, operators=[],
              inputs=[], outputs=[])
    dw = Operator(0, "DEPTHWISE_CONV_2D", 1, [0, 1, 2], [3])
    tc = Operator(1, "TRANSPOSE_CONV", 1, [4, 5, 3], [6])
    assert macs(dw, m) == 8 * 8 * 6 * 3 * 3  # out_h*out_w*channels*k_h*k_w
    assert macs(tc, m) == (8 * 8 * 6) * 5 * 3 * 3  # every input element scatters a k_h*k_w*out_c patch


# --------------------------------------------------------------------------------- app input-shape contract

def test_app_contract_refuses_a_model_naming_both_shapes(tmp_path, monkeypatch, fire_alarm, capsys):
    monkeypatch.setattr(apps, "resource_dir", M.app_resource_dir(tmp_path, [1, 124, 129, 1]))
    plan(BuildOptions(board="pico", model=fire_alarm, app="audio"))  # matches: accepted
    wrong = tmp_path / "kws.tflite"
    wrong.write_bytes(M.reshaped_input_model([1, 49, 40, 1]))
    with pytest.raises(BadInput) as e:
        plan(BuildOptions(board="pico", model=wrong, app="audio"))
    assert "1x49x40x1" in e.value.cause and "1x124x129x1" in e.value.cause and e.value.code == Exit.BAD_INPUT
    code, _, err = M.run_cli(["build", "-b", "pico", "-m", wrong, "--app", "audio", "--out", tmp_path / "b"], capsys)
    assert code == Exit.BAD_INPUT
    assert err.splitlines()[0] == ("error: model input 'input_1' is 1x49x40x1 but app 'audio' feeds 1x124x129x1")
    assert not (tmp_path / "b").exists()  # refused before anything was generated
    r = inspect_model(load_model(wrong), board="pico", app="audio")
    assert not r["boards"][0]["app"]["ok"] and not r["boards"][0]["runs"]


def test_app_contract_dtype(tmp_path, monkeypatch, fire_alarm):
    monkeypatch.setattr(apps, "resource_dir", M.app_resource_dir(tmp_path, [1, 124, 129, 1], dtype="int16"))
    with pytest.raises(BadInput, match="is int8 but app 'audio' feeds int16"):
        plan(BuildOptions(board="pico", model=fire_alarm, app="audio"))


# ------------------------------------------------------------------------------------ Keras models (TensorFlow)

def test_conv_model_numbers_by_hand():
    r = inspect_model(load_model(M.quantized("conv")), board="pico")
    conv, pool, reshape, fc, sig = r["layers"]
    assert conv["output_shape"] == [1, 61, 64, 4]  # (124-3)//2+1, (129-3)//2+1
    assert conv["macs"] == 61 * 64 * 4 * 3 * 3 * 1 and conv["params"] == 4 * 3 * 3 * 1 + 4
    assert pool["output_shape"] == [1, 30, 32, 4] and reshape["output_shape"] == [1, 3840]
    assert fc["macs"] == 3840 and fc["params"] == 3840 + 1
    assert r["totals"]["params"] == 40 + 3841 and r["totals"]["macs"] == 140_544 + 3840
    assert conv["implementation"]["cortex-m0plus"] == CMSIS_M0 and sig["implementation"]["cortex-m4"] == "reference"
    assert r["boards"][0]["runs"]


def test_dense_model_numbers_by_hand():
    r = inspect_model(load_model(M.quantized("dense")), board="pico")
    fc1, fc2, sm = r["layers"]
    assert (fc1["params"], fc1["macs"]) == (16 * 16 + 16, 16 * 16)
    assert (fc2["params"], fc2["macs"]) == (16 * 3 + 3, 16 * 3)
    assert sm["op"] == "SOFTMAX" and sm["cmsis_nn"] and sm["implementation"]["cortex-m0plus"] == CMSIS_M0
    assert r["totals"]["params"] == 323 and r["totals"]["macs"] == 304
    # TFLM aborts the whole process for some arena sizes just below this model's minimum (1984 B here); the
    # measurement survives that and still finds the smallest size that runs
    from fwtool.model import arena, host

    m = load_model(M.quantized("dense"))
    measured = r["arena"]["measured_bytes"]
    with host.quiet_native_output():
        assert arena.runs(m, measured)
    assert 1024 < measured < 8192


def test_deliberately_too_big_models_fit_decisions(capsys):
    big = load_model(M.quantized("big_flash"))
    r = inspect_model(big)
    rows = {b["board"]: b for b in r["boards"]}
    # untrained: all-zero biases, which the converter drops (FULLY_CONNECTED with bias index -1)
    assert r["totals"]["params"] == 1024 * 2048 + 2048 * 1 and r["totals"]["macs"] == 1024 * 2048 + 2048
    short = big.size + rows["pico"]["flash"]["code_reserve"] - 2_097_152
    assert rows["pico"]["flash"]["margin"] == -short < 0 and not rows["pico"]["fits"]
    assert rows["pico"]["ram"]["margin"] > 0  # flash is the only problem
    assert rows["sparkfun_micromod_rp2040"]["fits"]  # 16 MiB flash
    ram = load_model(M.quantized("big_ram"))
    r = inspect_model(ram, board="pico")
    row = r["boards"][0]
    assert r["arena"]["measured_bytes"] >= 96 * 96 * 32  # the conv output alone
    assert row["flash"]["margin"] > 0 and row["ram"]["margin"] < 0 and not row["fits"]
    assert row["problems"] == [f"RAM short by {-row['ram']['margin']:,} bytes (arena {r['arena']['arena_bytes']:,} "
                               f"+ reserve 24,576 > 270,336)"]
    code, _, err = M.run_cli(["build", "-b", "pico", "-m", M.quantized("big_ram")], capsys)
    assert code == Exit.DOES_NOT_FIT and f"RAM short by {-row['ram']['margin']:,} bytes" in err


def test_app_contract_with_quantized_keras_models(tmp_path, monkeypatch):
    monkeypatch.setattr(apps, "resource_dir", M.app_resource_dir(tmp_path, [1, 124, 129, 1]))
    plan(BuildOptions(board="pico", model=M.quantized("conv"), app="audio"))
    with pytest.raises(BadInput) as e:
        plan(BuildOptions(board="pico", model=M.quantized("dense"), app="audio"))
    assert "is 1x16 but app 'audio' feeds 1x124x129x1" in e.value.cause


def test_inspect_keras_with_representative_uses_the_build_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path / "cache"))
    d = M.dense_model()
    code, out, err = M.run_cli(["inspect", d["keras"], "-r", d["rep"], "--board", "pico", "--json"], capsys)
    assert code == 0, err
    r = json.loads(out)
    assert r["model"]["sha256"] == load_model(M.quantized("dense")).sha256
    assert "quantized to int8" in r["notes"][0]
    assert list((tmp_path / "cache" / "models").glob("*/dense.tflite"))

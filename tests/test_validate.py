"""fwtool validate without a target (always run): inputs, output-line parsing, metrics, and the whole flow with the
target faked at the protocol level (the FWT:OUT lines a board would print). The real run: test_validate_e2e.py."""
import json
import sys

import numpy as np
import pytest

import modelgen
from fwtool.firmware.result import BuildResult
from fwtool.core import protocol
from fwtool.core.errors import BadInput, DoesNotFit, Exit, FwtoolError
from fwtool.model import host
from fwtool.model.tflite import Tensor, load_model
from fwtool.emulator.targets import Rp2040js
from fwtool.validate import compare, reference, vectors
from fwtool.validate import flow as validate


def _tensor(shape=(1, 4), dtype="INT8", scale=0.5, zp=-10, name="t"):
    return Tensor(index=0, name=name, shape=list(shape), dtype=dtype, scale=[scale], zero_point=[zp], buffer_bytes=0)


# -- inputs ------------------------------------------------------------------------------------------------------


def test_random_inputs_are_seeded_full_range_and_typed():
    t = _tensor((1, 50, 40))
    a, b = vectors.random_inputs(t, 20, seed=3), vectors.random_inputs(t, 20, seed=3)
    assert a.shape == (20, 1, 50, 40) and a.dtype == np.int8 and np.array_equal(a, b)
    assert not np.array_equal(a, vectors.random_inputs(t, 20, seed=4))
    assert a.min() == -128 and a.max() == 127
    assert vectors.random_inputs(_tensor(dtype="UINT8"), 5).dtype == np.uint8


@pytest.mark.parametrize("shape", [(3, 1, 4), (3, 4), (3, 2, 2)])
def test_inputs_file_shapes(tmp_path, shape):
    p = tmp_path / "x.npy"
    np.save(p, np.arange(12, dtype=np.int8).reshape(shape))
    v = vectors.load_inputs(p, _tensor())
    assert v.shape == (3, 1, 4) and v.dtype == np.int8 and v[2, 0, 3] == 11
    assert vectors.load_inputs(p, _tensor(), limit=2).shape == (2, 1, 4)


def test_inputs_file_single_vector_and_float_quantization(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.array([[0.0, 0.5, -100.0, 1000.0]], dtype=np.float32))
    v = vectors.load_inputs(p, _tensor(scale=0.5, zp=-10))
    assert v.tolist() == [[[-10, -9, -128, 127]]]  # q = round(x / 0.5) - 10, clipped


@pytest.mark.parametrize("arr, message", [
    (np.zeros((3, 5), np.int8), "needs 1x4 per vector"),
    (np.array([[1, 2, 3, 300]]), "outside int8"),
    (np.array([["a", "b", "c", "d"]]), "holds <U1"),
])
def test_bad_inputs_files(tmp_path, arr, message):
    p = tmp_path / "x.npy"
    np.save(p, arr)
    with pytest.raises(BadInput, match=message):
        vectors.load_inputs(p, _tensor())


def test_unreadable_or_missing_inputs(tmp_path):
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    with pytest.raises(BadInput, match="cannot read"):
        vectors.load_inputs(tmp_path / "x.npy", _tensor())
    with pytest.raises(BadInput, match="does not exist"):
        vectors.load_inputs(tmp_path / "y.npy", _tensor())


# -- the firmware's lines ----------------------------------------------------------------------------------------


def _lines(outputs, us=22000, banner=True, done=True, inputs_sha=None, extra=()):
    lines = ["FWT:BOOT model=m sha256=abc board=pico arena=1 arena_used=1 ops=1 in=int8:1x4 out=int8:1x4 labels=a "
             "fwtool=0.1.0"] if banner else []
    lines += list(extra)
    for v, per_tensor in enumerate(outputs):
        for t, q in enumerate(per_tensor):
            lines.append(f"FWT:OUT v={v} t={t} us={us + v} q={','.join(map(str, q))}")
    if done:
        lines.append(f"FWT:DONE n={len(outputs)} inputs={inputs_sha or 'none'}")
    return lines


def test_output_lines_format_is_defined_once_in_protocol():
    f = protocol.c_formats()
    assert f["out"] == "FWT:OUT v=%lu t=%lu us=%lu" and f["out_vector"] == {"name": "q", "conv": "%ld"}
    assert f["done"] == "FWT:DONE n=%lu inputs=%s"
    rec = protocol.parse_line("noise FWT:OUT v=2 t=1 us=99 q=-128,0,127")
    assert (rec.v, rec.t, rec.us, rec.q) == (2, 1, 99, [-128, 0, 127])
    assert protocol.parse_line("FWT:DONE n=20 inputs=00ff").to_dict() == {"type": "done", "n": 20, "inputs": "00ff"}
    assert protocol.parse_line("FWT:OUT v=x t=1 us=1 q=1") is None
    assert protocol.parse_line("FWT:OUT v=1 t=1 us=1") is None  # q is required


def test_parse_device_lines_takes_the_last_complete_run():
    first = _lines([[[1, 2]]])
    second = _lines([[[5, 6], [7]], [[8, 9], [10]]], inputs_sha="beef")
    run = compare.parse_device_lines(first + ["garbage", "FWT:OUT v=0"] + second, 2, 2)
    assert [[a.tolist() for a in v] for v in run.outputs] == [[[5, 6], [7]], [[8, 9], [10]]]
    assert run.us == [22000, 22001] and run.banner["model"] == "m" and run.inputs_sha == "beef"


def test_parse_device_lines_failures():
    with pytest.raises(FwtoolError, match=r"did not finish \(FWT:DONE missing; 1 of 3") as e:
        compare.parse_device_lines(_lines([[[1]]], done=False), 3, 1)
    assert e.value.code == Exit.TIMEOUT
    with pytest.raises(FwtoolError, match="ran 1 vectors, this validation has 2") as e:
        compare.parse_device_lines(_lines([[[1]]]), 2, 1)
    assert e.value.code == Exit.MISMATCH
    with pytest.raises(FwtoolError, match="misses 2 tensor line"):
        compare.parse_device_lines(_lines([[[1]], [[2]]]), 2, 2)
    with pytest.raises(FwtoolError, match="reported: AllocateTensors failed"):
        compare.parse_device_lines(["FWT:ERROR AllocateTensors failed: arena too small"] * 3, 2, 1)


# -- metrics -----------------------------------------------------------------------------------------------------


def test_metrics_by_hand():
    t = _tensor((1, 3), zp=0)
    dev = [np.array([10, 0, 0]), np.array([0, 5, 1]), np.array([3, 3, 4])]
    ref = [np.array([10, 0, 0]), np.array([0, 4, 1]), np.array([3, 5, 4])]
    r = compare.compare_output(0, t, dev, ref, max_diff=1, min_agreement=60)
    assert r["max_abs_diff"] == 2 and r["mean_abs_diff"] == pytest.approx(3 / 9, abs=1e-6)
    assert r["top1_agreement"] == pytest.approx(66.67) and r["top1_rule"] == "argmax"  # vector 2: 4 vs 5 wins
    d, f = np.array([10, 0, 0, 0, 5, 1, 3, 3, 4.0]), np.array([10, 0, 0, 0, 4, 1, 3, 5, 4.0])
    assert r["cosine"] == pytest.approx(d @ f / np.linalg.norm(d) / np.linalg.norm(f), abs=1e-6)
    assert not r["pass"] and "max |Δ| 2 > 1 (vector 2, value 1: device 3, reference 5)" in r["problems"][0]
    r = compare.compare_output(0, t, dev, ref, max_diff=2, min_agreement=60)
    assert r["pass"] and r["differing_values"] == 2


def test_single_value_output_agreement_is_the_decision_at_mid_range():
    t = _tensor((1, 1), zp=-128, scale=1 / 256)
    dev = [np.array([v]) for v in (-128, -1, 0, 127)]
    ref = [np.array([v]) for v in (-127, 0, 1, 126)]
    r = compare.compare_output(0, t, dev, ref, max_diff=1, min_agreement=100)
    assert r["top1_rule"] == "q >= mid" and r["top1_agreement"] == 75.0 and r["max_abs_diff"] == 1
    assert r["problems"] == ["top-1 agreement 75 % < 100 %"]
    assert compare.top1(np.array([128], dtype=np.int64), "UINT8") == 1
    assert compare.top1(np.array([127], dtype=np.int64), "UINT8") == 0


def test_metrics_size_mismatch_and_zero_vectors():
    t = _tensor((1, 2))
    r = compare.compare_output(0, t, [np.array([1, 2])], [np.array([1, 2, 3])], 1, 100)
    assert not r["pass"] and "sizes differ" in r["problems"][0]
    assert compare.cosine(np.zeros(3), np.zeros(3)) == 1.0 and compare.cosine(np.zeros(3), np.ones(3)) == 0.0


# -- the whole flow, target faked at the protocol level -----------------------------------------------------------


def _wrong_model(tmp_path):
    """fire_alarm with its FULLY_CONNECTED weights negated: same signature, different answers."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    m = modelgen.load()
    sg = m.subgraphs[0]
    for op in sg.operators:
        code = m.operatorCodes[op.opcodeIndex]
        if max(code.builtinCode, code.deprecatedBuiltinCode) == schema.BuiltinOperator.FULLY_CONNECTED:
            buf = m.buffers[sg.tensors[op.inputs[1]].buffer]
            w = np.frombuffer(bytes(buf.data), dtype=np.int8).astype(np.int16)
            buf.data = np.clip(-w, -127, 127).astype(np.int8).view(np.uint8)
    p = tmp_path / "wrong.tflite"
    p.write_bytes(modelgen.pack(m))
    return p


@pytest.fixture
def fake_target(monkeypatch, tmp_path):
    """Replace the build and the emulator run: the 'device' answers with the reference outputs + ``perturb``."""
    state = {"perturb": 0, "us": 22000, "runs": 0}

    def build_firmware(opts, model, vecs, source, on_line=None, on_step=None):
        state["vectors"], state["model"] = vecs, model
        return BuildResult.from_report({"board": {"name": "pico"}, "files": {"uf2": str(tmp_path / "firmware.uf2")},
                                        "build": {"tflm_cores": opts.tflm_cores or 2,
                                                  "notes": ["--tflm-cores 1: patched"]}}, tmp_path)

    def run_on_emulator(self, image, until, count, timeout, on_line, on_step):  # the virtual target's run
        state["runs"] += 1
        ref = reference.reference_outputs(state["model"], state["vectors"])
        outs = [[np.clip(o + state["perturb"], -128, 127) for o in per] for per in ref]
        lines = _lines([[o.tolist() for o in per] for per in outs], us=state["us"],
                       inputs_sha=vectors.vectors_sha(state["vectors"]))
        lines[0] = lines[0].replace("sha256=abc", f"sha256={state['model'].sha256[:12]}")
        return lines, {"kind": "emulator", "emulated_us": 1, "wall_s": 0.1, "clock_mhz": 125}

    def build_image(opts, on_line=None, on_step=None):  # the image fwtool build makes (validate's default)
        state["model"] = load_model(opts.model)
        return build_firmware(opts, state["model"], None, None)

    def console_run(tgt, image, vecs, n_outputs, timeout, on_line=None, on_step=None):  # vectors over its console
        state["vectors"] = vecs
        lines, info = run_on_emulator(tgt, image, None, 1, timeout, on_line, on_step)
        return compare.parse_device_lines(lines, len(vecs[0]), n_outputs), lines, info

    monkeypatch.setattr(validate, "build_firmware", build_firmware)
    monkeypatch.setattr(validate, "build_image", build_image)
    monkeypatch.setattr(validate.console, "run", console_run)
    monkeypatch.setattr(Rp2040js, "run", run_on_emulator)
    return state


def test_validate_passes_when_the_device_matches(fire_alarm, fake_target):
    r = validate.run(validate.ValidateOptions(model=fire_alarm, count=5))
    assert r["ok"] and r["exit_code"] == 0 and fake_target["runs"] == 1
    o = r["outputs"][0]
    assert (o["max_abs_diff"], o["top1_agreement"], o["cosine"]) == (0, 100.0, 1.0)
    assert r["inputs"]["count"] == 5 and "seed 0" in r["inputs"]["source"]
    assert r["latency"]["p50_ms"] == 22.002 and "estimate" in r["timing_note"]
    assert any("same value for all 5 inputs" in w for w in r["warnings"])  # random inputs saturate fire_alarm
    json.dumps(r)  # the --json report is serializable
    assert r["firmware"]["mode"] == "image"  # fwtool build's image, the vectors over its console


def test_embedded_vectors_and_targets_that_cannot_be_fed_use_the_validate_app(fire_alarm, fake_target):
    r = validate.run(validate.ValidateOptions(model=fire_alarm, count=2, embedded=True))
    assert r["ok"] and r["firmware"]["mode"] == "validate-app" and fake_target["runs"] == 1


def test_validate_tolerates_one_step_and_fails_beyond(fire_alarm, fake_target):
    fake_target["perturb"] = 1
    assert validate.run(validate.ValidateOptions(model=fire_alarm, count=3))["ok"]
    fake_target["perturb"] = 2
    r = validate.run(validate.ValidateOptions(model=fire_alarm, count=3))
    assert not r["ok"] and r["exit_code"] == Exit.MISMATCH and "max |Δ| 2 > 1" in r["problems"][0]
    assert validate.run(validate.ValidateOptions(model=fire_alarm, count=3, max_diff=2))["ok"]


def test_validate_fails_against_a_wrong_reference_model(fire_alarm, fake_target, tmp_path):
    r = validate.run(validate.ValidateOptions(model=fire_alarm, count=4, reference_model=_wrong_model(tmp_path)))
    o = r["outputs"][0]
    assert not r["ok"] and o["top1_agreement"] == 0.0 and o["max_abs_diff"] == 255
    assert r["reference"]["model"] == "wrong"


def test_validate_budget(fire_alarm, fake_target):
    fake_target["us"] = 40000
    r = validate.run(validate.ValidateOptions(model=fire_alarm, count=2, budget_ms=32))
    assert not r["ok"] and "exceeds the 32 ms budget" in r["problems"][0]


def test_validate_refuses_incompatible_or_float_models(fire_alarm, fake_target, tmp_path):
    p = tmp_path / "float.tflite"
    p.write_bytes(modelgen.float_model())
    with pytest.raises(BadInput, match="float32"):
        validate.run(validate.ValidateOptions(model=p))
    with pytest.raises(BadInput, match="float32"):
        validate.run(validate.ValidateOptions(model=fire_alarm, reference_model=p))


def test_too_many_vectors_do_not_fit(fire_alarm):
    model = load_model(fire_alarm)
    vecs = vectors.random_inputs(model.inputs[0], 200)  # 200 x 16 KB > 2 MB
    with pytest.raises(DoesNotFit, match="200 input vectors of 15,996 B") as e:
        validate.build_firmware(validate.ValidateOptions(model=fire_alarm), model, vecs, "random")
    from fwtool.firmware.families import get_family
    n = (2 * 1024 * 1024 - model.size - get_family("rp2040").code_reserve_bytes) // 15_996  # 116 with 224 KiB
    assert e.value.fix == f"validate with --count {n} or fewer"
    # the build's own fit check refused it, counting the embedded vectors
    assert isinstance(e.value.__cause__, DoesNotFit) and f"inputs {200 * 15_996:,}" in e.value.__cause__.cause


def test_validate_build_counts_the_embedded_vectors_in_the_fit(fire_alarm, monkeypatch):
    from fwtool.firmware import flow as build_flow
    from fwtool.firmware.families import get_family
    from fwtool.firmware.plan import plan

    model = load_model(fire_alarm)
    vecs = vectors.random_inputs(model.inputs[0], 5)
    seen = {}

    def planned_only(opts, on_line=None, on_step=None, **kw):
        p = plan(opts)
        seen.update(opts=opts, fit=p.fit, sha=p.inputs_sha)
        raise FwtoolError("planned")

    monkeypatch.setattr(build_flow, "run", planned_only)
    with pytest.raises(FwtoolError, match="planned"):
        validate.build_firmware(validate.ValidateOptions(model=fire_alarm), model, vecs, "random")
    assert seen["opts"].app == "validate" and len(seen["opts"].inputs) == 5 and seen["opts"].tflm_cores == 2  # one image: dual-core on the virtual board too
    assert seen["fit"]["flash"]["input"] == vecs.nbytes == 5 * 15_996
    flash = seen["fit"]["flash"]  # the measured reserve of an earlier validate build, else the family default
    assert flash["required"] == model.size + vecs.nbytes + flash["code_reserve"]
    assert flash["code_reserve"] <= get_family("rp2040").code_reserve_bytes
    assert seen["sha"] == vectors.vectors_sha(vecs)  # what the firmware prints as FWT:DONE inputs=


def test_validate_command_exit_codes(fire_alarm, fake_target, tmp_path, capsys):
    from fwtool import cli

    def main(*args):
        with pytest.raises(SystemExit) as e:
            cli.main(["validate", "--model", str(fire_alarm), *args])
        return e.value.code, capsys.readouterr()

    code, cap = main("--count", "3")
    assert code == 0 and "result    PASS" in cap.out and "max |Δ| 0" in cap.out
    code, cap = main("--count", "3", "--reference-model", str(_wrong_model(tmp_path)), "--json")
    report = json.loads(cap.out)
    assert code == Exit.MISMATCH == report["exit_code"] and not report["ok"]
    code, cap = main("--inputs", str(tmp_path / "missing.npy"))
    assert code == Exit.BAD_INPUT and "does not exist" in cap.err


def test_tflite_reference_agrees_with_tflm_on_fire_alarm(fire_alarm):
    pytest.importorskip("tensorflow", reason="--reference tflite needs tensorflow (pip install 'fwtool[tf]')")
    model = load_model(fire_alarm)
    vecs = vectors.random_inputs(model.inputs[0], 3, seed=1)
    vecs[2] = model.inputs[0].zero_point[0]  # one all-background input
    a = reference.reference_outputs(model, vecs, "tflm")
    b = reference.reference_outputs(model, vecs, "tflite")
    assert [[x.tolist() for x in v] for v in a] == [[x.tolist() for x in v] for v in b]


def test_a_crashing_reference_interpreter_is_one_error_with_exit_3(fire_alarm, fake_target, monkeypatch, capsys):
    """A native crash of the TFLM interpreter (faked at the process level: the child kills itself with SIGSEGV)
    ends validate with one line and exit 3, and fwtool itself survives."""
    from fwtool import cli

    monkeypatch.setattr(host, "child_command", lambda module, args: [
        sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"])
    with pytest.raises(FwtoolError) as e:
        validate.run(validate.ValidateOptions(model=fire_alarm, count=2))
    assert e.value.code == Exit.BAD_INPUT == 3 and fake_target["runs"] == 0
    assert e.value.cause == ("the TFLM interpreter crashed on this model (SIGSEGV) — the model is malformed or uses "
                             "an unsupported op version")
    with pytest.raises(SystemExit) as ex:
        cli.main(["validate", "--model", str(fire_alarm), "--count", "2"])
    err = capsys.readouterr().err
    assert ex.value.code == 3 and "error: the TFLM interpreter crashed on this model (SIGSEGV)" in err
    assert "Traceback" not in err


def test_reference_interpreter_errors_are_one_line(fire_alarm, monkeypatch):
    model = load_model(fire_alarm)
    monkeypatch.setattr(host, "DEFAULT_ARENA", 4096)  # too small: AllocateTensors fails (an error, not a crash)
    with pytest.raises(FwtoolError) as e:
        reference.reference_outputs(model, vectors.random_inputs(model.inputs[0], 1))
    assert e.value.cause == "the TFLM reference interpreter could not run fire_alarm.tflite: TFLM failed to allocate " \
                            "tensors"

"""fwtool profile: the FWT:PROF / FWT:PROFRUN lines (formats the firmware prints == what the host parses), the
per-layer table built from them (event -> operator, MACs, cycles, share, the sum-vs-invoke tolerance), --compare,
and a real profile of fire_alarm on the virtual board (skipped without SDK trees / toolchain / Node)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fwtool.core import protocol, protocol_profile
from fwtool.core.errors import FwtoolError
from fwtool.model.tflite import load_model
from fwtool.profile import compare, layers

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "templates" / "apps" / "profile"
FIRE_OPS = ["RESIZE_NEAREST_NEIGHBOR", "CONV_2D", "MAX_POOL_2D", "RESHAPE", "FULLY_CONNECTED", "LOGISTIC"]


def printf(fmt: str, *args) -> str:
    """What the firmware's printf makes of one of protocol's formats (%lu/%s only in these lines)."""
    return fmt.replace("%lu", "%d") % args


# ---- the lines ------------------------------------------------------------------------------------------------

def test_printed_lines_parse_back_to_the_same_values():
    f = protocol.c_formats()
    ev = protocol.parse_line(printf(f["prof"], 2, 5, 22100, 56, "FULLY_CONNECTED"))
    assert isinstance(ev, protocol.ProfileEvent)
    assert (ev.r, ev.i, ev.t, ev.us, ev.op, ev.end) == (2, 5, 22100, 56, "FULLY_CONNECTED", 22156)
    run = protocol.parse_line(printf(f["profrun"], 2, 22162, 6, 0, 18020))
    assert isinstance(run, protocol.ProfileRun)
    assert (run.r, run.us, run.events, run.dropped, run.arena_used) == (2, 22162, 6, 0, 18020)


def test_prefixes_do_not_shadow_each_other_and_prefix_text_is_allowed():
    assert isinstance(protocol.parse_line("[12.3] FWT:PROF r=1 i=0 t=0 us=1 op=ADD"), protocol.ProfileEvent)
    assert isinstance(protocol.parse_line("FWT:PROFRUN r=1 us=9 events=1 dropped=0 arena_used=1"),
                      protocol.ProfileRun)
    assert isinstance(protocol.parse_line("FWT:DONE n=3 inputs=none"), protocol.Done)


@pytest.mark.parametrize("line", [
    "FWT:PROF r=1 i=0 t=0 us=1",                      # no op
    "FWT:PROF r=1 i=0 t=0 us=-4 op=ADD",              # negative
    "FWT:PROF r=1 i=x t=0 us=4 op=ADD",               # not a number
    "FWT:PROFRUN r=1 us=9 events=1 arena_used=1",     # no dropped
    "FWT:PROFILE r=1",                                # another word
])
def test_malformed_lines_are_free_text(line):
    assert protocol.parse_line(line) is None


def test_the_app_prints_with_protocols_formats():
    src = (APP / "main.cpp.j2").read_text()
    assert '#define FWTOOL_FMT_PROF "{{ fmt.prof }}"' in src
    assert '#define FWTOOL_FMT_PROFRUN "{{ fmt.profrun }}"' in src
    # one printf per line kind, with exactly the formats' argument count
    for name, fields in (("PROF", protocol_profile.PROF_FIELDS), ("PROFRUN", protocol_profile.PROFRUN_FIELDS),
                         ("SPLIT", protocol_profile.SPLIT_FIELDS)):
        call = re.search(r"printf\(FWTOOL_FMT_%s \"\\n\",(.*?)\);" % name, src, re.S)
        assert call, name
        assert call.group(1).count(",") + 1 == len(fields)
    assert "MicroProfilerInterface" in src and "&recorder" in src


# ---- the table --------------------------------------------------------------------------------------------------

def session(runs: list[tuple[list[tuple[int, int, str]], int]], arena_used: int = 18020) -> list[str]:
    """Serial lines of a profile session: per run ([(t, us, op)], invoke_us)."""
    f = protocol.c_formats()
    lines = ["FWT:BOOT model=fire_alarm sha256=4d5f2cd1842e board=pico arena=20736 arena_used=18020 ops=6 "
             "in=int8:1x124x129x1 out=int8:1x1 labels=a fwtool=0.1.0"]
    for r, (events, invoke) in enumerate(runs, 1):
        lines += [printf(f["prof"], r, i, t, us, op) for i, (t, us, op) in enumerate(events)]
        lines.append(printf(f["profrun"], r, invoke, len(events), 0, arena_used))
    return lines + ["FWT:DONE n=%d inputs=none" % len(runs)]


FIRE_RUN = [(2, 4471, "RESIZE_NEAREST_NEIGHBOR"), (4474, 17015, "CONV_2D"), (21490, 602, "MAX_POOL_2D"),
            (22093, 6, "RESHAPE"), (22100, 56, "FULLY_CONNECTED"), (22157, 4, "LOGISTIC")]


def test_fire_alarm_table_from_lines(fire_alarm):
    model = load_model(fire_alarm)
    slow = [(t, us + (100 if op == "CONV_2D" else 0), op) for t, us, op in FIRE_RUN]
    cap = layers.parse_lines(session([(FIRE_RUN, 22162), (slow, 22262), (FIRE_RUN, 22163)]))
    t = layers.layer_table(model, cap, 125e6, "cortex-m0plus")
    assert [r["op"] for r in t["layers"]] == FIRE_OPS
    conv = t["layers"][1]
    assert conv["us"] == 17015 and conv["us_runs"] == [17015, 17115, 17015]  # median of the runs
    assert conv["cycles"] == 17015 * 125
    # MACs from the tensor shapes: output elements x kernel h x kernel w x input channels
    op = model.operators[1]
    out, filt = model.tensors[op.outputs[0]], model.tensors[op.inputs[1]]
    assert conv["macs"] == out.elements * filt.shape[1] * filt.shape[2] * filt.shape[3]
    assert conv["macs_per_cycle"] == pytest.approx(conv["macs"] / (17015 * 125))
    assert conv["kernel"] == "CMSIS-NN" and conv["implementation"] == "CMSIS-NN (portable C)"
    assert t["layers"][0]["kernel"] == "reference" and t["layers"][0]["macs"] is None
    assert t["invoke_us"] == 22163 and t["layers_us"] == 22154
    assert t["agrees"] and not t["warnings"]
    assert sum(r["share"] for r in t["layers"]) == pytest.approx(22154 / 22163)
    assert t["arena_used"] == 18020
    assert [o["op"] for o in t["ops"]] == FIRE_OPS


def test_split_lines_give_each_cores_busy_time_per_layer(fire_alarm):
    """FWT:SPLIT (the profile build's timing of pico-tflmicro's split matrix product) after a layer's FWT:PROF:
    core 0 is busy for the layer minus its wait for core 1, core 1 for its share; medians over the runs."""
    f = protocol.c_formats()
    assert f["split"] == "FWT:SPLIT r=%lu i=%lu calls=%lu c0=%lu c1=%lu wait=%lu"
    lines = session([(FIRE_RUN, 22162)] * 3)
    lines[0] += " cores=2 clock_mhz=125 opt=size"
    at = [i for i, ln in enumerate(lines) if ln.startswith("FWT:PROF r=") and " i=1 " in ln]  # CONV_2D of each run
    for k, (r, wait) in reversed(list(enumerate([(1, 300), (2, 500), (3, 400)]))):
        lines.insert(at[k] + 1, printf(f["split"], r, 1, 4, 8000, 8200, wait))
    cap = layers.parse_lines(lines)
    t = layers.layer_table(load_model(fire_alarm), cap, 125e6, "cortex-m0plus")
    conv = t["layers"][1]["cores"]
    assert conv == {"split_calls": 4, "core0_us": 17015 - 400, "core1_us": 8200, "core0_wait_us": 400,
                    "core0_split_us": 8000}
    assert t["layers"][0]["cores"]["core1_us"] == 0 and t["layers"][0]["cores"]["core0_us"] == 4471
    assert t["core_us"] == [sum(r["us"] for r in t["layers"]) - 400, 8200]
    single = layers.layer_table(load_model(fire_alarm), layers.parse_lines(session([(FIRE_RUN, 22162)])), 125e6,
                                "cortex-m0plus")
    assert single["core_us"] is None and single["layers"][1]["cores"] is None  # a banner without cores=2


def test_sum_outside_tolerance_is_reported(fire_alarm):
    model = load_model(fire_alarm)
    total = sum(us for _, us, _ in FIRE_RUN)
    tol = layers.tolerance_us(total + 1000, 6)
    assert tol == pytest.approx(0.01 * (total + 1000) + 24)
    cap = layers.parse_lines(session([(FIRE_RUN, total + 1000)]))
    t = layers.layer_table(model, cap, 125e6, "cortex-m0plus")
    assert t["agrees"] is False and t["gap_us"] == 1000
    assert any("gap 1000" in w for w in t["warnings"])
    assert layers.tolerance_us(total + 200, 6) > 200  # 1 % of 22,354 µs + 24 µs = 247.5 µs
    ok = layers.layer_table(model, layers.parse_lines(session([(FIRE_RUN, total + 200)])), 125e6, "cortex-m0plus")
    assert ok["agrees"] and ok["gap_us"] == 200


def test_missing_or_foreign_events_are_flagged(fire_alarm):
    model = load_model(fire_alarm)
    cap = layers.parse_lines(session([(FIRE_RUN[:5], 22160)]))
    t = layers.layer_table(model, cap, 125e6, "cortex-m0plus")
    assert len(t["layers"]) == 5 and t["warnings"]
    swapped = [FIRE_RUN[1], FIRE_RUN[0], *FIRE_RUN[2:]]
    t = layers.layer_table(model, layers.parse_lines(session([(swapped, 22162)])), 125e6, "cortex-m0plus")
    assert t["layers"][0]["matched"] is False and t["layers"][0]["macs"] is None


def test_events_inside_a_subgraph_op_are_nested_not_summed():
    run = layers.Run(1, [protocol.ProfileEvent(1, 0, 0, 100, "IF"), protocol.ProfileEvent(1, 1, 10, 50, "ADD"),
                         protocol.ProfileEvent(1, 2, 61, 30, "MUL"), protocol.ProfileEvent(1, 3, 101, 5, "ADD"),
                         protocol.ProfileEvent(1, 4, 106, 0, "RESHAPE")])
    top, nested = run.split()
    assert [e.i for e in top] == [0, 3, 4] and [e.i for e in nested] == [1, 2]
    # a zero-length event right after an ordinary op is not nested in it
    flat = layers.Run(1, [protocol.ProfileEvent(1, 0, 0, 6, "RESHAPE"), protocol.ProfileEvent(1, 1, 6, 0, "ADD")])
    assert [e.i for e in flat.split()[0]] == [0, 1]


def test_firmware_error_and_empty_sessions_raise():
    with pytest.raises(FwtoolError, match="arena too small"):
        layers.parse_lines(["FWT:ERROR AllocateTensors failed: arena too small"])
    with pytest.raises(FwtoolError, match="no complete run"):
        layers.parse_lines(["FWT:BOOT model=x", "FWT:PROF r=1 i=0 t=0 us=1 op=ADD"])


def test_a_new_banner_starts_a_new_session():
    lines = ["FWT:BOOT model=a", "FWT:PROF r=1 i=0 t=0 us=7 op=ADD",
             "FWT:PROFRUN r=1 us=8 events=1 dropped=0 arena_used=1",
             "FWT:BOOT model=b", "FWT:PROF r=1 i=0 t=0 us=3 op=MUL",
             "FWT:PROFRUN r=1 us=4 events=1 dropped=0 arena_used=1"]
    cap = layers.parse_lines(lines)
    assert cap.banner["model"] == "b" and [e.op for e in cap.runs[0].events] == ["MUL"]


def test_compare_layer_by_layer_and_by_op():
    def prof(name, ops_us):
        rows = [{"index": i, "op": op, "us": us, "macs": 10, "kernel": "CMSIS-NN"} for i, (op, us) in enumerate(ops_us)]
        totals = {}
        for r in rows:
            t = totals.setdefault(r["op"], {"op": r["op"], "count": 0, "us": 0, "macs": 0, "kernel": "CMSIS-NN"})
            t["count"] += 1
            t["us"] += r["us"]
            t["macs"] += 10
        return {"model": {"name": name}, "layers": rows, "ops": list(totals.values()),
                "invoke_us": sum(u for _, u in ops_us), "arena": {"used": 100}, "macs": 10 * len(rows)}

    a = prof("int8", [("CONV_2D", 100), ("ADD", 10)])
    c = compare.side_by_side(a, prof("16x8", [("CONV_2D", 150), ("ADD", 20)]))
    assert c["by"] == "layer" and c["rows"][0]["ratio"] == 1.5 and c["totals"]["invoke_ratio"] == pytest.approx(170 / 110)
    c = compare.side_by_side(a, prof("other", [("CONV_2D", 50), ("CONV_2D", 50), ("MUL", 5)]))
    assert c["by"] == "op" and [r["op"] for r in c["rows"]] == ["CONV_2D", "ADD", "MUL"]
    assert c["rows"][0]["us"] == [100, 100] and c["rows"][1]["us"] == [10, None] and c["rows"][1]["ratio"] is None


def test_cli_help_and_bad_model(tmp_path):
    from fwtool.cli import cli

    r = CliRunner().invoke(cli, ["profile", "--help"])
    assert r.exit_code == 0 and "--compare" in r.output and "--device" in r.output
    bad = tmp_path / "x.tflite"
    bad.write_bytes(b"not a model at all")
    p = subprocess.run([sys.executable, "-m", "fwtool", "profile", "-m", str(bad), "--out", str(tmp_path / "o")],
                       capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 3, p.stderr
    assert "not a TensorFlow Lite model" in p.stderr and "Traceback" not in p.stderr


# ---- the real thing ---------------------------------------------------------------------------------------------

def test_profile_fire_alarm_on_the_virtual_board(fire_alarm, real_build_reason, emulator_ready, tmp_path):
    if real_build_reason:
        pytest.skip(real_build_reason)
    p = subprocess.run([sys.executable, "-m", "fwtool", "profile", "-m", str(fire_alarm), "--emulator", "--json",
                        "--out", str(tmp_path / "pico-profile")], capture_output=True, text=True, cwd=ROOT,
                       timeout=3600)
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout)["profile"]
    assert [x["op"] for x in r["layers"]] == FIRE_OPS
    assert all(x["matched"] and x["us"] > 0 for x in r["layers"] if x["op"] != "LOGISTIC")
    total = sum(x["us"] for x in r["layers"])
    assert total == r["layers_us"]
    assert abs(r["invoke_us"] - total) <= 0.01 * r["invoke_us"] + 4 * 6, (r["invoke_us"], total)
    assert r["agrees"] and r["runs"] == 3 and r["target"]["clock_hz"] == 125e6
    assert 0 < r["arena"]["used"] <= r["arena"]["size"]
    conv = r["layers"][1]
    assert conv["kernel"] == "CMSIS-NN" and conv["cycles"] == round(conv["us"] * 125)
    assert conv["macs_per_cycle"] == pytest.approx(conv["macs"] / (conv["us"] * 125))
    # deterministic emulated time: the runs agree to a few µs
    assert max(r["invoke_us_runs"]) - min(r["invoke_us_runs"]) <= 5


def test_the_profile_app_keeps_tflms_profiler_hook():
    from fwtool.firmware import apps
    from fwtool.firmware.context import tflm_defines_for

    defines = ["CMSIS_NN=1", "TF_LITE_STRIP_ERROR_STRINGS=1", "TF_LITE_STATIC_MEMORY=1"]
    profile, inference = apps.get_app("profile"), apps.get_app("inference")
    assert profile.tflm_profiler and not inference.tflm_profiler
    assert tflm_defines_for(profile, defines) == ["CMSIS_NN=1", "TF_LITE_STATIC_MEMORY=1"]
    assert tflm_defines_for(inference, defines) == defines
    # and the app refuses to compile if the define still reaches it
    assert "#if defined(TF_LITE_STRIP_ERROR_STRINGS)\n#error" in (APP / "main.cpp.j2").read_text()


def test_tflm_profiler_must_be_a_boolean(tmp_path):
    from fwtool.firmware import apps
    from fwtool.core.errors import BadInput

    meta = tmp_path / "x" / "app.toml"
    meta.parent.mkdir()
    meta.write_text('description = "x"\nsources = ["main.cpp"]\ntflm_profiler = "yes"\n')
    with pytest.raises(BadInput, match="tflm_profiler"):
        apps.load_app(meta)


class _Built:
    """What profile_one reads of a BuildResult."""

    def __init__(self, image):
        self.artifacts = type("A", (), {"image": image})()
        self.report = {"build": {"tflm_cores": 2}}
        self.notes = []


def test_device_run_uses_the_boards_clock_and_checks_the_model(fire_alarm, monkeypatch, tmp_path):
    from fwtool.core.errors import Exit
    from fwtool.profile import flow
    from fwtool.targets.physical import BoardTarget

    seen = {}

    def fake_board(self, image, until, count, timeout, on_line, on_step):  # the physical target's run
        seen.update(image=image, board=self.config.board, serial=self.config.serial, flash=self.config.flash)
        return session([(FIRE_RUN, 22162)]), {"kind": "board", "port": "/dev/ttyACM0"}

    monkeypatch.setattr(flow, "build_firmware", lambda opts, **kw: _Built(tmp_path / "firmware.uf2"))
    monkeypatch.setattr(BoardTarget, "run", fake_board)
    r = flow.profile_one(flow.ProfileOptions(model=fire_alarm, target="board", serial="E66"))
    assert seen["board"] == "pico" and seen["serial"] == "E66" and seen["flash"] is True
    assert r["target"]["clock_hz"] == 125e6 and r["target"]["cycle"] == "cycle" and r["timing_note"] is None
    assert [x["op"] for x in r["layers"]] == FIRE_OPS and r["agrees"]
    assert r["layers"][1]["cycles"] == 17015 * 125

    other = [ln.replace("sha256=4d5f2cd1842e", "sha256=0123456789ab") for ln in session([(FIRE_RUN, 22162)])]
    monkeypatch.setattr(BoardTarget, "run", lambda self, image, *a: (other, {"kind": "board"}))
    with pytest.raises(FwtoolError) as e:
        flow.profile_one(flow.ProfileOptions(model=fire_alarm, target="board"))
    assert e.value.code == Exit.MISMATCH and "0123456789ab" in e.value.cause

import signal
import sys

import pytest

import modelgen
from fwtool.model import arena, host
from fwtool.core.boards import get_board
from fwtool.firmware.fit import fit_check
from fwtool.core.errors import DoesNotFit, Exit, FwtoolError
from fwtool.firmware.families import get_family
from fwtool.model.tflite import load_model, parse_model


def _runs(data, size):
    with host.quiet_native_output():
        return arena.runs(parse_model(data), size)


def test_measured_arena_is_the_minimum(fire_alarm):
    m = load_model(fire_alarm)
    measured = arena.measure(m)
    assert 10_000 < measured < 40_000
    assert _runs(m.data, measured)
    assert not _runs(m.data, measured - 16)


def test_margin_and_override(fire_alarm):
    m = load_model(fire_alarm)
    a = arena.size_for(m)
    assert a.source == "measured" and a.total % 16 == 0
    assert a.total - a.measured == a.margin >= arena.MARGIN_MIN
    assert a.margin >= int(a.measured * arena.MARGIN_FRACTION)
    o = arena.size_for(m, override=30001)
    assert (o.source, o.total) == ("override", 30016)


def test_fit_check_passes_and_reports_budget(fire_alarm):
    board, fam, m = get_board("pico"), get_family("rp2040"), load_model(fire_alarm)
    r = fit_check(board, fam, m, 20_000, 0)
    assert r["flash"]["required"] == m.size + fam.code_reserve_bytes
    assert r["ram"]["required"] == 20_000 + fam.ram_reserve_bytes


def test_fit_check_flash_shortfall_is_byte_exact(tmp_path):
    board, fam = get_board("pico"), get_family("rp2040")
    p = tmp_path / "big.tflite"
    p.write_bytes(modelgen.padded_model(2_100_000))
    m = load_model(p)
    short = m.size + fam.code_reserve_bytes - board.flash_bytes
    with pytest.raises(DoesNotFit) as e:
        fit_check(board, fam, m, 20_000, 0)
    assert e.value.code == Exit.DOES_NOT_FIT
    assert f"flash short by {short:,} bytes" in e.value.cause
    # the same model fits the 16 MiB SparkFun board
    fit_check(get_board("sparkfun_micromod_rp2040"), fam, m, 20_000, 0)


def test_fit_check_ram_shortfall_is_byte_exact(fire_alarm):
    board, fam, m = get_board("pico"), get_family("rp2040"), load_model(fire_alarm)
    arena_bytes = board.sram_bytes  # arena alone fills RAM: short by exactly the reserve
    with pytest.raises(DoesNotFit, match=f"RAM short by {fam.ram_reserve_bytes:,} bytes"):
        fit_check(board, fam, m, arena_bytes, 0)


def test_measurement_is_cached_per_model(fire_alarm, tmp_path, monkeypatch):
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path))
    m = load_model(fire_alarm)
    first = arena.cached_measure(m)
    assert (tmp_path / "arena" / f"{m.sha256}.json").is_file()
    monkeypatch.setattr(arena, "measure", lambda model: pytest.fail("measured again"))
    assert arena.cached_measure(m) == first


def test_a_crashing_interpreter_child_is_one_error_with_exit_3(fire_alarm, monkeypatch):
    """A native crash (faked at the process level: the child kills itself with SIGSEGV) at the 16 MiB probe is the
    model's fault: one BadInput naming the signal, not 'the arena is too small'."""
    monkeypatch.setattr(host, "child_command", lambda module, args: [
        sys.executable, "-c", f"import os, signal; os.kill(os.getpid(), signal.{signal.SIGSEGV.name})"])
    real_child = host.run_child

    def child_that_probes_then_crashes(module, args, timeout=host.CHILD_TIMEOUT_S):
        with open(args[3], "a") as out:  # the probe had started on the 16 MiB arena when it crashed
            out.write(f"try {16 * 1024 * 1024}\n")
        return real_child(module, args, timeout)

    monkeypatch.setattr(host, "run_child", child_that_probes_then_crashes)
    with pytest.raises(FwtoolError) as e:
        arena.measure(load_model(fire_alarm))
    assert e.value.code == Exit.BAD_INPUT
    assert e.value.cause == ("the TFLM interpreter crashed on this model (SIGSEGV) — the model is malformed or uses "
                             "an unsupported op version")


def test_target_figure_is_used_with_a_small_stated_margin(fire_alarm, tmp_path, monkeypatch):
    """A figure recorded on the virtual board replaces host + 10 %: allocated / used <= 1.05, and the fit check
    of the build plan uses the same arena."""
    from fwtool.firmware.fit import arena_target
    from fwtool.firmware.apps import get_app
    from fwtool.firmware.flow import BuildOptions, plan
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path))
    m = load_model(fire_alarm)
    fam, app = get_family("rp2040"), get_app("inference")
    key = arena_target(fam, app, m)
    assert key is not None and arena_target(get_family("psoc6"), app, m) is None  # QEMU is another machine
    assert arena_target(fam, get_app("recorder"), m) is None  # prints no banner: nothing to measure
    assert arena.size_for(m, target=key).source == "measured"  # nothing recorded yet
    assert arena.record_target(key, 18_020)
    a = arena.size_for(m, target=key)
    assert (a.source, a.measured) == ("target", 18_020) and a.total % 16 == 0
    assert a.total >= 18_020 + arena.TARGET_MARGIN_MIN and a.total / 18_020 <= 1.05
    p = plan(BuildOptions(board="pico", model=fire_alarm, out_dir=tmp_path / "out"))
    assert p.arena == a and p.fit["ram"]["arena"] == a.total
    assert arena.size_for(m, override=30001).source == "override"  # --arena still wins


def test_target_figure_is_per_graph_not_per_weights(fire_alarm, tmp_path, monkeypatch):
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path))
    m, padded = load_model(fire_alarm), parse_model(modelgen.padded_model(2048))
    assert m.sha256 != padded.sha256 and arena.graph_sha(m) == arena.graph_sha(padded)
    other = parse_model(modelgen.tiny_fc_model())
    assert arena.graph_sha(other) != arena.graph_sha(m)
    key = arena.target_fields(m, "rp2040/inference", ["conv.cpp"])
    assert arena.target_fields(padded, "rp2040/inference", ["conv.cpp"]) == key
    assert arena.target_fields(m, "rp2040/validate", ["conv.cpp"]) != key


@pytest.mark.parametrize("poison", ['{"fields": %s, "arena_used": -5}', '{"fields": %s, "arena_used": true}',
                                    '{"fields": %s, "arena_used": 99999999999}', "not json %s",
                                    '{"fields": {}, "arena_used": 1000}'])
def test_a_corrupt_target_entry_falls_back_to_the_host_figure(fire_alarm, tmp_path, monkeypatch, poison):
    import json
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path))
    m = load_model(fire_alarm)
    key = arena.target_fields(m, "rp2040/inference", ["conv.cpp"])
    assert arena.record_target(key, 18_020)
    path = next((tmp_path / "arena_target").glob("*.json"))
    path.write_text(poison.replace("%s", json.dumps(key)))
    assert arena.target_used(key) is None
    assert not arena.record_target(key, 0) and not arena.record_target(key, True)


def test_flow_records_the_banner_figure_and_rebuilds_once(fire_alarm, tmp_path, monkeypatch):
    """tighten_arena: only after a host-measured build of a family with a virtual board, and only a plausible
    figure is recorded."""
    from fwtool.firmware import flow
    from fwtool.firmware.flow import BuildOptions, plan
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path))
    p = plan(BuildOptions(board="pico", model=fire_alarm, out_dir=tmp_path / "out"))
    assert p.arena.source == "measured"

    class Result:
        class artifacts:
            image = tmp_path / "firmware.uf2"

    seen = []
    assert flow.tighten_arena(p, Result, lambda image: seen.append(image) or 18_020)
    assert seen == [tmp_path / "firmware.uf2"]
    assert plan(BuildOptions(board="pico", model=fire_alarm, out_dir=tmp_path / "out")).arena.source == "target"
    assert not flow.tighten_arena(p, Result, lambda image: None)
    assert not flow.tighten_arena(p, Result, None)


def test_a_tight_arena_that_did_not_allocate_keeps_the_figure_that_did(fire_alarm, tmp_path, monkeypatch):
    """AllocateTensors may need more than arena_used on the way (tiny models): the flow then records the arena that
    allocated; the report states used and the larger margin honestly."""
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path))
    m = load_model(fire_alarm)
    key = arena.target_fields(m, "rp2040", ["conv.cpp"])
    assert arena.record_target(key, 664, allocate=2352)
    a = arena.size_for(m, target=key)
    assert (a.source, a.measured, a.margin, a.total) == ("target", 664, 1688, 2352)
    assert not arena.record_target(key, 664, allocate=600)  # below what the target used: refused
    assert key["rule"] == arena.TARGET_RULE  # older records (unchecked figures) are keyed differently


def test_a_build_plan_computes_the_arena_target_and_code_size_key_once(fire_alarm, monkeypatch):
    """plan() derives fit.arena_target and the code-size cache key once; the build flow reads them off the plan."""
    from fwtool.firmware import codesize, fit
    from fwtool.firmware import plan as plan_mod

    calls = []
    real = fit.arena_target
    monkeypatch.setattr(plan_mod.fit_mod, "arena_target", lambda *a: calls.append(a) or real(*a))
    p = plan_mod.plan(plan_mod.BuildOptions(board="pico", model=fire_alarm))
    assert len(calls) == 1 and p.arena_target == real(p.family, p.app, p.model) is not None
    assert p.code_size_fields == codesize.plan_fields(p.board, p.family, p.app, p.kernel_files, p.stdio,
                                                      p.options.tflm_cores)
    assert not hasattr(codesize, "fields_for")  # one function builds the key

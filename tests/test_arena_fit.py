import signal
import sys

import pytest

import modelgen
from fwtool.model import arena, host
from fwtool.core.boards import get_board
from fwtool.build.fit import fit_check
from fwtool.core.errors import DoesNotFit, Exit, FwtoolError
from fwtool.build.families import get_family
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

"""fwtool run = build + flash + monitor: the wiring (faked at the API seams), and the real thing on the emulator."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

import modelgen
from fwtool.firmware.result import BuildResult
from fwtool.core.errors import Exit


def test_hardware_path_passes_the_flashed_board_to_the_monitor(monkeypatch, fire_alarm, tmp_path):
    from click.testing import CliRunner

    import fwtool.commands.run as run_cmd
    import fwtool.flash
    import fwtool.monitor.session as session
    from fwtool.cli import cli

    report = {"files": {"uf2": str(tmp_path / "firmware.uf2")}, "board": {"name": "pico", "title": "Pico"},
              "model": {"name": "m", "sha256": "ab" * 32}, "arena": {"arena_bytes": 1}, "sizes": {}, "usage": {},
              "build": {"seconds": 1.0}}
    calls = {}
    monkeypatch.setattr(run_cmd, "run_build", lambda opts, verbose=False: calls.setdefault("build", opts)
                        and BuildResult.from_report(report, tmp_path))
    monkeypatch.setattr(fwtool.flash, "flash_image", lambda uf2, **kw: calls.setdefault("flash", (uf2, kw)) and {
        "serial": "E6614C311B4A", "port": "/dev/ttyACM7", "bytes_written": 4096, "bytes_skipped": 0,
        "verified": True, "method": "picoboot", "seconds": 1.5})
    monkeypatch.setattr(session, "run_monitor", lambda opts, **kw: calls.setdefault("monitor", opts) and 8)
    r = CliRunner().invoke(cli, ["run", "-b", "pico", "-m", str(fire_alarm), "--count", "2", "--expect-label",
                                 "fire", "--json", "--serial", "E6614C311B4A"])
    assert r.exit_code == Exit.MISMATCH, r.output  # the monitor's verdict is the exit code
    assert calls["build"].board == "pico" and calls["build"].tflm_cores == 2
    uf2, kw = calls["flash"]
    assert str(uf2) == report["files"]["uf2"] and kw["serial"] == "E6614C311B4A" and kw["verify"] is True
    mon = calls["monitor"]
    assert (mon.serial, mon.board, mon.count, mon.expect_label, mon.view) == ("E6614C311B4A", "pico", 2, "fire",
                                                                             "json")
    lines = [json.loads(ln) for ln in r.output.splitlines() if ln.startswith("{")]
    assert [ln["type"] for ln in lines] == ["build", "flash"]


def test_budget_needs_the_emulator(monkeypatch, fire_alarm):
    from click.testing import CliRunner

    import fwtool.commands.run as run_cmd
    from fwtool.cli import cli

    monkeypatch.setattr(run_cmd, "run_build", lambda opts, verbose=False: BuildResult.from_report({
        "files": {"uf2": "x.uf2"}, "board": {"name": "pico"}, "model": {"name": "m", "sha256": "0"},
        "arena": {"arena_bytes": 1}, "sizes": {}, "usage": {}, "build": {"seconds": 0}}, Path(".")))
    monkeypatch.setattr(run_cmd, "print_report", lambda r: None)
    r = CliRunner().invoke(cli, ["run", "-b", "pico", "-m", str(fire_alarm), "--budget-ms", "32"])
    assert isinstance(r.exception, Exception) and "needs --emulator" in str(r.exception)


def test_run_on_the_emulator_end_to_end(real_build_reason, emulator_ready, tmp_path):
    if real_build_reason:
        pytest.skip(real_build_reason)
    p = subprocess.run([sys.executable, "-m", "fwtool", "run", "-b", "pico", "-m", str(modelgen.FIRE_ALARM),
                        "--emulator", "--count", "3", "--json", "--out", str(tmp_path / "emu"), "--budget-ms", "32"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    recs = [json.loads(ln) for ln in p.stdout.splitlines()]
    kinds = [r["type"] for r in recs]
    assert kinds[0] == "build" and "banner" in kinds and kinds.count("inference") == 3 and kinds[-1] == "latency"
    banner = next(r for r in recs if r["type"] == "banner")
    assert banner["model"] == "fire_alarm" and banner["arena_used"] <= banner["arena"]
    assert all(r["q"] == [-128] for r in recs if r["type"] == "inference")  # the reference's answer to zeros
    assert recs[-1]["p95_ms"] < 32 and recs[0]["notes"]  # single-core build is reported
    # a budget the emulated latency cannot meet fails the run
    p = subprocess.run([sys.executable, "-m", "fwtool", "run", "-b", "pico", "-m", str(modelgen.FIRE_ALARM),
                        "--emulator", "--count", "2", "--json", "--out", str(tmp_path / "emu"), "--budget-ms", "1"],
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == Exit.MISMATCH, p.stderr[-1000:]

"""Every bad input: exit code scripts can trust, one 'error:' line plus a 'fix:' line, no traceback, no output."""
import json
import subprocess
import sys

import pytest

import modelgen


def fwtool(*args, env=None, cwd=None):
    import os

    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "fwtool", *args], capture_output=True, text=True, env=e, cwd=cwd)


def assert_clean_failure(proc, code, match):
    assert proc.returncode == code, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and match in lines[0], proc.stderr
    assert len(lines) == 2 and lines[1].startswith("  fix: "), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("kind,code,match", [
    ("float", 3, "float model"),
    ("unsupported", 3, "HASHTABLE_LOOKUP"),
    ("corrupt", 3, "corrupt or truncated"),
    ("text", 3, "not a TensorFlow Lite model"),
    ("too_big", 5, "does not fit pico: flash short by"),
])
def test_bad_models(tmp_path, kind, code, match, fire_alarm):
    data = {"float": modelgen.float_model, "unsupported": modelgen.unsupported_op_model,
            "corrupt": lambda: fire_alarm.read_bytes()[:2000], "text": lambda: b"not a model at all",
            "too_big": lambda: modelgen.padded_model(2_500_000)}[kind]()
    m = tmp_path / f"{kind}.tflite"
    m.write_bytes(data)
    out = tmp_path / "out"
    assert_clean_failure(fwtool("build", "-b", "pico", "-m", str(m), "--out", str(out)), code, match)
    assert not out.exists()


def test_unknown_board_lists_valid_ones(tmp_path, fire_alarm):
    p = fwtool("build", "-b", "pico2040", "-m", str(fire_alarm), "--out", str(tmp_path / "o"))
    assert_clean_failure(p, 3, "unknown board 'pico2040'")
    assert all(f"{n}," in p.stderr or f"{n}\n" in p.stderr for n in ("pico", "pico_w")) and "sparkfun_micromod_rp2040" in p.stderr


def test_missing_sdk_tree(tmp_path, fire_alarm):
    p = fwtool("build", "-b", "pico", "-m", str(fire_alarm), "--out", str(tmp_path / "o"),
               env={"PICO_SDK_PATH": str(tmp_path / "no-sdk")})
    if p.returncode == 4 and "missing build tools" in p.stderr:
        pytest.skip("toolchain absent: the SDK check is never reached")
    assert_clean_failure(p, 4, "pico-sdk not found at")
    assert not (tmp_path / "o").exists()


def test_missing_toolchain(tmp_path, fire_alarm):
    import os
    import shutil

    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("cmake", "git", "ninja", "make"):
        if shutil.which(tool):
            os.symlink(shutil.which(tool), bindir / tool)
    p = fwtool("build", "-b", "pico", "-m", str(fire_alarm), "--out", str(tmp_path / "o"),
               env={"PATH": str(bindir)})
    assert_clean_failure(p, 4, "missing build tools: arm-none-eabi-gcc")
    assert "apt-get install" in p.stderr and "gcc-arm-none-eabi" in p.stderr
    assert not (tmp_path / "o").exists()


def test_json_error_object(tmp_path):
    p = fwtool("build", "-b", "pico", "-m", str(tmp_path / "missing.tflite"), "--json")
    assert p.returncode == 3
    obj = json.loads(p.stdout)
    assert obj["exit_code"] == 3 and "does not exist" in obj["error"] and obj["fix"]


def _command_paths(group, prefix=()):
    import click

    yield prefix
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from _command_paths(cmd, prefix + (name,))
        else:
            yield prefix + (name,)


def test_every_command_help_has_an_example():
    from click.testing import CliRunner

    from fwtool.cli import cli

    paths = list(_command_paths(cli))
    assert ("build",) in paths and ("vendor", "sync") in paths
    for path in paths:
        r = CliRunner().invoke(cli, [*path, "--help"])
        assert r.exit_code == 0 and "xample" in r.output, f"'fwtool {' '.join(path)} --help' shows no example"


def test_boards_json():
    p = fwtool("boards", "--json")
    boards = {b["name"]: b for b in json.loads(p.stdout)}
    assert set(boards) >= {"pico", "pico_w", "sparkfun_micromod_rp2040"}
    pico = boards["pico"]
    assert (pico["family"], pico["sdk"]["pico_board"], pico["flash_bytes"], pico["sram_bytes"], pico["led_pin"],
            pico["usb_app"], pico["usb_bootsel"], pico["uf2_family_id"]) == (
        "rp2040", "pico", 2097152, 270336, 25, "2E8A:000A", "2E8A:0003", "0xE48BFF56")
    assert boards["sparkfun_micromod_rp2040"]["flash_bytes"] == 16 * 1024 * 1024

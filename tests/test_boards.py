"""Board files against their schema (fwtool/core/board_schema.py), user board files and ``extends``.

Every built-in board loads; a typo'd key, a wrong type and a missing required key are each refused with the file,
the key and the fix on one line each; a user board file beside the model (or in a config folder) works like a
built-in one and may extend one; a user board that extends pico builds fire_alarm for real (skips without the
toolchain and trees)."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fwtool.core import board_schema, boards, config
from fwtool.core.errors import BadInput, MissingTool
from fwtool.core.paths import resource_dir
from fwtool.firmware import apps, outdir, result
from fwtool.firmware.families.psoc6_sources import board_defines

PICO_TEXT = (resource_dir("boards") / "pico.toml").read_text()
CUSTOM = '''# a custom RP2040 PCB: the Pico with 16 MiB flash and its LED on GPIO 13
extends = "pico"
name = "my_pcb"
title = "My RP2040 PCB"

[memory]
flash_bytes = 16_777_216

[led]
pin = 13
'''


@pytest.fixture(autouse=True)
def fresh_user_boards():
    boards.forget_user_boards()
    yield
    boards.forget_user_boards()


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A user's project: a model file with a boards/ folder beside it; no config file."""
    monkeypatch.setenv("FWTOOL_CONFIG", str(tmp_path / "no-config.toml"))
    config.load.cache_clear()
    (tmp_path / "proj" / "boards").mkdir(parents=True)
    model = tmp_path / "proj" / "model.tflite"
    model.write_bytes(b"not read by these tests")
    yield model
    config.load.cache_clear()


def refused(path: Path, text: str) -> BadInput:
    path.write_text(text)
    with pytest.raises(BadInput) as e:
        boards.load_file(path)
    assert e.value.code == 3 and "\n" not in e.value.cause and "\n" not in (e.value.fix or "")
    assert str(path) in e.value.cause  # the file
    return e.value


# ---- built-in boards -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(boards.builtin_boards()))
def test_every_builtin_board_loads_typed(name):
    b = boards.get_board(name)
    assert b.name == name and b.source == resource_dir("boards") / f"{name}.toml" and not b.is_user_board
    assert isinstance(b.sdk, board_schema.SDK_TABLES[b.family])
    assert b.memory is not None and b.memory.flash_bytes == b.flash_bytes and b.clock_hz > 0
    assert b.stdio in ("usb", "uart") and b.image_kind in ("uf2", "hex", "elf")
    assert json.dumps(b.to_dict())  # the report's board entry stays plain JSON
    assert not hasattr(b, "raw")


def test_a_psoc6_led_keeps_its_port():
    b = boards.get_board("cy8cproto_062_4343w")
    assert (b.led.port, b.led.pin, b.led.on_level) == (13, 7, 0)  # CYBSP_USER_LED = P13_7, active low
    d = board_defines(b)
    assert d["FWT_LED_PORT"] == "GPIO_PRT13" and d["FWT_LED_PIN"] == "7U" and d["FWT_LED_ON"] == "0U"


def test_flash_tables_are_typed_and_read_as_written():
    b = boards.get_board("cy8ckit_062_ble")
    assert b.runners == ("pyocd", "openocd", "mtb-program")
    assert b.runner_settings["openocd"]["targets"] == ["target/infineon/cy8c6xx.cfg", "target/psoc6.cfg"]
    assert boards.get_board("cy8ckit_062s2_43012").runner_settings["openocd"].keys() == {"interface", "targets"}
    assert boards.get_board("pico").runner_settings == {}


# ---- refusals: one line naming the file, the key and the fix -----------------------------------------------------

def test_a_typo_key_is_refused_with_the_nearest_name(tmp_path):
    e = refused(tmp_path / "b.toml", PICO_TEXT.replace('runners = ["picoboot", "drive"]', 'runner = ["picoboot"]'))
    assert "unknown key [flash] runner" in e.cause
    assert e.fix.startswith("did you mean 'runners'?")


def test_a_typo_table_and_top_level_key_are_refused(tmp_path):
    e = refused(tmp_path / "b.toml", PICO_TEXT.replace("[pdm_mic]", "[pdm_mik]"))
    assert "unknown key pdm_mik" in e.cause and "did you mean 'pdm_mic'?" in e.fix
    e = refused(tmp_path / "b.toml", PICO_TEXT.replace("clock_hz =", "clock_khz ="))
    assert "unknown key clock_khz" in e.cause and "'clock_hz'" in e.fix


def test_a_wrong_type_is_refused(tmp_path):
    e = refused(tmp_path / "b.toml", PICO_TEXT.replace("clock_hz = 125_000_000", 'clock_hz = "125 MHz"'))
    assert "clock_hz must be an integer, not str" in e.cause and "integer" in e.fix
    e = refused(tmp_path / "b.toml", PICO_TEXT.replace("pin = 25", "pin = true"))
    assert "[led] pin must be an integer, not bool" in e.cause
    e = refused(tmp_path / "b.toml", PICO_TEXT.replace('runners = ["picoboot", "drive"]', 'runners = "picoboot"'))
    assert "[flash] runners must be a list of strings" in e.cause
    e = refused(tmp_path / "b.toml", PICO_TEXT.replace('app = "2E8A:000A"', 'app = "2E8A-000A"'))
    assert "[usb] app" in e.cause and "VID:PID" in e.fix
    e = refused(tmp_path / "b.toml", PICO_TEXT.replace('kind = "uf2"', 'kind = "uf3"'))
    assert "[image] kind" in e.cause and "did you mean 'uf2'?" in e.fix


def test_a_missing_required_key_is_refused(tmp_path):
    e = refused(tmp_path / "b.toml", PICO_TEXT.replace('mcu = "RP2040"\n', ""))
    assert "lacks the required key mcu" in e.cause and e.fix.startswith("add mcu = ")
    e = refused(tmp_path / "b.toml", PICO_TEXT.replace("sram_bytes = 270_336", ""))
    assert "[memory] lacks the required key sram_bytes" in e.cause and "[memory] sram_bytes" in e.fix
    e = refused(tmp_path / "b.toml", PICO_TEXT.replace('pico_board = "pico"', 'bsp = "x"'))
    assert "unknown key [sdk] bsp" in e.cause  # the rp2040 family's [sdk] has pico_board only


def test_an_unknown_family_is_refused(tmp_path):
    e = refused(tmp_path / "b.toml", PICO_TEXT.replace('family = "rp2040"', 'family = "rp2004"'))
    assert "family = 'rp2004'" in e.cause and "did you mean 'rp2040'?" in e.fix


def test_a_board_file_that_is_not_toml_is_refused(tmp_path):
    e = refused(tmp_path / "b.toml", "name = [")
    assert "not valid TOML" in e.cause


# ---- user boards ---------------------------------------------------------------------------------------------------

def test_a_user_board_beside_the_model_extends_pico(project):
    (project.parent / "boards" / "my_pcb.toml").write_text(CUSTOM)
    with pytest.raises(BadInput):
        boards.get_board("my_pcb")  # not known without the project
    b = boards.get_board("my_pcb", project)
    pico = boards.get_board("pico")
    assert (b.name, b.title, b.extends, b.is_user_board) == ("my_pcb", "My RP2040 PCB", "pico", True)
    assert b.flash_bytes == 16_777_216 and b.led_pin == 13  # its own keys override
    assert b.sram_bytes == pico.sram_bytes and b.memory.flash_base == pico.flash_base  # the [memory] table merged
    assert (b.family, b.sdk, b.usb_app, b.runners, b.pdm_mic) == (pico.family, pico.sdk, pico.usb_app,
                                                                   pico.runners, pico.pdm_mic)
    assert boards.get_board("my_pcb") is b  # resolved once: known by name for the rest of the command
    assert outdir.requested(None, "my_pcb") == Path(os.path.abspath("build/my_pcb"))
    assert apps.has_feature(b, "pdm_mic")


def test_a_user_board_file_without_name_takes_its_file_name(project):
    (project.parent / "boards" / "tiny.toml").write_text('extends = "pico"\n[led]\npin = -1\n')
    b = boards.get_board("tiny", project)
    assert b.name == b.title == "tiny" and not b.has_led


def test_user_boards_may_extend_each_other_in_any_order(project):
    (project.parent / "boards" / "a_rev2.toml").write_text('extends = "my_pcb"\nname = "a_rev2"\n[led]\npin = 4\n')
    (project.parent / "boards" / "my_pcb.toml").write_text(CUSTOM)
    b = boards.get_board("a_rev2", project)
    assert (b.led_pin, b.flash_bytes, b.extends) == (4, 16_777_216, "my_pcb")


def test_extends_of_an_unknown_board_is_refused(project):
    path = project.parent / "boards" / "my_pcb.toml"
    path.write_text(CUSTOM.replace('extends = "pico"', 'extends = "pico2040"'))
    with pytest.raises(BadInput) as e:
        boards.get_board("my_pcb", project)
    assert str(path) in e.value.cause and "extends unknown board 'pico2040'" in e.value.cause
    assert "did you mean 'pico" in e.value.fix and "\n" not in e.value.cause + e.value.fix


def test_extends_in_a_loop_is_refused(project):
    (project.parent / "boards" / "a.toml").write_text('extends = "b"\n')
    (project.parent / "boards" / "b.toml").write_text('extends = "a"\n')
    with pytest.raises(BadInput) as e:
        boards.get_board("a", project)
    assert "which extends it back" in e.value.cause


def test_a_user_board_with_a_builtin_name_is_refused(project):
    (project.parent / "boards" / "pico.toml").write_text(CUSTOM.replace('name = "my_pcb"', 'name = "pico"'))
    with pytest.raises(BadInput) as e:
        boards.all_boards(project)
    assert "is named 'pico', like the board in" in e.value.cause and 'extends = "pico"' in e.value.fix


def test_an_extending_file_is_checked_like_any_other(project):
    path = project.parent / "boards" / "my_pcb.toml"
    path.write_text(CUSTOM.replace("[led]\npin = 13", "[led]\npim = 13"))
    with pytest.raises(BadInput) as e:
        boards.get_board("my_pcb", project)
    assert str(path) in e.value.cause and "unknown key [led] pim" in e.value.cause and "'pin'" in e.value.fix


def test_the_config_file_names_board_folders(tmp_path, monkeypatch):
    (tmp_path / "pcbs").mkdir()
    (tmp_path / "pcbs" / "my_pcb.toml").write_text(CUSTOM)
    cfg = tmp_path / "config.toml"
    cfg.write_text('[boards]\ndirs = ["pcbs"]\n')  # relative to the config file's folder
    monkeypatch.setenv("FWTOOL_CONFIG", str(cfg))
    config.load.cache_clear()
    try:
        assert config.board_dirs() == [tmp_path / "pcbs"]
        assert boards.get_board("my_pcb").flash_bytes == 16_777_216  # no model needed
        assert "my_pcb" in boards.all_boards()
        for bad, what in (('[boards]\ndirs = "pcbs"\n', "'boards.dirs' must be a list"),
                          ('[boards]\ndir = ["pcbs"]\n', "unknown key 'boards.dir'")):
            cfg.write_text(bad)
            config.load.cache_clear()
            with pytest.raises(MissingTool) as e:
                config.load()
            assert what in e.value.cause and str(cfg) in e.value.cause
    finally:
        config.load.cache_clear()


def test_a_build_report_makes_its_user_board_known_again(project, tmp_path):
    (project.parent / "boards" / "my_pcb.toml").write_text(CUSTOM)
    b = boards.get_board("my_pcb", project)
    out = tmp_path / "out"
    out.mkdir()
    (out / "report.json").write_text(json.dumps({"board": b.to_dict(), "files": {"uf2": str(out / "x.uf2")}}))
    boards.forget_user_boards()  # a later command (fwtool flash) in a new process
    assert result.load(out).board == "my_pcb"
    assert boards.get_board("my_pcb").flash_bytes == 16_777_216


def test_the_cli_refuses_a_broken_user_board_in_two_lines(project):
    (project.parent / "boards" / "my_pcb.toml").write_text(CUSTOM.replace("flash_bytes = 16_777_216",
                                                                          'flash_bytes = "16M"'))
    p = subprocess.run([sys.executable, "-m", "fwtool", "build", "--board", "my_pcb", "--model", str(project)],
                       capture_output=True, text=True, cwd=project.parent, env=os.environ.copy())
    lines = p.stderr.strip().splitlines()
    assert p.returncode == 3 and "Traceback" not in p.stderr, p.stderr
    assert lines[0].startswith("error: board file ") and "[memory] flash_bytes must be an integer" in lines[0]
    assert lines[1].strip().startswith("fix:") and len(lines) == 2
    assert not (project.parent / "build").exists()


def test_default_out_dir_is_the_one_spelling():
    assert outdir.default_out_dir("pico") == Path("build/pico")
    assert outdir.default_out_dir("pico", "emulator") == Path("build/pico-emulator")


# ---- the real build -------------------------------------------------------------------------------------------------

def test_a_user_board_extending_pico_builds_fire_alarm(real_build_reason, fire_alarm, tmp_path):
    if real_build_reason:
        pytest.skip(real_build_reason)
    proj = tmp_path / "proj"
    (proj / "boards").mkdir(parents=True)
    model = proj / "fire_alarm.tflite"
    model.write_bytes(fire_alarm.read_bytes())
    (proj / "boards" / "my_pcb.toml").write_text(CUSTOM)
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "fwtool", "build", "--board", "my_pcb", "--model", str(model),
                        "--out", str(out), "--json"], capture_output=True, text=True, cwd=proj)
    assert p.returncode == 0, p.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert report["board"]["name"] == "my_pcb" and report["board"]["extends"] == "pico"
    assert report["board"]["file"] == str(proj / "boards" / "my_pcb.toml")
    assert (out / "firmware.uf2").is_file() and report["image_kind"] == "uf2"
    assert "#define FWTOOL_LED_PIN 13" in (out / "project" / "fwt_board.h").read_text()  # the override reached C
    assert "-DPICO_BOARD=pico" in (out / "build.log").read_text()  # the inherited [sdk]
    assert dataclasses.asdict(boards.load_file(proj / "boards" / "my_pcb.toml").sdk)["pico_board"] == "pico"


def test_fwtool_boards_lists_the_user_boards_beside_a_model(project):
    (project.parent / "boards" / "my_pcb.toml").write_text(CUSTOM)
    run = [sys.executable, "-m", "fwtool", "boards", "--json"]
    plain = json.loads(subprocess.run(run, capture_output=True, text=True, check=True).stdout)
    mine = json.loads(subprocess.run([*run, "--model", str(project)], capture_output=True, text=True,
                                     check=True).stdout)
    assert "my_pcb" not in {b["name"] for b in plain}
    entry = next(b for b in mine if b["name"] == "my_pcb")
    assert entry["extends"] == "pico" and entry["flash_bytes"] == 16_777_216 and entry["sdk"] == {"pico_board": "pico", "pico_platform": "rp2040"}

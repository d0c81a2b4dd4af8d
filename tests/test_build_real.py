"""The real thing: pico-sdk 2.2.0 + tinyusb + pico-tflmicro + arm-none-eabi-gcc build of fire_alarm.

Runs where the toolchain and the pinned vendor trees are present; skips with the reason otherwise.
"""
import json
import re
import subprocess
import sys

import pytest

import modelgen
from fwtool.image import uf2

TUTORIAL_TEXT = 949_684  # the Pico tutorial's by-hand AllOpsResolver build


@pytest.fixture(scope="session")
def built(fire_alarm_build):
    return fire_alarm_build, json.loads((fire_alarm_build / "report.json").read_text())


def test_artifacts_and_report(built):
    out, report = built
    for name in ("firmware.uf2", "firmware.elf", "firmware.bin", "firmware.map", "report.json", "build.log"):
        assert (out / name).is_file(), name
    assert [o["op"] for o in report["ops"]] == ["RESIZE_NEAREST_NEIGHBOR", "CONV_2D", "MAX_POOL_2D", "RESHAPE",
                                                 "FULLY_CONNECTED", "LOGISTIC"]
    assert report["vendor"]["pico-sdk"]["pinned"] and report["model"]["sha256"].startswith("4d5f2cd1842e")
    assert report["image_kind"] == "uf2" and report["files"]["uf2"] == str(out / "firmware.uf2")
    log = (out / "build.log").read_text().splitlines()
    assert any(re.match(r"^\$ (ninja|make) -C \S+ -j \d+$", ln) for ln in log)  # the command lines are logged


def test_uf2_is_valid_and_covers_the_bin_exactly(built):
    out, report = built
    data, image = (out / "firmware.bin").read_bytes(), (out / "firmware.uf2").read_bytes()
    blocks = uf2.validate(image, 0xE48BFF56, 0x10000000, expect=data)
    assert len(blocks) == (len(data) + 255) // 256 == report["uf2"]["blocks"]
    assert [b.address for b in blocks] == [0x10000000 + 256 * i for i in range(len(blocks))]


def test_sizes_match_arm_none_eabi_size(built):
    out, report = built
    text = subprocess.run(["arm-none-eabi-size", str(out / "firmware.elf")], capture_output=True,
                          text=True, check=True).stdout.splitlines()[1].split()
    assert [int(x) for x in text[:3]] == [report["sizes"][k] for k in ("text", "data", "bss")]
    assert report["sizes"]["flash"] == len((out / "firmware.bin").read_bytes())
    assert report["usage"]["flash_bytes"] == report["sizes"]["flash"]


def test_firmware_is_small_because_only_needed_kernels_are_linked(built):
    out, report = built
    assert report["sizes"]["text"] <= 0.15 * TUTORIAL_TEXT, report["sizes"]
    syms = subprocess.run(["arm-none-eabi-nm", "-C", str(out / "firmware.elf")], capture_output=True,
                          text=True, check=True).stdout
    assert "Register_CONV_2D" in syms and "Register_SOFTMAX" not in syms and "Register_DEPTHWISE_CONV_2D" not in syms


def test_arena_and_model_are_in_the_image(built):
    out, report = built
    assert report["arena"]["arena_bytes"] >= report["arena"]["measured_bytes"] > 0
    syms = subprocess.run(["arm-none-eabi-nm", "-S", str(out / "firmware.elf")], capture_output=True, text=True,
                          check=True).stdout
    arena = re.search(r"^([0-9a-f]+) ([0-9a-f]+) [bB] .*tensor_arena", syms, re.M)
    assert arena and int(arena.group(2), 16) == report["arena"]["arena_bytes"]
    model = re.search(r"^([0-9a-f]+) ([0-9a-f]+) [rR] fwtool_model$", syms, re.M)
    assert model and int(model.group(1), 16) % 16 == 0 and int(model.group(1), 16) < 0x20000000
    off = int(model.group(1), 16) - 0x10000000
    assert (out / "firmware.bin").read_bytes()[off:off + 3936] == modelgen.FIRE_ALARM.read_bytes()


def test_second_model_rebuilds_only_what_changed(built, tmp_path):
    out = tmp_path / "pico"  # its own folder: the shared build stays as it is
    first = subprocess.run([sys.executable, "-m", "fwtool", "build", "--board", "pico", "--model",
                            str(modelgen.FIRE_ALARM), "--out", str(out)], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    m = tmp_path / "fire_alarm_v2.tflite"
    m.write_bytes(modelgen.padded_model(4096))  # same ops, different bytes
    p = subprocess.run([sys.executable, "-m", "fwtool", "build", "--board", "pico", "--model", str(m),
                        "--out", str(out), "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-2000:]
    r = json.loads(p.stdout)
    assert set(r["build"]["changed_files"]) == {"model_data.cpp", "fwtool_config.h"}
    steps = [ln for ln in (out / "build.log").read_text().splitlines() if re.match(r"^\[\d+/\d+\] Building", ln)]
    assert 0 < len(steps) <= 3, steps  # main.cpp + model_data.cpp, not the SDK or TFLM
    assert r["model"]["bytes"] == m.stat().st_size
    assert not any(ln.startswith("$ cmake") for ln in (out / "build.log").read_text().splitlines())  # configured
    uf2.validate((out / "firmware.uf2").read_bytes(), 0xE48BFF56, 0x10000000,
                 expect=(out / "firmware.bin").read_bytes())


def _nm(elf):
    return subprocess.run(["arm-none-eabi-nm", "-S", "--size-sort", str(elf)], capture_output=True, text=True,
                          check=True).stdout


def test_issue14_flash_goal_and_the_levers_are_in_effect(built):
    """text <= 81,000 B; no (floating-point) printf, no int4/int16 CMSIS-NN paths, no TFLM error strings."""
    out, report = built
    assert report["sizes"]["text"] <= 81_000, report["sizes"]
    syms = _nm(out / "firmware.elf")
    for gone in ("_vfprintf_r", "_dtoa_r", "_vfiprintf_r", "arm_convolve_s4", "arm_convolve_s16",
                 "arm_nn_mat_mult_nt_t_s4", "MicroPrintf"):
        assert not re.search(rf" {gone}$", syms, re.M), gone
    assert re.search(r" arm_convolve_s8$", syms, re.M)  # the int8 path is there
    assert b"Arena size is too small" not in (out / "firmware.bin").read_bytes()  # TFLM error strings stripped
    assert b"AllocateTensors failed" in (out / "firmware.bin").read_bytes()  # fwtool's own FWT:ERROR cause stays


def test_text_by_component_adds_up_to_arm_none_eabi_size(built):
    out, report = built
    comp = report["text_by_component"]
    text = int(subprocess.run(["arm-none-eabi-size", str(out / "firmware.elf")], capture_output=True, text=True,
                              check=True).stdout.splitlines()[1].split()[0])
    assert comp["text"] == text == sum(comp["bytes"].values())
    b = comp["bytes"]
    for part in ("model", "app", "kernels", "cmsis_nn", "tflm_runtime", "sdk_usb"):
        assert b[part] > 0, part
    assert b["model"] >= report["model"]["bytes"]
    assert b["linker_padding"] < 0.02 * text  # the map accounts for nearly every byte
    assert sum(r["bytes"] for r in comp["rows"]) == text

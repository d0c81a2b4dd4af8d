"""The nrf52 family (Arduino Nano 33 BLE boards): the generated project is what the board file implies (TinyUSB's
linker script at 0x10000, nrfx start-up, the 1200-baud hook, only the model's kernels), the image check refuses
anything over the bootloader, the fit check counts the bootloader as used, and (when the pinned trees, the
toolchain and qemu-system-arm are present) one real build of fire_alarm and its virtual Cortex-M4 validation."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import modelgen
import pytest
from click.testing import CliRunner

from fwtool.cli import cli as main
from fwtool.core import runner, vendor
from fwtool.core.boards import all_boards, get_board
from fwtool.core.errors import BadInput, Exit
from fwtool.firmware import render
from fwtool.firmware.context import template_context
from fwtool.firmware.families import CompiledFiles, get_family
from fwtool.firmware.families.nrf52_sources import validate_image
from fwtool.firmware.plan import BuildOptions, plan
from fwtool.image import ihex

NANOS = sorted(b.name for b in all_boards().values() if b.family == "nrf52")


def _reason() -> str | None:
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size", "cmake", "ninja"):
        if runner.which(tool) is None:
            return f"{tool} not installed"
    for dep in vendor.deps_for("nrf52", "build"):
        if vendor.locate(dep).path is None:
            return f"vendor tree {dep.name} not synced ('fwtool vendor sync {dep.name}')"
    return None


def test_the_boards_memory_keeps_the_bootloader():
    for name in NANOS:
        b = get_board(name)
        assert (b.flash_base, b.flash_bytes, b.sram_base, b.sram_bytes) == (0x10000, 0xF0000, 0x20000000, 0x40000)
        assert (b.memory.bootloader_base, b.memory.bootloader_bytes, b.memory.chip_flash_bytes) == (0, 0x10000,
                                                                                                    0x100000)
        assert b.usb_app == (0x2341, 0x805A) and b.usb_bootsel == (0x2341, 0x005A) and b.usb.bootloader == "samba"
        assert b.runners == ("samba",) and b.runner_settings["reset"]["strategies"] == ["touch_1200"]
        assert (b.rgb_led.red, b.rgb_led.green, b.rgb_led.blue, b.rgb_led.on_level) == (24, 16, 6, 0)
    assert get_board("nano33ble").pdm_mic is None
    for name in ("nano33ble_sense", "nano33ble_sense_rev2"):
        m = get_board(name).pdm_mic
        assert (m.power_pin, m.clk_pin, m.data_pin) == (17, 26, 25)
    assert get_board("nano33ble_sense_rev2").pdm_mic.mic == "MP34DT06JTR"


def _vectors(sp: int, pc: int) -> bytes:
    return sp.to_bytes(4, "little") + pc.to_bytes(4, "little") + bytes(56)


def test_hex_check_refuses_the_bootloader_region_and_a_bad_vector_table(tmp_path):
    board = get_board("nano33ble_sense")
    good = [(0x10000, _vectors(0x20040000, 0x10201))]
    assert validate_image(ihex.write(good).encode(), board).start == 0x10000
    bad = {
        "outside flash": [(0x0, _vectors(0x20040000, 0x201))] + good,  # over the bootloader
        "no valid vector table": [(0x10000, _vectors(0x10000000, 0x10201))],  # stack not in RAM
        "reset 0x": [(0x10000, _vectors(0x20040000, 0x10200))],  # not Thumb
    }
    for why, segs in bad.items():
        with pytest.raises(BadInput, match=why):
            validate_image(ihex.write(segs).encode(), board)
    (tmp_path / "f.bin").write_bytes(good[0][1])
    (tmp_path / "f.elf").write_bytes(b"not an elf")
    out = get_family("nrf52").package(CompiledFiles(elf=tmp_path / "f.elf", bin=tmp_path / "f.bin"), board)
    assert set(out) == {"hex", "bin"} and out["bin"] == good[0][1] and b":020000021000EC" in out["hex"]


def test_a_model_that_does_not_fit_beside_the_bootloader_stops_before_compiling(tmp_path):
    model = tmp_path / "big.tflite"
    model.write_bytes(modelgen.padded_model(900_000))  # < 1 MiB of chip flash, > 960 KiB app region - code
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "fwtool", "build", "--board", "nano33ble_sense", "--model",
                        str(model), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == Exit.DOES_NOT_FIT, r.stdout + r.stderr
    assert "does not fit nano33ble_sense: flash short by" in r.stdout + r.stderr and "983,040" in r.stdout + r.stderr
    assert not (out / "cmake").exists() and not (out / "firmware.hex").exists()


def test_generated_project_is_what_the_board_file_implies(fire_alarm, tmp_path):
    if _reason():
        pytest.skip(_reason())
    p = plan(BuildOptions(board="nano33ble_sense", model=fire_alarm, out_dir=tmp_path / "out"))
    fam = get_family("nrf52")
    paths = fam.vendor_paths()
    files = render.render_all(fam.template_dir, template_context(p, paths, fam.patches(p, paths, tmp_path / "p")),
                              p.app)
    cml = files["CMakeLists.txt"]
    kernels = set(re.findall(r"kernels/([\w/]+\.cpp)", cml))
    assert {"cmsis_nn/conv.cpp", "cmsis_nn/fully_connected.cpp", "cmsis_nn/pooling.cpp", "logistic.cpp",
            "reshape.cpp"} <= kernels  # the model's ops (CMSIS-NN where it has one) and their helpers, no others:
    assert not {"cmsis_nn/softmax.cpp", "softmax.cpp", "cmsis_nn/depthwise_conv.cpp", "cmsis_nn/add.cpp"} & kernels
    assert "boards/arduino_nano33_ble/arduino_nano33_ble.ld" in cml and "gcc_startup_nrf52840.S" in cml
    assert "dcd_nrf5x.c" in cml and "nrfx_pdm.c" not in cml  # the microphone driver only for audio apps
    assert "-mfloat-abi=hard" in cml and "FWT_LED_PIN=13" in cml and "NRF52840_XXAA" in cml
    plat = files["fwt_platform.cpp"]
    assert "NRF_POWER->GPREGRET = FWT_BOOTLOADER_MAGIC" in plat and "0xB0u" in plat and "bit_rate == 1200" in plat
    assert "nrf_gpio_pin_write(24u, 1u)" in plat  # the RGB LED (active low) off at start
    # the book's colours: green (P0.16) on "yes", red (P0.24) on "no", blue (P0.06) on another keyword
    assert "nrf_gpio_pin_write(16u, yes ? 0u : 1u)" in plat and "nrf_gpio_pin_write(24u, no ? 0u : 1u)" in plat
    assert "nrf_gpio_pin_write(6u, other ? 0u : 1u)" in plat
    assert ".idVendor = 0x2341" in files["usb_descriptors.c"] and ".idProduct = 0x805A" in files["usb_descriptors.c"]


@pytest.fixture(scope="module")
def nano_build(tmp_path_factory):
    reason = _reason()
    if reason:
        pytest.skip(reason)
    if not modelgen.FIRE_ALARM.is_file():
        pytest.skip("shared fire_alarm model not found")
    out = tmp_path_factory.mktemp("nano") / "out"
    r = CliRunner().invoke(main, ["build", "--board", "nano33ble_sense", "--model", str(modelgen.FIRE_ALARM),
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_real_build_sits_at_0x10000_inside_the_flash(nano_build):
    out = nano_build
    board = get_board("nano33ble_sense")
    img = validate_image((out / "firmware.hex").read_bytes(), board)
    assert img.start == 0x10000 and img.end <= 0x100000
    assert (out / "firmware.bin").read_bytes() == img.flat(origin=0x10000)[1]
    report = json.loads((out / "report.json").read_text())
    berkeley = subprocess.run(["arm-none-eabi-size", str(out / "firmware.elf")], capture_output=True, text=True,
                              check=True).stdout.splitlines()[1].split()
    assert [report["sizes"][k] for k in ("text", "data", "bss")] == [int(x) for x in berkeley[:3]]
    nm = subprocess.run(["arm-none-eabi-nm", str(out / "firmware.elf")], capture_output=True, text=True,
                        check=True).stdout
    for sym in ("tud_cdc_line_state_cb", "USBD_IRQHandler", "POWER_CLOCK_IRQHandler", "_start"):
        assert re.search(rf" [TW] {sym}$", nm, re.MULTILINE), sym


def test_virtual_m4_validation(nano_build):
    if runner.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm not installed (apt-get install qemu-system-arm)")
    from fwtool.validate.flow import ValidateOptions, run
    r = run(ValidateOptions(model=modelgen.FIRE_ALARM, board="nano33ble_sense", count=5,
                            out_dir=nano_build.parent / "validate"))
    assert r["ok"], r["problems"]
    assert all(o["max_abs_diff"] <= 1 and o["top1_agreement"] == 100.0 for o in r["outputs"])
    assert r["target"]["name"].startswith("virtual Cortex-M4") and r["target"]["invoke_instructions"] > 100_000
    assert "not cycle-accurate" in r["timing_note"]


def test_kws_board_image_has_the_real_microphone(tmp_path):
    """The microphone (nrfx PDM on the board's pins) is compiled into the board image with the board's defines; it
    was once compiled in the app objects without them, and the board image had only the no-microphone stub."""
    reason = _reason()
    if reason:
        pytest.skip(reason)
    out = tmp_path / "kws"
    r = CliRunner().invoke(main, ["build", "--board", "nano33ble_sense", "--app", "kws", "--model",
                                  "example:micro_speech", "--out", str(out)])
    if r.exit_code != 0 and "not in the cache" in r.output:
        pytest.skip(r.output.strip().splitlines()[0])
    assert r.exit_code == 0, r.output
    nm = lambda elf: subprocess.run(["arm-none-eabi-nm", str(elf)], capture_output=True, text=True,  # noqa: E731
                                    check=True).stdout
    assert re.search(r" T nrfx_pdm_init$", nm(out / "firmware.elf"), re.MULTILINE)
    assert "nrfx_pdm_init" not in nm(out / "cmake" / "firmware_vm4.elf")  # the virtual M4's audio is the host's

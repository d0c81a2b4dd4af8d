"""The psoc6 family: the generated project is what the model and the board file imply, the .hex check, the fit
refusal before compiling, and (when the pinned trees, the toolchain and qemu-system-arm are present) one real kit
build and the virtual Cortex-M4 validation."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import modelgen
from fwtool.firmware import render
from fwtool.firmware.context import template_context
from fwtool.firmware.families import CompiledFiles, get_family
from fwtool.firmware.families.psoc6_sources import mtb_files, validate_image
from fwtool.firmware.plan import BuildOptions, plan
from fwtool.cli import cli as main
from fwtool.core import runner, vendor
from fwtool.core.boards import all_boards, get_board
from fwtool.core.errors import BadInput, Exit
from fwtool.image import ihex

KITS = sorted(b.name for b in all_boards().values() if b.family == "psoc6")
KERNELS = ["cmsis_nn/conv.cpp", "cmsis_nn/fully_connected.cpp", "cmsis_nn/pooling.cpp", "cmsis_nn/softmax.cpp",
           "logistic.cpp", "reshape.cpp", "resize_nearest_neighbor.cpp"]


def fake_trees(root: Path) -> dict[str, Path]:
    """Every psoc6 vendor tree as a miniature: the files the family looks up, a pico-tflmicro with a few kernels."""
    paths = {d.name: root / d.name for d in vendor.deps_for("psoc6", "build")}
    for p in paths.values():
        p.mkdir(parents=True)
    for bsp, series in (("TARGET_CY8CKIT-062S2-43012", "02"), ("TARGET_CY8CPROTO-062-4343W", "02"),
                        ("TARGET_CY8CKIT-062-BLE", "01")):
        gcc = paths[bsp] / "COMPONENT_CM4/TOOLCHAIN_GCC_ARM"
        gcc.mkdir(parents=True)
        (gcc / f"startup_psoc6_{series}_cm4.S").write_text("")
    cm0p = paths["cat1cm0p"] / "COMPONENT_CAT1A"
    (cm0p / "COMPONENT_CM0P_SLEEP").mkdir(parents=True)
    (cm0p / "COMPONENT_CM0P_BLESS").mkdir(parents=True)
    (cm0p / "COMPONENT_CM0P_BLESS/psoc6_cm0p_bless.c").write_text("")
    tflm = paths["pico-tflmicro"]
    lines = []
    for rel in ["src/tensorflow/lite/micro/micro_interpreter.cpp", "src/tensorflow/lite/micro/system_setup.cpp",
                "src/tensorflow/lite/micro/micro_time.cpp",
                "src/third_party/cmsis_nn/Source/NNSupportFunctions/arm_nn_mat_mult_nt_t_s8.c",
                *(f"src/tensorflow/lite/micro/kernels/{k}" for k in KERNELS)]:
        (tflm / rel).parent.mkdir(parents=True, exist_ok=True)
        body = "#define TF_LITE_PICO_MULTICORE\n" if "mat_mult" in rel else ""
        if "/kernels/" in rel:
            body = f"TFLMRegistration Register_{Path(rel).stem.upper()}() {{\n  op_params.half_pixel_centers = false;\n}}\n"
        (tflm / rel).write_text(body)
        lines.append(f"  ${{CMAKE_CURRENT_LIST_DIR}}/{rel}")
    (tflm / "CMakeLists.txt").write_text("target_sources(pico-tflmicro\n" + "\n".join(lines) + "\n)\n")
    return paths


@pytest.mark.parametrize("kit", KITS)
def test_generated_project_is_what_the_model_and_board_imply(kit, fire_alarm, tmp_path):
    p = plan(BuildOptions(board=kit, model=fire_alarm, out_dir=tmp_path / "out"))
    fam = get_family("psoc6")
    paths = fake_trees(tmp_path / "trees")
    patches = fam.patches(p, paths, tmp_path / "tflm_patched")
    files = render.render_all(fam.template_dir, template_context(p, paths, patches), p.app)
    cml, board = files["CMakeLists.txt"], get_board(kit)
    kernels = set(re.findall(r"kernels/([\w/]+\.cpp)", cml))
    assert kernels == {"cmsis_nn/conv.cpp", "cmsis_nn/fully_connected.cpp", "cmsis_nn/pooling.cpp", "logistic.cpp",
                       "reshape.cpp"}  # exactly the model's (CMSIS-NN where it has one), no softmax
    assert "resize_nearest_neighbor.cpp" in cml and "tflm_patched/resize_nearest_neighbor.cpp" in cml  # the fix
    assert "tflm_patched/arm_nn_mat_mult_nt_t_s8.c" in cml  # no pico dual-core define on the M4
    assert "system_setup.cpp" not in cml and "micro_time.cpp" not in cml  # pico-sdk only
    assert "-mfloat-abi=hard" in cml and "-mfpu=fpv4-sp-d16" in cml and "-mcpu=cortex-m4" in cml
    assert "MicroMutableOpResolver<6>" in files["ops_resolver.h"]
    led, uart = board.led, board.uart
    assert f"FWT_LED_PORT=GPIO_PRT{led.port}" in cml and f"FWT_LED_PIN={led.pin}U" in cml
    assert f"FWT_UART_TX_HSIOM=P{uart.tx_port}_{uart.tx_pin}_SCB{uart.scb}_UART_TX" in cml
    assert board.sdk.device in cml and board.sdk.cm0p_image in cml
    assert "firmware_vm4.elf" in cml and "vm4.ld" in cml  # the virtual Cortex-M4 link of the same objects
    mk = files["Makefile"]
    assert f"TARGET={board.sdk.bsp[len('TARGET_'):]}" in mk and "include $(CY_TOOLS_DIR)/make/start.mk" in mk
    assert "VFP_SELECT=hardfp" in mk and "vm4_platform.cpp" in files[".cyignore"]
    mtb = mtb_files(board)
    man = vendor.manifest()
    assert f"deps/{board.sdk.bsp}.mtb" in mtb and len([n for n in mtb if "TARGET_" in n]) == 1
    pdl = man["mtb-pdl-cat1"]
    assert mtb["deps/mtb-pdl-cat1.mtb"] == (f"https://github.com/Infineon/mtb-pdl-cat1#{pdl.version}"
                                            f"#$$ASSET_REPO$$/mtb-pdl-cat1/{pdl.version}\n")


def _vectors(sp: int, pc: int) -> bytes:
    return sp.to_bytes(4, "little") + pc.to_bytes(4, "little") + bytes(56)


@pytest.mark.parametrize("kit", KITS)
def test_hex_check(kit, tmp_path):
    board = get_board(kit)
    app = board.app_flash_base
    base, ram = board.flash_base, board.sram_base
    good = [(base, _vectors(0x08002000, base + 0x101)), (app, _vectors(ram + 0x1000, app + 0x201))]
    assert validate_image(ihex.write(good).encode(), board).start == base
    bad = {
        "outside flash": good + [(base + board.flash_bytes, b"\0" * 4)],
        "no valid CM4 vector table": good[:1],
        "no valid CM0\\+ image": good[1:],
        "reset 0x": [good[0], (app, _vectors(ram + 0x1000, app + 0x200))],  # not Thumb
    }
    for why, segs in bad.items():
        with pytest.raises(BadInput, match=why):
            validate_image(ihex.write(segs).encode(), board)
    # package: the ELF's segments (here a raw .bin at the flash base) -> Intel HEX, validated
    flat = bytearray(b"\xff" * (app - base + 64))
    flat[:64], flat[app - base:] = good[0][1], good[1][1]
    (tmp_path / "f.bin").write_bytes(bytes(flat))
    (tmp_path / "f.elf").write_bytes(b"not an elf")
    out = get_family("psoc6").package(CompiledFiles(elf=tmp_path / "f.elf", bin=tmp_path / "f.bin"), board)
    assert set(out) == {"hex"} and out["hex"].startswith(b":02000004") and out["hex"].endswith(b":00000001FF\r\n")


def test_a_model_that_does_not_fit_stops_before_compiling(tmp_path):
    model = tmp_path / "big.tflite"
    model.write_bytes(modelgen.padded_model(2_200_000))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "fwtool", "build", "--board", "cy8ckit_062s2_43012", "--model",
                        str(model), "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == Exit.DOES_NOT_FIT, r.stdout + r.stderr
    assert "does not fit cy8ckit_062s2_43012: flash short by" in r.stdout + r.stderr
    assert not (out / "cmake").exists() and not (out / "firmware.hex").exists()


# ---- integration: the real build and the virtual Cortex-M4 ------------------------------------------------------

def _psoc6_reason() -> str | None:
    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-size", "cmake", "ninja"):
        if runner.which(tool) is None:
            return f"{tool} not installed"
    for dep in vendor.deps_for("psoc6", "build"):
        if vendor.locate(dep).path is None:
            return f"vendor tree {dep.name} not synced ('fwtool vendor sync {dep.name}')"
    return None


@pytest.fixture(scope="session")
def psoc6_build(tmp_path_factory):
    """One real `fwtool build --board cy8ckit_062s2_43012` of fire_alarm (ccache on), shared by the tests below."""
    reason = _psoc6_reason()
    if reason:
        print(f"skipping the PSoC 6 build: {reason}")
        pytest.skip(reason)
    model = Path(__file__).resolve().parents[2] / "shared/models/fire_alarm.tflite"
    if not model.is_file():
        pytest.skip("shared fire_alarm model not found")
    out = tmp_path_factory.mktemp("psoc6") / "out"
    r = CliRunner().invoke(main, ["build", "--board", "cy8ckit_062s2_43012", "--model", str(model), "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out, model


def test_real_build_gives_a_valid_hex_and_sizes_equal_to_arm_none_eabi_size(psoc6_build):
    import json
    out, _ = psoc6_build
    board = get_board("cy8ckit_062s2_43012")
    img = validate_image((out / "firmware.hex").read_bytes(), board)
    assert img.start == board.flash_base and img.end <= board.flash_base + board.flash_bytes
    report = json.loads((out / "report.json").read_text())
    # Berkeley text/data/bss as arm-none-eabi-size prints them (text includes the BSP's read-only NOBITS .heap)
    berkeley = subprocess.run(["arm-none-eabi-size", str(out / "firmware.elf")], capture_output=True, text=True,
                              check=True).stdout.splitlines()[1].split()
    assert [report["sizes"][k] for k in ("text", "data", "bss")] == [int(x) for x in berkeley[:3]]
    # the flash figure: the loadable bytes, i.e. what the .hex holds
    assert report["sizes"]["flash"] == img.size


def test_virtual_m4_validation(psoc6_build):
    if runner.which("qemu-system-arm") is None:
        print("skipping the virtual Cortex-M4 run: qemu-system-arm not installed")
        pytest.skip("qemu-system-arm not installed (apt-get install qemu-system-arm)")
    from fwtool.validate.flow import ValidateOptions, run
    out, model = psoc6_build
    r = run(ValidateOptions(model=model, board="cy8ckit_062s2_43012", count=5, out_dir=out.parent / "validate"))
    assert r["ok"], r["problems"]
    assert all(o["max_abs_diff"] <= 1 and o["top1_agreement"] == 100.0 for o in r["outputs"])
    assert r["target"]["name"].startswith(("virtual Cortex-M4", "the virtual PSoC 6")) and r["target"]["invoke_instructions"] > 100_000
    assert "not cycle-accurate" in r["timing_note"] or "no cycle timing" in r["timing_note"]

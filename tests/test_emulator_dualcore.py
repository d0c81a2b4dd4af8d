"""Core 1 on the virtual RP2040 (fwtool/emulator/core1.mjs, part of the pinned rp2040js patch set).

* The patch self-test (`node patches.mjs --self-test <rp2040js> <bootrom>`): upstream facts core 1 relies on, then
  every behaviour (CPUID, FIFOs both ways with VLD/RDY/WOF/ROE and SIO_IRQ_PROC0/1, per-core divider,
  interpolators, NVIC and SysTick, shared spinlocks and GPIO, interrupt routing, SEV/WFE, lock-step by cycles, the
  time base following clk_sys, PSM reset of core 1) and the real B1 bootrom's core-1 launch handshake.
* A test app built with the real pico-sdk (multicore calls: FIFO both ways, a spinlock, a core-1 FIFO interrupt)
  run on the virtual board.

Needs Node + rp2040js + the bootrom (and for the app the ARM toolchain and SDK trees); skips with the reason
otherwise.
"""
import json
import subprocess

from fwtool.emulator import bootrom, node
from fwtool.emulator.session import RUNNER_JS

PATCHES = RUNNER_JS.parent / "patches.mjs"


def _self_test(*extra):
    n = node.find_node()
    pkg = node.ensure_rp2040js()
    p = subprocess.run([n.path, str(PATCHES), "--self-test", str(pkg.entry), *map(str, extra)], capture_output=True,
                       text=True, timeout=120)
    return p, json.loads(p.stdout.strip().splitlines()[-1])


def test_core1_patch_self_test_with_the_real_bootrom_handshake(emulator_ready):
    p, report = _self_test(bootrom.bootrom_file())
    assert report["ok"] and p.returncode == 0, report["problems"]
    assert report["core1_handshake"] is True


def test_core1_self_test_fails_loudly_when_a_behaviour_is_broken(emulator_ready, tmp_path):
    """The self-test can fail: a copy of core1.mjs whose CPUID is always 0 and whose lock-step always picks core 0
    is reported, behaviour by behaviour."""
    src = (RUNNER_JS.parent / "core1.mjs").read_text()
    broken = src.replace("if (offset === CPUID) return this.coreIndex;", "if (offset === CPUID) return 0;")
    broken = broken.replace("i = next[1] < next[0] ? 1 : 0;", "i = this.instructions % 2;")
    assert broken != src
    for name in ("patches.mjs", "flashchip.mjs"):
        (tmp_path / name).write_text((RUNNER_JS.parent / name).read_text())
    (tmp_path / "core1.mjs").write_text(broken)
    n = node.find_node()
    p = subprocess.run([n.path, str(tmp_path / "patches.mjs"), "--self-test", str(node.ensure_rp2040js().entry)],
                       capture_output=True, text=True, timeout=120)
    report = json.loads(p.stdout.strip().splitlines()[-1])
    assert p.returncode == 1 and not report["ok"]
    assert any("CPUID" in x for x in report["problems"])
    assert any("drifted" in x or "diverged" in x for x in report["problems"])


# ---- a pico-sdk app using both cores, on the virtual board --------------------------------------------------------
import re  # noqa: E402
import shutil  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from fwtool import emulator  # noqa: E402
from fwtool.core import vendor  # noqa: E402

APP = Path(__file__).resolve().parent / "apps" / "multicore"


@pytest.fixture(scope="module")
def multicore_elf(tmp_path_factory, real_build_reason, emulator_ready):
    if real_build_reason:
        pytest.skip(real_build_reason)
    sdk = vendor.require(vendor.manifest()["pico-sdk"])
    work = tmp_path_factory.mktemp("mc")
    gen = ["-G", "Ninja"] if shutil.which("ninja") else []
    launcher = ["-DCMAKE_C_COMPILER_LAUNCHER=ccache"] if shutil.which("ccache") else []
    cfg = subprocess.run(["cmake", "-S", str(APP), "-B", str(work), *gen, f"-DPICO_SDK_PATH={sdk}",
                          "-DPICO_NO_PICOTOOL=1", "-DPICO_BOARD=pico", "-DCMAKE_BUILD_TYPE=Release", *launcher],
                         capture_output=True, text=True, timeout=300)
    assert cfg.returncode == 0, cfg.stdout[-2000:] + cfg.stderr[-2000:]
    b = subprocess.run(["cmake", "--build", str(work), "-j", "2"], capture_output=True, text=True, timeout=900)
    assert b.returncode == 0, b.stdout[-3000:]
    return work / "multicore_test.elf"


def test_sdk_multicore_app_runs_on_both_virtual_cores(multicore_elf):
    r = emulator.run_capture(multicore_elf, count=1, until="MC:DONE", timeout=120, max_emulated_s=10)
    assert r.ok, (r.reason, r.detail, r.lines)
    line = next(ln for ln in r.lines if ln.startswith("MC:RESULT"))
    f = dict(re.findall(r"(\w+)=(\S+)", line))
    assert f["hello"] == "0xc1000001"  # core 1 ran core1_main and read CPUID = 1
    assert f["echo_ok"] == "20/20"  # core 0 -> core 1 -> core 0 through the FIFOs, every word
    assert int(f["irqs"]) >= 20  # ... answered from core 1's SIO_IRQ_PROC1 handler
    assert f["count"] == "10000/10000"  # the spinlock kept both cores' read-modify-writes whole
    assert int(f["unlocked"]) < 10000  # without it updates are lost: the cores really interleave
    assert f["div0"] == "0" and f["div1"] == "0"  # each core's hardware divider, used at the same time
    assert f["done"] == "0xd0de"
    ev = next(e for e in r.events if e["event"] == "exit")
    assert ev["core1_resets"] == 1  # multicore_reset_core1 went through the PSM
    assert min(ev["core_cycles"]) > 100_000  # both cores executed


# ---- one image: validate / profile / run --emulator on the default dual-core build -------------------------------
import sys  # noqa: E402

from fwtool.core.errors import Exit  # noqa: E402
from fwtool.core.files import file_sha256  # noqa: E402


def _fwtool(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "fwtool", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_a_clock_not_in_the_board_file_is_refused_with_the_list(fire_alarm, tmp_path):
    out = tmp_path / "out"
    p = _fwtool("build", "-b", "pico", "-m", fire_alarm, "--out", out, "--clock", "133")
    assert p.returncode == Exit.BAD_INPUT, p.stderr
    assert "133" in p.stderr and "125, 150, 200" in p.stderr and "fix:" in p.stderr
    assert "Traceback" not in p.stderr and not out.exists()
    p = _fwtool("build", "-b", "pico", "-m", fire_alarm, "--out", out, "--clock", "fast")
    assert p.returncode == Exit.BAD_INPUT and "default, fastest, 125, 150, 200" in p.stderr


def test_speed_choices_resolve_from_the_board_file():
    from fwtool.core.boards import get_board
    from fwtool.firmware import speed

    pico = get_board("pico")
    assert speed.resolve_clock(pico, None) == 125 and speed.resolve_clock(pico, "fastest") == 200
    assert speed.resolve_clock(pico, "150") == 150
    assert speed.sdk_clock_cmake(pico, 125) == []  # the default build is unchanged
    assert "PICO_USE_FASTEST_SUPPORTED_CLOCK" in speed.sdk_clock_cmake(pico, 200)[0]
    assert "SYS_CLK_HZ=150000000" in speed.sdk_clock_cmake(pico, 150)[0]
    # --opt speed's options follow the CPU: the M0+'s register allocator choice, not the M33's or M4's
    assert speed.speed_flags(pico)[0] == "-O3" and "-fira-algorithm=priority" in speed.speed_flags(pico)
    for other in ("pico2", "cy8cproto_062_4343w"):
        flags = speed.speed_flags(get_board(other))
        assert flags[0] == "-O3" and "-fira-algorithm=priority" not in flags


def test_validate_runs_the_default_dual_core_image_and_names_it(fire_alarm, emulator_ready, real_build_reason,
                                                                 tmp_path):
    if real_build_reason:
        pytest.skip(real_build_reason)
    out = tmp_path / "val"
    p = _fwtool("validate", "-m", fire_alarm, "--count", "5", "--out", out)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "TFLM on 2 cores" in p.stdout and "result    PASS" in p.stdout
    assert f"image     {out / 'firmware.uf2'}" in p.stdout
    p = _fwtool("validate", "-m", fire_alarm, "--count", "5", "--out", out, "--json")
    r = json.loads(p.stdout)
    fw = r["firmware"]
    assert r["ok"] and fw["tflm_cores"] == 2 and fw["sha256"] == file_sha256(out / "firmware.uf2")
    assert fw["banner"]["cores"] == 2 and fw["banner"]["clock_mhz"] == 125 and fw["banner"]["opt"] == "size"
    assert all(o["max_abs_diff"] == 0 for o in r["outputs"])  # dual-core arithmetic is bit-identical
    # the image fwtool build makes, vectors fed over its console: no separate validation build
    assert fw["mode"] == "image" and fw["app"] == "inference" and fw["image"] == str(out / "firmware.uf2")
    assert json.loads((out / "report.json").read_text())["build"]["app"] == "inference"
    p = _fwtool("build", "-b", "pico", "-m", fire_alarm, "--out", tmp_path / "built")
    assert p.returncode == 0, p.stderr[-3000:]
    assert file_sha256(tmp_path / "built" / "firmware.uf2") == fw["sha256"]  # = what fwtool build writes


def test_fastest_speed_build_carries_its_choices_and_matches_the_reference(fire_alarm, emulator_ready,
                                                                           real_build_reason, tmp_path):
    if real_build_reason:
        pytest.skip(real_build_reason)
    p = _fwtool("validate", "-m", fire_alarm, "--count", "5", "--out", tmp_path / "v", "--clock", "fastest",
                "--opt", "speed", "--json")
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout)
    assert r["ok"] and all(o["max_abs_diff"] == 0 for o in r["outputs"])
    assert (r["firmware"]["banner"]["clock_mhz"], r["firmware"]["banner"]["opt"]) == (200, "speed")
    assert r["target"]["clock_mhz"] == 200  # the emulator's time base followed the PLL the firmware set
    report = json.loads((tmp_path / "v" / "report.json").read_text())
    assert (report["build"]["clock_mhz"], report["build"]["opt"], report["build"]["clock"]) == (200, "speed",
                                                                                             "fastest")
    cmake = (tmp_path / "v" / "project" / "CMakeLists.txt").read_text()
    assert 'COMPILE_OPTIONS "-O3;-fno-math-errno;-fno-trapping-math;-fira-algorithm=priority"' in cmake


def test_run_emulator_uses_the_build_folder_and_profile_reports_cores(fire_alarm, emulator_ready,
                                                                      real_build_reason, tmp_path):
    if real_build_reason:
        pytest.skip(real_build_reason)
    out = tmp_path / "pico"
    p = _fwtool("run", "-b", "pico", "-m", fire_alarm, "--emulator", "--count", "2", "--out", out, "--json")
    assert p.returncode == 0, p.stderr[-3000:]
    assert (out / "firmware.uf2").is_file() and not (tmp_path / "pico-emulator").exists()
    assert json.loads((out / "report.json").read_text())["build"]["tflm_cores"] == 2
    p = _fwtool("profile", "-m", fire_alarm, "--out", tmp_path / "prof", "--json")
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout)["profile"]
    assert r["firmware"]["tflm_cores"] == 2 and r["target"]["clock_hz"] == 125e6
    assert r["cores"]["core_busy_us_per_invoke"][0] > 0 and r["cores"]["core1_launches"] == 0  # no 1x1 conv


def _corpus_model(name: str):
    """The coverage corpus' int8 model ``name``, or a skip saying why there is none (no TensorFlow, refused)."""
    import models_tf as M

    try:
        path, why = M.corpus_tflite(name, "int8")
    except Exception as e:  # TensorFlow missing
        pytest.skip(f"coverage corpus not available: {e}")
    if path is None:
        pytest.skip(why)
    return path


def test_a_multi_op_corpus_model_validates_on_the_dual_core_image(emulator_ready, real_build_reason, tmp_path):
    if real_build_reason:
        pytest.skip(real_build_reason)
    path = _corpus_model("multi_io")
    p = _fwtool("validate", "-m", path, "--count", "5", "--out", tmp_path / "mio", "--json")
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout)
    assert r["ok"] and r["firmware"]["tflm_cores"] == 2 and r["firmware"]["banner"]["cores"] == 2
    assert r["firmware"]["mode"] == "image" and r["firmware"]["sha256"] == file_sha256(tmp_path / "mio" / "firmware.uf2")
    assert len(r["outputs"]) > 1 and all(o["max_abs_diff"] == 0 for o in r["outputs"])  # every output, exact


def test_profile_times_each_core_where_pico_tflmicro_splits_the_work(emulator_ready, real_build_reason, tmp_path):
    """The coverage corpus' conv model has one 1x1 convolution (SeparableConv2D's pointwise part): the only layer
    pico-tflmicro splits across the cores. The firmware's own per-core timing of that split matches the emulator's
    count of core 1's busy cycles."""
    if real_build_reason:
        pytest.skip(real_build_reason)
    path = _corpus_model("conv")
    p = _fwtool("profile", "-m", path, "--out", tmp_path / "prof", "--json")
    assert p.returncode == 0, p.stderr[-3000:]
    r = json.loads(p.stdout)["profile"]
    split = [x for x in r["layers"] if x["cores"]["split_calls"]]
    assert [x["op"] for x in split] == ["CONV_2D"] and split[0]["macs"] < r["layers"][0]["macs"]  # the 1x1 one
    c = split[0]["cores"]
    assert c["core1_us"] > 0.3 * split[0]["us"] and c["core0_us"] <= split[0]["us"]  # about half on core 1
    assert all(x["cores"]["core1_us"] == 0 for x in r["layers"] if x not in split)
    assert r["core_us"][1] == c["core1_us"]
    emulated_core1 = r["cores"]["core_busy_us_per_invoke"][1]  # the emulator's count, whole run / invokes
    assert abs(emulated_core1 - c["core1_us"]) <= 0.05 * c["core1_us"] + 20
    assert any("times each core's share" in n for n in r["firmware"]["notes"])

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

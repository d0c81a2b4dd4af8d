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

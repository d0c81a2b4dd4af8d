"""Faults speak (issue 22 item 3): a CPU fault prints one FWT:FAULT line, the monitor / virtual targets decode its pc
and lr with the build's ELF (function and file:line) and end with exit 10.

* Units: the line parser, the decoder against a small ELF compiled here (and against arm-none-eabi-addr2line), the
  verdicts, the [debug] on_fault board key, the two pico-sdk fault handler templates being one file.
* The fault test app (templates/apps/fault) on the virtual RP2040 (rp2040js; USB CDC, halt) and, from a user board
  file with ``[stdio] default = "uart"`` and ``[debug] on_fault = "reset"``, over UART with a reset; through
  ``fwtool emulate``, ``fwtool monitor --elf`` on the served virtual board and ``fwtool run --emulator``.
* The same app on the virtual PSoC 6 (Unicorn): the real image's BSP -> PDL -> fwtool fault path.

Builds need the ARM toolchain and the pinned trees, the virtual RP2040 Node and rp2040js, the virtual PSoC 6 the
unicorn package; each skips with its reason where that is absent.
"""
from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import build_prerequisites
from modelgen import FIRE_ALARM
from fwtool.core import protocol
from fwtool.core.errors import BadInput, Exit
from fwtool.image.symbols import Symbolizer, check_elf, decode_fault, fault_places

ROOT = Path(__file__).resolve().parents[1]
FAULT_ADDRESS = 0x30000000  # templates/apps/fault/main.cpp.j2

PSOC6_LINE = ("FWT:FAULT kind=hardfault cfsr=0x00008200 hfsr=0x40000000 pc=0x100221EA lr=0x1002220B xpsr=0x61000000 "
              "bfar=0x30000000")
M0_LINE = ("FWT:FAULT kind=hardfault pc=0x10000BB8 lr=0x10000BD7 xpsr=0x01000000 r0=0x40054000 r1=0x0001B48E "
           "r2=0x0001B48E r3=0x30000000 r12=0x00000000 sp=0x20041FF8 core=0")


def _fwtool(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", "fwtool", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


# ---- the line ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("line", [PSOC6_LINE, M0_LINE, "[00:01.2] " + M0_LINE])
def test_a_fault_line_parses_to_a_firmware_error_with_its_registers(line):
    p = protocol.parse_line(line)
    assert isinstance(p, protocol.FirmwareFault) and isinstance(p, protocol.FirmwareError)
    assert p.fields["kind"] == "hardfault" and p.text.startswith("the CPU faulted: kind=hardfault")
    assert p.address("pc") in (0x100221EA, 0x10000BB8) and p.address("xpsr") & (1 << 24)  # Thumb bit
    assert p.address("nope") is None and p.to_dict()["type"] == "fault"


def test_the_register_values_of_the_m0_line():
    p = protocol.parse_line(M0_LINE)
    assert p.address("r3") == FAULT_ADDRESS and p.fields["core"] == "0" and p.address("sp") == 0x20041FF8
    assert p.address("cfsr") is None  # the Cortex-M0+ has no fault status registers
    assert protocol.parse_line("FWT:FAULT kind=hardfault pc=zz").address("pc") is None
    assert protocol.parse_line("FWT:FAULTY pc=0x1") is None  # another word, free text


def test_without_an_elf_the_line_stays_as_it_came(tmp_path):
    assert decode_fault(M0_LINE, None) == M0_LINE
    assert decode_fault(M0_LINE, tmp_path / "missing.elf") == M0_LINE
    assert decode_fault("FWT:BOOT model=x", tmp_path / "missing.elf") == "FWT:BOOT model=x"
    assert fault_places(M0_LINE, None) == ""


def test_a_file_that_is_no_elf_is_refused(tmp_path):
    bad = tmp_path / "firmware.uf2"
    bad.write_bytes(b"UF2\n" + bytes(60))
    with pytest.raises(BadInput, match="is not an ELF file"):
        check_elf(bad)
    with pytest.raises(BadInput, match="cannot read"):
        check_elf(tmp_path / "nothing.elf")
    with pytest.raises(BadInput, match="as an ELF file"):
        Symbolizer(bad)


# ---- the decoder, on an ELF built here -----------------------------------------------------------------------------
TINY = """\
volatile unsigned sink;

__attribute__((noinline)) unsigned leaf(unsigned x) {
  return *(volatile unsigned*)0x30000000u + x;
}

__attribute__((noinline)) unsigned middle(unsigned x) {
  unsigned y = leaf(x);
  return y * 3u;
}

int main(void) {
  sink = middle(7u);
  for (;;) {
  }
}
"""


@pytest.fixture(scope="module")
def tiny_elf(tmp_path_factory):
    gcc = shutil.which("arm-none-eabi-gcc")
    if gcc is None:
        pytest.skip("arm-none-eabi-gcc not installed (apt-get install gcc-arm-none-eabi)")
    d = tmp_path_factory.mktemp("tiny")
    (d / "tiny.c").write_text(TINY)
    p = subprocess.run([gcc, "-mcpu=cortex-m0plus", "-mthumb", "-g", "-O1", "-nostdlib", "-Wl,-e,main",
                        "-Wl,-Ttext=0x10000100", "-o", str(d / "tiny.elf"), str(d / "tiny.c")], capture_output=True,
                       text=True, cwd=d)
    assert p.returncode == 0, p.stderr
    return d / "tiny.elf"


def _addr2line(elf: Path, *addrs: int) -> list[str]:
    tool = shutil.which("arm-none-eabi-addr2line")
    if tool is None:
        pytest.skip("arm-none-eabi-addr2line not installed")
    out = subprocess.run([tool, "-e", str(elf), *map(hex, addrs)], capture_output=True, text=True).stdout
    rows = [ln.rsplit("/", 1)[-1].split(" ")[0] for ln in out.splitlines()]
    return ["??:?" if r.startswith((":", "??")) else r for r in rows]  # no line ("??:?", or a CU dir and ":?")


def _symbol(elf: Path, name: str) -> tuple[int, int]:
    s = Symbolizer(elf)
    return next((a, n) for a, n, fn in s._funcs if fn == name)


def _line_of(source: str, text: str) -> int:
    return next(i for i, ln in enumerate(source.splitlines(), 1) if text in ln)


def test_pc_and_lr_become_function_and_file_line(tiny_elf):
    leaf, leaf_size = _symbol(tiny_elf, "leaf")
    middle, middle_size = _symbol(tiny_elf, "middle")
    # the faulting load: the first ldr in leaf; the lr: the instruction after middle's call of leaf
    dis = subprocess.run(["arm-none-eabi-objdump", "-d", str(tiny_elf)], capture_output=True, text=True).stdout
    body = dis.split("<middle>:")[1].split("\n\n")[0]
    bl = next(int(ln.split(":")[0], 16) for ln in body.splitlines() if "bl\t" in ln and "<leaf>" in ln)
    pc = leaf + 2 if leaf_size > 2 else leaf
    line = f"FWT:FAULT kind=hardfault pc=0x{pc:08X} lr=0x{bl + 4 + 1:08X} xpsr=0x01000000"
    out = decode_fault(line, tiny_elf)
    assert out.startswith(line + " — pc leaf (tiny.c:")
    assert f"lr middle (tiny.c:{_line_of(TINY, 'unsigned y = leaf(x);')})" in out  # the call, not the line after
    assert Symbolizer(tiny_elf).describe(0x30000000) == "0x30000000 (no function)"
    assert "pc 0x00000004 (no function)" in decode_fault("FWT:FAULT pc=0x4 lr=0x0", tiny_elf)
    assert middle_size > 0


def test_lines_equal_addr2line_for_every_instruction(tiny_elf):
    """Every halfword of every function: the same file:line as arm-none-eabi-addr2line."""
    s = Symbolizer(tiny_elf)
    addrs = [a + off for a, size, _ in s._funcs for off in range(0, size, 2)]
    want = _addr2line(tiny_elf, *addrs)
    got = [f"{w[0]}:{w[1]}" if (w := s.line(a)) else "??:?" for a in addrs]
    assert got == want and len(addrs) > 10


def test_an_elf_without_aranges_is_read_whole(tiny_elf, tmp_path):
    """Without .debug_aranges every CU's line program is decoded: the same answers."""
    bare = tmp_path / "bare.elf"
    p = subprocess.run(["arm-none-eabi-objcopy", "--remove-section", ".debug_aranges", str(tiny_elf), str(bare)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    a, b = Symbolizer(tiny_elf), Symbolizer(bare)
    assert a._aranges is not None and b._aranges is None
    addrs = [x + off for x, size, _ in a._funcs for off in range(0, size, 2)]
    assert [a.line(x) for x in addrs] == [b.line(x) for x in addrs]


def test_verdicts_for_a_fault_are_exit_10_with_a_fix(tiny_elf):
    from fwtool.emulator.result import failure
    from fwtool.monitor.conditions import firmware_error

    leaf, _ = _symbol(tiny_elf, "leaf")
    line = f"FWT:FAULT kind=hardfault pc=0x{leaf:08X} lr=0x0 xpsr=0x01000000"
    v = firmware_error(protocol.parse_line(line), tiny_elf)
    assert v.code == Exit.FIRMWARE_ERROR and "pc leaf (tiny.c:" in v.reason and "--elf" not in v.fix
    assert "--elf" in firmware_error(protocol.parse_line(line), None).fix
    e = failure("firmware-error", decode_fault(line, tiny_elf), "the virtual board")
    assert e.code == Exit.FIRMWARE_ERROR and "faulted" in e.cause and "faulting function" in e.fix
    plain = failure("firmware-error", "AllocateTensors failed", "the virtual board")
    assert "faulted" not in plain.cause and plain.code == Exit.FIRMWARE_ERROR
    assert failure("lockup", "lockup: ...").code == Exit.FIRMWARE_ERROR


# ---- board data and templates --------------------------------------------------------------------------------------
def test_on_fault_is_board_data_halt_by_default(tmp_path):
    from fwtool.core.board_schema import build_board_file
    from fwtool.core.boards import all_boards
    from fwtool.core.tomlcompat import tomllib

    assert {b.debug.on_fault for b in all_boards().values()} == {"halt"}
    data = tomllib.loads((ROOT / "boards" / "pico.toml").read_text())
    assert build_board_file({**data, "debug": {"on_fault": "reset"}}, tmp_path / "b.toml").debug.on_fault == "reset"
    with pytest.raises(BadInput, match=r"\[debug\] on_fault = 'reboot' is not") as err:
        build_board_file({**data, "debug": {"on_fault": "reboot"}}, tmp_path / "b.toml")
    assert "halt, reset" in err.value.fix
    with pytest.raises(BadInput, match="unknown key"):
        build_board_file({**data, "debug": {"on_falt": "halt"}}, tmp_path / "b.toml")


def test_the_pico_sdk_fault_handler_is_one_file_for_both_chips():
    a = (ROOT / "templates" / "rp2040" / "fwt_fault.cpp.j2").read_text()
    b = (ROOT / "templates" / "rp2350" / "fwt_fault.cpp.j2").read_text()
    assert a == b
    assert "isr_hardfault" in a and "FWTOOL_FAULT_RESET" in a and "FWT:FAULT kind=hardfault" in a
    for fam in ("rp2040", "rp2350"):
        assert "fwt_fault.cpp" in (ROOT / "templates" / fam / "CMakeLists.txt.j2").read_text()


# ---- the fault test app on the virtual RP2040 -----------------------------------------------------------------------
def _build(args: list, out: Path) -> Path:
    reason = build_prerequisites()
    if reason:
        pytest.skip(reason)
    if not FIRE_ALARM.is_file():
        pytest.skip("shared fire_alarm model not found")
    p = _fwtool("build", *args, "--app", "fault", "--out", out, "--json")
    assert p.returncode == 0, p.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def pico_fault(tmp_path_factory, emulator_ready):
    return _build(["--board", "pico", "--model", FIRE_ALARM], tmp_path_factory.mktemp("fault") / "pico")


@pytest.fixture(scope="module")
def pico_uart_reset(tmp_path_factory, emulator_ready):
    """A user board beside the model: a Pico with its console on UART0 that resets after a fault."""
    d = tmp_path_factory.mktemp("fault-uart")
    shutil.copy(FIRE_ALARM, d / "fire_alarm.tflite") if FIRE_ALARM.is_file() else None
    (d / "boards").mkdir()
    (d / "boards" / "pico_uart_reset.toml").write_text(
        'name = "pico_uart_reset"\nextends = "pico"\n\n[stdio]\ndefault = "uart"\n\n[debug]\non_fault = "reset"\n')
    return _build(["--board", "pico_uart_reset", "--model", d / "fire_alarm.tflite"], d / "out")


def _check_fault_line(line: str, elf: Path) -> protocol.FirmwareFault:
    fault = protocol.parse_line(line)
    assert isinstance(fault, protocol.FirmwareFault), line
    start, size = _symbol(elf, "fwt_fault_on_purpose")
    assert start <= fault.address("pc") < start + size  # the load itself
    assert _symbol(elf, "main")[0] <= fault.address("lr") & ~1
    return fault


def test_the_virtual_rp2040_prints_fwt_fault_over_usb_and_halts(pico_fault):
    from fwtool.emulator.targets import run_capture

    r = run_capture(pico_fault / "firmware.uf2", count=1, timeout=120)
    assert r.reason == "firmware-error", (r.reason, r.detail, r.lines[-3:])
    faults = [ln for ln in r.lines if ln.startswith(protocol.PREFIX_FAULT)]
    assert len(faults) == 1 and r.lines[0].startswith(protocol.PREFIX_BANNER)
    fault = _check_fault_line(faults[0], pico_fault / "firmware.elf")
    assert fault.address("r3") == FAULT_ADDRESS and fault.fields["core"] == "0"  # the address register, not changed
    assert "pc fwt_fault_on_purpose (main.cpp:" in r.detail and "lr main (main.cpp:" in r.detail
    assert not any("invalid memory" in str(e.get("text", "")) for e in r.events)  # a bus error, not a log line


def test_fwtool_emulate_and_run_exit_10_naming_the_function(pico_fault, tmp_path):
    p = _fwtool("emulate", pico_fault / "firmware.uf2", "--count", "1", timeout=180)
    assert p.returncode == Exit.FIRMWARE_ERROR, p.stderr
    assert "faulted" in p.stderr and "pc fwt_fault_on_purpose (main.cpp:" in p.stderr
    assert p.stdout.count(protocol.PREFIX_FAULT) == 1
    r = _fwtool("run", "--board", "pico", "--model", FIRE_ALARM, "--app", "fault", "--emulator", "--count", "1",
                "--out", pico_fault, timeout=600)  # the same folder: nothing to rebuild
    assert r.returncode == Exit.FIRMWARE_ERROR, r.stderr[-2000:]
    assert "the firmware faulted" in r.stderr and "pc fwt_fault_on_purpose (main.cpp:" in r.stderr


def test_fwtool_monitor_elf_on_the_served_virtual_board(pico_fault):
    """`fwtool emulate --serve` + `fwtool monitor --port socket://... --elf`: exit 10, the functions in the verdict.
    Then a second monitor on the same halted board (the port opened again, DTR raised): the handler kept USB alive
    and sends the line again; without --elf the fix says to pass it."""
    import re

    served = subprocess.Popen([sys.executable, "-m", "fwtool", "emulate", str(pico_fault / "firmware.uf2"),
                               "--serve", "--port", "0", "--timeout", "120"], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        url = None
        for out in served.stdout:  # it starts when the monitor attaches: nothing is missed
            found = re.search(r"socket://127\.0\.0\.1:\d+", out)
            if found and "attach" in out:
                url = found.group(0)
                break
        assert url, "the served virtual board did not say its port"
        args = ["monitor", "--port", url, "--count", "1", "--timeout", "60", "--plain"]
        first = _fwtool(*args, "--elf", pico_fault / "firmware.elf", timeout=120)
        again = _fwtool(*args, timeout=120)
    finally:
        served.terminate()
        served.wait(timeout=30)
    assert first.returncode == Exit.FIRMWARE_ERROR, (first.stdout[-1000:], first.stderr[-1000:])
    assert "pc fwt_fault_on_purpose (main.cpp:" in first.stderr and "lr main (main.cpp:" in first.stderr
    assert again.returncode == Exit.FIRMWARE_ERROR, (again.stdout[-1000:], again.stderr[-1000:])
    assert again.stdout.count(protocol.PREFIX_FAULT) == 1 and protocol.PREFIX_BANNER not in again.stdout
    assert "pass --elf" in again.stderr and "fwt_fault_on_purpose" not in again.stderr


def test_over_uart_the_line_gets_out_and_the_board_resets(pico_uart_reset):
    from fwtool.emulator.targets import run_capture

    r = run_capture(pico_uart_reset / "firmware.uf2", count=1, timeout=120)
    assert r.reason == "firmware-error", (r.reason, r.detail, r.lines[-3:])
    faults = [ln for ln in r.lines if ln.startswith(protocol.PREFIX_FAULT)]
    assert faults, r.lines
    _check_fault_line(faults[0], pico_uart_reset / "firmware.elf")
    assert "pc fwt_fault_on_purpose (main.cpp:" in r.detail
    # run on until the firmware's reset: the watchdog reboot it asked for ends the emulator run
    from fwtool.emulator.session import Rp2040jsProcess

    with Rp2040jsProcess(pico_uart_reset / "firmware.uf2", serial="stdout", start="now", max_wall_s=120,
                         stop_on_error=False) as board:
        ev = board.wait(timeout=150)
    assert ev and ev["reason"] == "watchdog" and "forced" in ev["detail"], ev
    assert sum(ln.startswith(protocol.PREFIX_FAULT) for ln in board.lines) == 1


# ---- the fault test app on the virtual PSoC 6 -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def psoc6_fault(tmp_path_factory):
    pytest.importorskip("unicorn", reason="the virtual PSoC 6 needs the unicorn package (fwtool[psoc6])")
    from fwtool.core import vendor

    for dep in vendor.deps_for("psoc6", "build"):
        if vendor.locate(dep).path is None:
            pytest.skip(f"vendor tree {dep.name} not synced (fwtool vendor sync)")
    return _build(["--board", "cy8ckit_062_ble", "--model", FIRE_ALARM], tmp_path_factory.mktemp("fault") / "ble")


def test_the_virtual_psoc6_prints_fwt_fault_decoded(psoc6_fault):
    from fwtool.core.boards import get_board
    from fwtool.emulator.psoc6 import target

    result, _ = target.run(psoc6_fault / "firmware.hex", get_board("cy8ckit_062_ble"), count=1, timeout=300)
    assert result.reason == "firmware-error", (result.reason, result.lines[-3:])
    line = next(ln for ln in result.lines if ln.startswith(protocol.PREFIX_FAULT))
    fault = _check_fault_line(line, psoc6_fault / "firmware.elf")
    assert fault.address("cfsr") & (1 << 9) and fault.address("cfsr") & (1 << 15)  # PRECISERR, BFARVALID
    assert fault.address("bfar") == FAULT_ADDRESS and fault.address("hfsr") & (1 << 30)  # FORCED
    assert "pc fwt_fault_on_purpose (main.cpp:" in result.detail and "lr main (main.cpp:" in result.detail


def test_fwtool_run_emulator_on_the_kit_exits_10(psoc6_fault):
    r = _fwtool("run", "--board", "cy8ckit_062_ble", "--model", FIRE_ALARM, "--app", "fault", "--emulator",
                "--count", "1", "--out", psoc6_fault, timeout=900)
    assert r.returncode == Exit.FIRMWARE_ERROR, r.stderr[-2000:]
    assert "faulted" in r.stderr and "pc fwt_fault_on_purpose (main.cpp:" in r.stderr


def test_random_addresses_of_a_real_image_equal_addr2line(pico_fault):
    s = Symbolizer(pico_fault / "firmware.elf")
    rng = random.Random(3)
    funcs = [f for f in s._funcs if f[1] > 8]
    addrs = [a + (rng.randrange(0, size) & ~1) for a, size, _ in rng.sample(funcs, 40)]
    want = _addr2line(pico_fault / "firmware.elf", *addrs)
    got = [f"{w[0]}:{w[1]}" if (w := s.line(a)) else "??:?" for a in addrs]
    assert got == want
    json.dumps(got)

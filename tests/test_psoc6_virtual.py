"""The virtual PSoC 6 (fwtool/emulator/psoc6, Unicorn): its register map comes from the pinned PDL, its wiring from
the pinned BSPs, and it runs each kit's real firmware.hex — both cores from reset — to FWT:INFER; the chip set-up
the firmware programs is checked against the board file and the kit; an FLL that will not lock is a FWT:ERROR; a
monitor that attaches late still gets the identity. Real builds need the toolchain and the pinned trees
(FWTOOL_TEST_PSOC6_BUILDS=<folder with one sub-folder per kit> reuses existing builds)."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import build_prerequisites
from modelgen import FIRE_ALARM
from fwtool.core import protocol, vendor
from fwtool.core.boards import all_boards, get_board

KITS = sorted(b.name for b in all_boards().values() if b.family == "psoc6")
unicorn = pytest.importorskip("unicorn", reason="the virtual PSoC 6 needs the unicorn package (fwtool[psoc6])")

from fwtool.emulator.psoc6 import checks, kit as kit_mod, target  # noqa: E402
from fwtool.emulator.psoc6.regdefs import Device  # noqa: E402
from fwtool.image.symbols import decode_fault  # noqa: E402


def _tree(name: str) -> Path:
    found = vendor.locate(vendor.manifest()[name]).path
    if found is None:
        pytest.skip(f"vendor tree {name} not synced (fwtool vendor sync)")
    return found


def test_register_map_is_read_from_the_pinned_pdl():
    pdl = _tree("mtb-pdl-cat1")
    ble, s2 = Device.load(pdl, "CY8C6347BZI_BLD53", "01"), Device.load(pdl, "CY8C624ABZI_S2D44", "02")
    assert ble.reg("SRSS", "CLK_FLL_CONFIG") == s2.reg("SRSS", "CLK_FLL_CONFIG") == 0x40260580
    # CPUSS differs between the dies (CPUSS_V1 vs CPUSS_V2): the same name, another address
    assert ble.reg("CPUSS", "CM4_PWR_CTL") == 0x40210080 and s2.reg("CPUSS", "CM4_PWR_CTL") == 0x40201200
    assert ble.reg("IPC", "STRUCT[2].ACQUIRE") == 0x40230040 and s2.reg("IPC", "STRUCT[2].ACQUIRE") == 0x40220040
    assert s2.defines["P5_1_SCB5_UART_TX"] == 18 and s2.defines["PCLK_SCB5_CLOCK"] == 5
    assert s2.field("IPC_STRUCT_ACQUIRE", "SUCCESS") == (31, 0x80000000)  # IPC_STRUCT_V2_ACQUIRE_SUCCESS_*


@pytest.mark.parametrize("kit", KITS)
def test_kit_wiring_comes_from_the_bsp_design(kit):
    board = get_board(kit)
    k = kit_mod.from_bsp(_tree(board.sdk.bsp), board.sdk.bsp)
    assert k.uart_tx == (5, 1) and k.uart_rx == (5, 0)  # SCB5 on the KitProg3 bridge, all three kits
    assert k.led == (board.led.port, board.led.pin) and k.fll_hz == 100_000_000


def _build(kit: str, out: Path) -> Path:
    reason = build_prerequisites()
    if reason:
        pytest.skip(reason)
    for dep in vendor.deps_for("psoc6", "build"):
        if vendor.locate(dep).path is None:
            pytest.skip(f"vendor tree {dep.name} not synced")
    if not FIRE_ALARM.is_file():
        pytest.skip("shared fire_alarm model not found")
    p = subprocess.run([sys.executable, "-m", "fwtool", "build", "-b", kit, "-m", str(FIRE_ALARM), "--out", str(out)],
                       capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stderr[-3000:]
    return out / "firmware.hex"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    cache: dict[str, Path] = {}
    given = os.environ.get("FWTOOL_TEST_PSOC6_BUILDS")

    def get(kit: str) -> Path:
        if kit not in cache:
            if given and (Path(given) / kit / "firmware.hex").is_file():
                cache[kit] = Path(given) / kit / "firmware.hex"
            else:
                cache[kit] = _build(kit, tmp_path_factory.mktemp("psoc6") / kit)
        return cache[kit]
    return get


@pytest.mark.parametrize("kit", KITS)
def test_each_kit_boots_its_real_hex_to_inference(images, kit):
    result, details = target.run(images(kit), get_board(kit), count=3, timeout=300)
    assert result.reason == "count", (result.reason, result.detail, result.lines[-5:])
    banner = protocol.parse_line(next(ln for ln in result.lines if ln.startswith(protocol.PREFIX_BANNER)))
    assert banner.fields["model"] == "fire_alarm" and banner.fields["board"] == kit
    assert banner.fields["core_hz"] == 100_000_000 and banner.fields["fll"] == "locked"  # the clock it really runs at
    assert sum(ln.startswith(protocol.PREFIX_INFER) for ln in result.lines) == 3
    assert details["board_check"] == []  # FLL, CLK_HF0, UART baud/mux/drive and LED as the board file and kit say
    assert details["core_clock_hz"] == 100_000_000 and details["fll_locked"]
    assert details["cm0p_instructions"] > 0 and details["cm4_instructions"] > details["invoke_instructions"] > 100_000
    assert details["led_changes"] >= 2  # the app toggles the kit's user LED once per inference
    print(f"{kit}: boot {details['boot_instructions']:,} CM4 instructions, invoke {details['invoke_instructions']:,} "
          f"instructions, {details['wall_s']} s wall for boot + 3 inferences")


def test_wrong_board_values_are_caught(images):
    """The image programs the real kit values; a board file that says otherwise fails the check, naming the value."""
    hex_path = images("cy8ckit_062_ble")
    board = get_board("cy8ckit_062_ble")
    m = target.machine_for(hex_path, board)
    for _ in range(400):
        m.step()
    assert checks.problems(m, board) == []
    wrong_clock = dataclasses.replace(board, clock_hz=50_000_000)
    assert any("FLL is programmed for 100,000,000 Hz" in p for p in checks.problems(m, wrong_clock))
    assert any("not the kit's FLL frequency" in p for p in checks.problems(m, wrong_clock))
    wrong_pin = dataclasses.replace(board, uart=dataclasses.replace(board.uart, tx_port=11, tx_pin=1))
    problems = checks.problems(m, wrong_pin)
    assert any("P11_1 is muxed to HSIOM function 0" in p for p in problems)
    assert any("UART TX pin P11_1 is not the kit's KitProg3 bridge pin P5_1" in p for p in problems)
    wrong_baud = dataclasses.replace(board, uart_baud=230_400)
    assert any("not the board file's 230,400" in p for p in checks.problems(m, wrong_baud))


def test_an_fll_that_does_not_lock_is_a_firmware_error(images):
    result, details = target.run(images("cy8ckit_062_ble"), get_board("cy8ckit_062_ble"), count=1, timeout=120,
                                 fll_locks=False)
    assert result.reason == "firmware-error", (result.reason, result.lines[-3:])
    assert "FLL did not lock" in result.detail and "clock_hz" in result.detail
    assert not details["fll_locked"] and details["core_clock_hz"] == 8_000_000  # the IMO, as PDL leaves it
    assert not any(ln.startswith(protocol.PREFIX_INFER) for ln in result.lines)


def test_a_late_monitor_still_gets_the_identity(images):
    """The monitor opens the port 6 s (emulated) after reset: the boot banner is gone, the re-announced one is not."""
    result, _ = target.run(images("cy8ckit_062_ble"), get_board("cy8ckit_062_ble"), until=protocol.PREFIX_BANNER,
                           count=1, timeout=300, late_s=6.0, max_emulated_s=30)
    assert result.reason == "count"
    assert result.lines[0].startswith(protocol.PREFIX_INFER) or result.lines[0].startswith(protocol.PREFIX_BANNER)
    banner = protocol.parse_line(result.lines[-1])
    assert banner.fields["model"] == "fire_alarm" and banner.fields["sha256"]
    assert not any("n=1 " in ln for ln in result.lines)  # the first inferences went out before the port was open


def test_a_fault_prints_fwt_fault_decoded_with_the_elf(images):
    """The CM4 jumps to unmapped memory after boot: the real image's HardFault path (BSP HardFault_Handler ->
    PDL Cy_SysLib_FaultHandler -> fwtool's Cy_SysLib_ProcessingFault) prints one FWT:FAULT line; it is a firmware
    error (exit 10) and its lr is decoded to a function with the build's ELF."""
    hex_path = images("cy8ckit_062_ble")
    board = get_board("cy8ckit_062_ble")
    lines: list[str] = []
    m = target.machine_for(hex_path, board, on_byte=lambda b: lines.append(chr(b)))
    while "FWT:INFER" not in "".join(lines):
        m.step()
    # fault where lr is a return address into the inference loop (a leaf such as __udivmoddi4 uses lr as scratch)
    from unicorn.arm_const import UC_ARM_REG_LR

    from fwtool.image.symbols import Symbolizer
    sym = Symbolizer(hex_path.with_suffix(".elf"))
    for _ in range(20_000):
        if "fwt_inference_loop" in (sym.function(m.cm4.uc.reg_read(UC_ARM_REG_LR) & ~1) or ""):  # mangled name
            break
        m.step()
    else:
        pytest.fail("the CM4 never called out of fwt_inference_loop")
    m.cm4.pc = 0x30000001  # no memory there: an instruction bus fault
    for _ in range(50):
        m.step()
    text = "".join(lines)
    fault_line = next(ln for ln in text.splitlines() if ln.startswith(protocol.PREFIX_FAULT))
    fault = protocol.parse_line(fault_line)
    assert isinstance(fault, protocol.FirmwareFault) and isinstance(fault, protocol.FirmwareError)
    assert fault.fields["kind"] == "hardfault" and fault.address("pc") == 0x30000000
    assert fault.address("cfsr") & (1 << 8)  # IBUSERR
    assert fault.address("hfsr") & (1 << 30)  # FORCED
    decoded = decode_fault(fault_line, hex_path.with_suffix(".elf"))
    assert "pc 0x30000000 (no function)" in decoded and "fwt_inference_loop" in decoded and "fwt_runtime.cpp:" in decoded
    from fwtool.core.errors import Exit
    from fwtool.monitor.session import firmware_error
    verdict = firmware_error(fault, hex_path.with_suffix(".elf"))  # what fwtool monitor --elf ends with
    assert verdict.code == Exit.FIRMWARE_ERROR and "fwt_inference_loop" in verdict.reason
    assert "--elf" in firmware_error(fault, None).fix


def test_an_installed_modustoolbox_does_not_switch_the_builder(tmp_path, monkeypatch):
    """ModusToolbox installed is supported: CMake stays the builder unless FWTOOL_PSOC6_BUILDER / [psoc6] builder
    asks for MTB's make; a bad value is refused naming the choices."""
    from fwtool.core.errors import BadInput
    from fwtool.firmware.families import psoc6_sources as ps
    (tmp_path / "tools_3.5" / "make").mkdir(parents=True)
    (tmp_path / "tools_3.5" / "make" / "start.mk").write_text("")
    monkeypatch.setenv("CY_TOOLS_PATHS", str(tmp_path / "tools_*"))
    monkeypatch.delenv(ps.BUILDER_ENV, raising=False)
    assert ps.find_mtb_tools() == tmp_path / "tools_3.5"
    assert ps.builder_choice() == ("cmake", "the default")
    monkeypatch.setenv(ps.BUILDER_ENV, "MTB")
    assert ps.builder_choice() == ("mtb", ps.BUILDER_ENV)
    monkeypatch.setenv(ps.BUILDER_ENV, "make")
    with pytest.raises(BadInput, match="is not a PSoC 6 builder") as err:
        ps.builder_choice()
    assert "cmake, mtb" in err.value.fix

"""The board file's ``[debug] on_fault`` (issue 22 item 3: "then halts or resets (board data says which)"):
family-neutral in the schema (default halt, a bad value refused with the choices), in every family's template
context as ``on_fault``, and on PSoC 6 the FWT_FAULT_RESET define its fault hooks read; on the virtual PSoC 6 a
board that says reset prints FWT:FAULT and then requests a system reset (SCB AIRCR SYSRESETREQ)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fwtool.core import boards, config, protocol, vendor
from fwtool.core.errors import BadInput
from fwtool.firmware.families.psoc6_sources import board_defines

RESET_BOARD = 'name = "ble_reset"\nextends = "cy8ckit_062_ble"\ntitle = "BLE kit, reset on fault"\n\n' \
              '[debug]\non_fault = "reset"\n'


@pytest.fixture(autouse=True)
def _fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("FWTOOL_CONFIG", str(tmp_path / "no-config.toml"))
    config.load.cache_clear()
    boards.forget_user_boards()
    yield
    boards.forget_user_boards()
    config.load.cache_clear()


def project(tmp_path: Path, text: str) -> Path:
    (tmp_path / "proj" / "boards").mkdir(parents=True)
    (tmp_path / "proj" / "boards" / "ble_reset.toml").write_text(text)
    model = tmp_path / "proj" / "model.tflite"
    from modelgen import FIRE_ALARM
    if FIRE_ALARM.is_file():
        shutil.copy(FIRE_ALARM, model)
    else:
        model.write_bytes(b"not read")
    return model


def test_on_fault_defaults_to_halt_and_reset_is_read(tmp_path):
    for name in ("pico", "cy8ckit_062_ble", "nano33ble_sense"):
        assert boards.get_board(name).debug.on_fault == "halt"
    assert board_defines(boards.get_board("cy8ckit_062_ble"))["FWT_FAULT_RESET"] == "0U"
    b = boards.get_board("ble_reset", project(tmp_path, RESET_BOARD))
    assert b.debug.on_fault == "reset" and b.extends == "cy8ckit_062_ble"
    assert board_defines(b)["FWT_FAULT_RESET"] == "1U"


def test_a_bad_on_fault_is_refused_with_the_choices(tmp_path):
    model = project(tmp_path, RESET_BOARD.replace('"reset"', '"reboot"'))
    with pytest.raises(BadInput) as e:
        boards.get_board("ble_reset", model)
    assert "on_fault" in e.value.cause and "halt, reset" in e.value.fix


def test_on_fault_is_in_every_familys_template_context(tmp_path, fire_alarm):
    from fwtool.firmware.context import generic_context
    from fwtool.firmware.plan import BuildOptions, plan
    assert generic_context(plan(BuildOptions(board="pico", model=fire_alarm, out_dir=tmp_path / "o")))["on_fault"] \
        == "halt"


def test_a_reset_board_resets_after_the_fault_line_on_the_virtual_psoc6(tmp_path):
    pytest.importorskip("unicorn", reason="the virtual PSoC 6 needs the unicorn package")
    from conftest import build_prerequisites
    reason = build_prerequisites() or next((f"vendor tree {d.name} not synced" for d in vendor.deps_for("psoc6")
                                            if vendor.locate(d).path is None), None)
    if reason:
        pytest.skip(reason)
    model = project(tmp_path, RESET_BOARD)
    if model.stat().st_size < 100:
        pytest.skip("fire_alarm model not available")
    out = tmp_path / "out"
    p = subprocess.run([sys.executable, "-m", "fwtool", "build", "-b", "ble_reset", "-m", str(model), "--out",
                        str(out)], capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stderr[-3000:]
    from fwtool.emulator.psoc6 import target
    board = boards.get_board("ble_reset", model)
    lines: list[str] = []
    m = target.machine_for(out / "firmware.hex", board, on_byte=lambda b: lines.append(chr(b)))
    while "FWT:INFER" not in "".join(lines):
        m.step()
    m.cm4.pc = 0x30000001  # no memory there: an instruction bus fault, as in test_psoc6_virtual
    for _ in range(200):
        if m.reset_requested:
            break
        m.step()
    fault = next(ln for ln in "".join(lines).splitlines() if ln.startswith(protocol.PREFIX_FAULT))
    assert protocol.parse_line(fault).fields["kind"] == "hardfault"
    assert m.reset_requested  # NVIC_SystemReset after the line went out, not a halt

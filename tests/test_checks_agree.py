"""Issue 12, classes 7 and 8: the fit check and the link agree (measured code reserve, linker overflow = exit 5), and
a firmware that prints FWT:ERROR ends monitor/emulate with that cause and exit 10."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time

import pytest

from fwtool.firmware import codesize, fit
from fwtool.firmware.families import get_family
from fwtool.firmware.families.base import link_overflow
from fwtool.cli import main
from fwtool.core.boards import get_board
from fwtool.core.errors import DoesNotFit, Exit
from fwtool.emulator import session as emu_session
from fwtool.model.tflite import load_model

from fakes_serial import SocketBoard, banner_line

FIELDS = codesize.key_fields("rp2040", "pico", "inference", ["conv.cpp", "softmax.cpp"], "usb", 1,
                             ["pico-sdk", "pico-tflmicro"])

# ---- class 7: linker overflow -> DoesNotFit ------------------------------------------------------------------------


@pytest.mark.parametrize("lines, words", [
    (["/usr/bin/arm-none-eabi-ld: firmware.elf section `.text' will not fit in region `FLASH'",
      "/usr/bin/arm-none-eabi-ld: region `FLASH' overflowed by 12345 bytes",
      "collect2: error: ld returned 1 exit status"], ["FLASH short by 12,345 bytes", ".text in FLASH"]),
    (["ld: region `ram' overflowed by 8 bytes", "collect2: error: ld returned 1 exit status"],
     ["ram short by 8 bytes"]),  # a PSoC 6 BSP script's lowercase region
    (["ld: region `FLASH' overflowed by 100 bytes", "ld: region `RAM' overflowed by 7 bytes"],
     ["FLASH short by 100 bytes", "RAM short by 7 bytes"]),
])
def test_linker_overflow_lines_become_does_not_fit_with_the_byte_count(lines, words):
    e = link_overflow(lines, "pico")
    assert isinstance(e, DoesNotFit) and e.code == Exit.DOES_NOT_FIT
    assert "does not fit pico" in e.cause and "\n" not in e.cause
    for w in words:
        assert w in e.cause
    assert "smaller" in e.fix


def test_other_link_failures_are_not_mistaken_for_overflow():
    assert link_overflow(["main.cpp:(.text+0x4): undefined reference to `foo'",
                          "collect2: error: ld returned 1 exit status"]) is None


def test_rp2040_compile_maps_a_linker_overflow_to_exit_5(tmp_path, monkeypatch):
    from fwtool.firmware.families import CompileRequest
    from fwtool.firmware.families import cmake
    fam = get_family("rp2040")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "CMakeCache.txt").write_text("")
    (tmp_path / "cmake" / "preload" / "platforms").mkdir(parents=True)  # the platform check reads the SDK tree
    (tmp_path / "cmake" / "preload" / "platforms" / "rp2040.cmake").write_text("")
    req = CompileRequest(tmp_path / "p", tmp_path / "b", get_board("pico"),
                         {"pico-sdk": tmp_path, "tinyusb": tmp_path})
    import hashlib
    key = hashlib.sha256(json.dumps(fam.configure_args(req)).encode()).hexdigest()
    (tmp_path / "b" / ".fwtool-configure").write_text(key)
    out = ["[100%] Linking CXX executable firmware.elf",
           "ld: region `FLASH' overflowed by 4242 bytes", "collect2: error: ld returned 1 exit status"]
    monkeypatch.setattr(cmake.runner, "stream", lambda *a, **k: (1, out))
    with pytest.raises(DoesNotFit) as e:
        fam.compile(req)
    assert "4,242 bytes" in e.value.cause and e.value.code == 5


# ---- class 7: the measured code reserve ----------------------------------------------------------------------------


def test_cache_round_trip_and_reserve_with_margin(tmp_path):
    path = tmp_path / "code_size.json"
    assert codesize.lookup(FIELDS, path) is None
    assert codesize.reserve_for(FIELDS, 229_376, path) == (229_376, "family default")
    assert codesize.record(FIELDS, 116_660, path)
    assert codesize.lookup(FIELDS, path) == 116_660
    reserve, source = codesize.reserve_for(FIELDS, 229_376, path)
    assert reserve == 116_660 + codesize.MARGIN_BYTES and "measured 116,660" in source
    other = {**FIELDS, "kernels": ["conv.cpp"]}  # another op set: not the same key
    assert codesize.lookup(other, path) is None
    other_rev = {**FIELDS, "revisions": {"pico-sdk": "0" * 40}}
    assert codesize.lookup(other_rev, path) is None


@pytest.mark.parametrize("poison", [
    lambda e: e.update(bytes=-5), lambda e: e.update(bytes=10), lambda e: e.update(bytes="116660"),
    lambda e: e.update(bytes=True), lambda e: e.update(bytes=1 << 30), lambda e: e.pop("bytes"),
    lambda e: e["fields"].update(app="kws"),  # key no longer matches its fields
])
def test_poisoned_entries_are_ignored(tmp_path, poison):
    path = tmp_path / "code_size.json"
    codesize.record(FIELDS, 116_660, path)
    data = json.loads(path.read_text())
    poison(next(iter(data["entries"].values())))
    path.write_text(json.dumps(data))
    assert codesize.lookup(FIELDS, path) is None
    assert codesize.reserve_for(FIELDS, 229_376, path)[1] == "family default"
    assert codesize.record(FIELDS, 120_000, path) and codesize.lookup(FIELDS, path) == 120_000  # re-measured


@pytest.mark.parametrize("content", [b"", b"{", b"\xff\xfe", b"[]", b'{"version": 1, "entries": []}',
                                     b'{"version": 99, "entries": {}}'])
def test_corrupt_cache_files_are_ignored_and_replaced(tmp_path, content):
    path = tmp_path / "code_size.json"
    path.write_bytes(content)
    assert codesize.lookup(FIELDS, path) is None
    assert codesize.record(FIELDS, 116_660, path) and codesize.lookup(FIELDS, path) == 116_660


def test_implausible_measurements_are_not_recorded(tmp_path):
    path = tmp_path / "code_size.json"
    assert not codesize.record(FIELDS, -1, path) and not path.exists()


def test_fit_uses_the_measured_reserve(fire_alarm):
    board, fam, m = get_board("pico"), get_family("rp2040"), load_model(fire_alarm)
    default = fit.fit_report(board, fam, m, 20_000)
    assert default["flash"]["code_reserve"] == fam.code_reserve_bytes
    assert default["flash"]["code_reserve_source"] == "family default"
    measured = fit.fit_report(board, fam, m, 20_000, 0, 120_756, "measured 116,660 B + 4,096 B margin")
    assert measured["flash"]["required"] == m.size + 120_756
    assert measured["flash"]["code_reserve_source"].startswith("measured")
    with pytest.raises(DoesNotFit) as e:  # a board just too small for model + measured code
        fit.fit_check(dataclasses.replace(board, flash_bytes=m.size + 120_000), fam, m, 20_000, 0,
                      120_756, "measured 116,660 B + 4,096 B margin")
    assert "short by 756 bytes" in e.value.cause and "(measured" in e.value.cause


def test_family_default_is_an_upper_bound_of_the_measured_apps():
    # measured on pico (fire_alarm, USB stdio): inference 116,660 B, audio_classifier 211,600 B of non-model flash
    assert get_family("rp2040").code_reserve_bytes >= 211_600 + codesize.MARGIN_BYTES


def test_plan_uses_the_cache(fire_alarm, tmp_path, monkeypatch):
    from fwtool.firmware.plan import BuildOptions, plan
    monkeypatch.setenv("FWTOOL_CACHE_DIR", str(tmp_path))
    opts = BuildOptions(board="pico", model=fire_alarm, out_dir=tmp_path / "out")
    p = plan(opts)
    assert p.fit["flash"]["code_reserve_source"] == "family default"
    fields = codesize.plan_fields(p.board, p.family, p.app, p.kernel_files, p.stdio, opts.tflm_cores)
    assert codesize.record(fields, 100_000)
    p2 = plan(opts)
    assert p2.fit["flash"]["code_reserve"] == 100_000 + codesize.MARGIN_BYTES


# ---- class 8: FWT:ERROR -> exit 10 with the cause ------------------------------------------------------------------

CAUSE = "AllocateTensors failed: arena too small"


def test_exit_code_is_documented():
    import pathlib
    from fwtool import cli
    assert Exit.FIRMWARE_ERROR == 10
    assert "10 firmware error" in cli.EPILOG
    from fwtool.core.errors import MEANING
    assert MEANING[Exit.FIRMWARE_ERROR][0] == "firmware error"  # docs/exit-codes.md is generated from MEANING
    page = (pathlib.Path(__file__).resolve().parent.parent / "docs" / "exit-codes.md").read_text()
    assert "<!-- fwtool:exit-codes -->" in page


def test_emulator_failure_maps_firmware_error():
    e = emu_session.failure("firmware-error", CAUSE)
    assert e.code == Exit.FIRMWARE_ERROR and CAUSE in e.cause and "dual-core" not in (e.fix or "")


def _board_printing_error(board: SocketBoard) -> None:
    if not board.wait_host(15):
        return
    board.write_line(banner_line(labels=("a", "b"), out="int8:1x2"))
    for _ in range(5):
        if not board.write_line(f"FWT:ERROR {CAUSE} (rebuild with a larger --arena)"):
            return
        time.sleep(0.2)


@pytest.mark.parametrize("extra", [["--count", "3"], ["--timeout", "1"]])
def test_monitor_exits_10_naming_the_cause(capsys, extra):
    board = SocketBoard()
    threading.Thread(target=_board_printing_error, args=(board,), daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(SystemExit) as e:
        main(["monitor", "--no-input", "--port", board.url, "--plain", *extra])
    err = capsys.readouterr().err
    board.close()
    assert e.value.code == Exit.FIRMWARE_ERROR
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and CAUSE in errors[0]
    if extra[0] == "--count":
        assert time.monotonic() - t0 < 5  # at the first FWT:ERROR, not after a timeout


def test_emulate_stops_at_fwt_error_with_exit_10(tmp_path, emulator_ready):
    import fakes_emulator as fe
    fw = tmp_path / "fw.bin"
    fw.write_bytes(fe.print_then("hang", f"FWT:ERROR {CAUSE}\n".encode()))
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "fwtool", "emulate", str(fw), "--count", "1", "--timeout", "60"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == Exit.FIRMWARE_ERROR, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and CAUSE in errors[0] and "core 1" not in p.stderr
    assert time.monotonic() - t0 < 45  # ended at the line, not by the 60 s limit


def test_qemu_failure_maps_firmware_error():
    from fwtool.emulator import qemu, result
    e = result.failure("firmware-error", CAUSE, qemu.TITLE, qemu.hint("fw.elf"))  # qemu.run strips the FWT:ERROR
    assert e.code == Exit.FIRMWARE_ERROR and e.cause.endswith(CAUSE) and "FWT:ERROR" not in e.cause

"""PSoC 6 boards as data, and flashing a kit through its KitProg3: runner command lines and the mapping of the
tools' real messages to fwtool errors (exit codes, fixes). Fakes at fwtool's boundary only: a KitProg3 on a fake
USB bus and fake pyocd/openocd/make executables on PATH (tests/fakes_probe.py)."""
import json
import re
import subprocess

import pytest

from fakes_probe import FakeKit, fake_tools, install, write_hex
from fwtool.cli import main
from fwtool.core import vendor
from fwtool.core.boards import all_boards, get_board
from fwtool.core.errors import BadInput, Exit
from fwtool.flash import runners
from fwtool.flash.runners.openocd import OpenocdRunner

PSOC6 = ["cy8ckit_062s2_43012", "cy8cproto_062_4343w", "cy8ckit_062_ble"]
# The parts' memories (datasheets): flash, SRAM (base, bytes)
PARTS = {"CY8C624ABZI-S2D44": ((0x10000000, 2 << 20), (0x08000000, 1 << 20)),
         "CY8C6347BZI-BLD53": ((0x10000000, 1 << 20), (0x08000000, 288 << 10))}
UID_A, UID_B = "0B1C0D5E01234567", "1A2B3C4D5E6F7788"
FW = bytes((i * 7 + 3) & 0xFF for i in range(12_288))
CM0P = bytes((i * 5 + 1) & 0xFF for i in range(1_024))


def run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return e.value.code, out, err


# ---- board data ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", PSOC6)
def test_board_regions_lie_inside_the_part_and_the_cm4_app_follows_the_cm0p_reserve(name):
    b = get_board(name)
    mem = b.memory
    (fbase, fbytes), (sbase, sbytes) = PARTS[b.mcu]
    assert b.family == "psoc6" and b.cpu == "cortex-m4" and b.image_kind == "hex" and b.boot_check is None
    assert fbase <= b.flash_base and b.flash_base + b.flash_bytes <= fbase + fbytes
    assert sbase < b.sram_base and b.sram_base + b.sram_bytes <= sbase + sbytes - 2048  # 2 KiB system reserve
    assert mem.app_flash_base == b.flash_base + mem.cm0p_flash_bytes
    assert mem.app_flash_base + mem.app_flash_bytes == b.flash_base + b.flash_bytes
    assert b.stdio == "uart" and b.uart_baud == 115200 and b.has_led
    assert b.sdk.bsp.startswith("TARGET_") and b.sdk.bsp_version.startswith("release-v")


@pytest.mark.parametrize("name", PSOC6)
def test_board_runners_exist_and_name_their_settings(name):
    b = get_board(name)
    assert list(b.runners) == ["pyocd", "openocd", "mtb-program"]
    assert all(r in runners.RUNNERS for r in b.runners)
    assert b.runner_settings["pyocd"]["target"] == {"PSoC6A2M": "cy8c6xxa", "PSoC6ABLE2": "cy8c6xx7"}[b.sdk.die]
    assert b.usb.probe[0] == "04B4:F155"


def test_pyocd_knows_the_boards_targets():
    pyocd = pytest.importorskip("pyocd.target.builtin", reason="pyOCD not installed (pip install 'fwtool[psoc6]')")
    for name in PSOC6:
        assert get_board(name).runner_settings["pyocd"]["target"] in pyocd.BUILTIN_TARGETS


@pytest.mark.parametrize("name", PSOC6)
def test_memory_table_equals_the_bsp_linker_script_when_the_bsp_is_synced(name):
    b = get_board(name)
    dep = next((d for d in vendor.manifest().values() if b.sdk.bsp in (d.name, d.url.rstrip("/").split("/")[-1])
                or b.sdk.bsp.removeprefix("TARGET_") in d.name), None)
    path = vendor.locate(dep).path if dep else None
    if path is None:
        pytest.skip(f"BSP {b.sdk.bsp} not synced (no vendor/manifest.toml entry or 'fwtool vendor sync')")
    text = (path / "COMPONENT_CM4" / "TOOLCHAIN_GCC_ARM" / "linker.ld").read_text()
    ram = re.search(r"\bram\s+\(rwx\)\s*:\s*ORIGIN = (0x[0-9A-Fa-f]+), LENGTH = (0x[0-9A-Fa-f]+)", text)
    flash = re.search(r"\bflash\s+\(rx\)\s*:\s*ORIGIN = (0x[0-9A-Fa-f]+), LENGTH = (0x[0-9A-Fa-f]+)", text)
    cm0p = re.search(r"FLASH_CM0P_SIZE\s*=\s*(0x[0-9A-Fa-f]+);", text)
    assert (b.sram_base, b.sram_bytes) == (int(ram[1], 16), int(ram[2], 16))
    assert (b.flash_base, b.flash_bytes) == (int(flash[1], 16), int(flash[2], 16))
    assert b.memory.cm0p_flash_bytes == int(cm0p[1], 16)


def test_boards_listing_works_without_a_psoc6_family_module(capsys):
    code, out, _ = run(capsys, "boards", "--json")
    assert code in (0, None)
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["cy8ckit_062s2_43012"]["runners"] == ["pyocd", "openocd", "mtb-program"]
    assert rows["cy8ckit_062_ble"]["flash_base"] == "0x10000000"
    with pytest.raises(BadInput) as e:
        get_board("cy8ckit_062s2")
    assert "cy8ckit_062s2_43012" in e.value.cause and e.value.code == Exit.BAD_INPUT


# ---- fwtool flash through pyOCD -------------------------------------------------------------------------------------

@pytest.fixture
def hexfile(tmp_path, monkeypatch):
    """A PSoC 6 style image: CM0+ image at 0x10000000, CM4 app at 0x10002000 (gap unwritten)."""
    monkeypatch.chdir(tmp_path)
    return write_hex(tmp_path / "firmware.hex", [(0x10000000, CM0P), (0x10002000, FW)])


def flash(capsys, hexfile, *extra, board="cy8ckit_062s2_43012"):
    return run(capsys, "flash", "--hex", str(hexfile), "--board", board, "--json", *extra)


def test_flash_writes_each_segment_verifies_by_read_back_and_resets(hexfile, monkeypatch, tmp_path, capsys):
    kit = FakeKit(UID_A)
    install(monkeypatch, kit)
    tools = fake_tools(monkeypatch, tmp_path, [kit])
    code, out, err = flash(capsys, hexfile)
    assert code == 0, err
    r = json.loads(out)
    assert r["method"] == "pyocd" and r["verified"] is True and r["rebooted"] is True and r["serial"] == UID_A
    assert r["bytes_written"] == len(CM0P) + len(FW) and r["segments"] == ["0x10000000+1024", "0x10002000+12288"]
    assert kit.flash[:len(CM0P)] == CM0P and kit.flash[0x2000:0x2000 + len(FW)] == FW
    assert kit.flash[len(CM0P):0x2000] == bytes(0x2000 - len(CM0P))  # the gap was not written
    (prog, check) = tools.calls("pyocd")
    assert prog == ["flash", "-W", "-t", "cy8c6xxa", "-u", UID_A, "--format", "hex", str(hexfile.resolve())]
    assert check[:6] == ["cmd", "-W", "-t", "cy8c6xxa", "-u", UID_A]
    assert [c.split()[:3] for c in check[7::2]] == [["savemem", "0x10000000", "1024"],
                                                     ["savemem", "0x10002000", "12288"]]
    assert tools.kit_state(UID_A)["running"] is True
    from fwtool.devices.last_flash import read_last_flash
    assert read_last_flash()["serial"] == UID_A  # 'fwtool monitor' then opens this kit's UART


def test_no_reboot_passes_no_reset_and_ble_uses_its_target(hexfile, monkeypatch, tmp_path, capsys):
    kit = FakeKit(UID_A, flash_bytes=1 << 20)
    install(monkeypatch, kit)
    tools = fake_tools(monkeypatch, tmp_path, [kit])
    code, out, err = flash(capsys, hexfile, "--no-reboot", "--no-verify", board="cy8ckit_062_ble")
    assert code == 0, err
    assert tools.calls("pyocd") == [["flash", "-W", "-t", "cy8c6xx7", "-u", UID_A, "--format", "hex", "--no-reset",
                                     str(hexfile.resolve())]]
    assert json.loads(out)["verified"] is False and tools.kit_state(UID_A)["running"] is False


def test_pyocd_missing_is_exit_4_with_the_extra_to_install(hexfile, monkeypatch, tmp_path, capsys):
    kit = FakeKit(UID_A)
    install(monkeypatch, kit)
    fake_tools(monkeypatch, tmp_path, [kit], pyocd=False)
    code, _, err = flash(capsys, hexfile)
    assert code == 4 and "pyOCD is not installed" in err and "pip install 'fwtool[psoc6]'" in err
    assert len(err.strip().splitlines()) == 2  # error + fix, no traceback


def test_no_kit_is_exit_6_with_the_cable_and_udev_check(hexfile, monkeypatch, tmp_path, capsys):
    install(monkeypatch)
    fake_tools(monkeypatch, tmp_path, [])
    code, _, err = flash(capsys, hexfile)
    assert code == 6 and "no PSoC 6 kit found" in err and "KitProg3 USB connector" in err and "udev" in err


def test_probe_pyocd_cannot_see_is_exit_6_from_its_own_message(hexfile, monkeypatch, tmp_path, capsys):
    kit = FakeKit(UID_A)
    install(monkeypatch, kit)
    tools = fake_tools(monkeypatch, tmp_path, [])  # pyOCD's probe list is empty: "No connected debug probe matches"
    code, _, err = flash(capsys, hexfile)
    assert code == 6 and f"pyOCD found no debug probe with UID {UID_A}" in err and "kp3-bulk" in err
    assert tools.calls("pyocd")[0][:2] == ["flash", "-W"]


def test_wrong_mode_programmer_is_one_line_with_how_to_switch(hexfile, monkeypatch, tmp_path, capsys):
    install(monkeypatch, FakeKit(UID_A, pid=0xF139))  # KitProg2 in its proprietary KitProg mode
    tools = fake_tools(monkeypatch, tmp_path, [])
    code, _, err = flash(capsys, hexfile)
    assert code == 6 and "KitProg2 in KitProg mode (04B4:F139" in err
    assert "fw-loader --mode kp3-bulk" in err and "MODE button" in err and "--update-kp3" in err
    assert tools.calls() == []


def test_two_kits_need_serial_then_the_chosen_one_is_flashed(hexfile, monkeypatch, tmp_path, capsys):
    a, b = FakeKit(UID_A, location=(1, (2,))), FakeKit(UID_B, location=(1, (3,)))
    install(monkeypatch, a, b)
    tools = fake_tools(monkeypatch, tmp_path, [a, b])
    code, _, err = flash(capsys, hexfile)
    assert code == 6 and "2 PSoC 6 kits are attached" in err and UID_A in err and UID_B in err and "--serial" in err
    assert tools.calls() == []
    code, out, err = flash(capsys, hexfile, "--serial", UID_B)
    assert code == 0, err
    assert b.flash[0x2000:0x2000 + len(FW)] == FW and a.flash[0x2000:0x2010] == bytes(16)
    assert tools.calls("pyocd")[0][5] == UID_B


def test_no_usb_permission_is_exit_4_with_the_kitprog3_udev_rule(hexfile, monkeypatch, tmp_path, capsys):
    install(monkeypatch, FakeKit(UID_A, usb_access=False, has_port=False))
    fake_tools(monkeypatch, tmp_path, [])
    code, _, err = flash(capsys, hexfile)
    assert code == 4 and "no permission to open the KitProg3" in err and "04b4:f155" in err


@pytest.mark.parametrize("fault, code, text", [
    ({"fault": "noack"}, 1, "could not talk to the chip through the KitProg3: SWD/JTAG communication failure (No ACK)"),
    ({"corrupt_at": 0x10002000 + 4000}, 1, "verify failed: flash at 0x10002FA0"),
])
def test_target_and_verify_failures_map_to_exit_1(hexfile, monkeypatch, tmp_path, capsys, fault, code, text):
    kit = FakeKit(UID_A, **fault)
    install(monkeypatch, kit)
    fake_tools(monkeypatch, tmp_path, [kit])
    got, _, err = flash(capsys, hexfile)
    assert got == code and text in err, err


def test_unknown_target_is_exit_4_with_the_upgrade(hexfile, monkeypatch, tmp_path, capsys):
    kit = FakeKit(UID_A)
    install(monkeypatch, kit)
    fake_tools(monkeypatch, tmp_path, [kit])
    board = get_board("cy8ckit_062s2_43012")
    monkeypatch.setitem(board.runner_settings, "pyocd", {"target": "cy8c6xxz"})
    code, _, err = flash(capsys, hexfile)
    assert code == 4 and "does not know the target 'cy8c6xxz'" in err and "pip install -U" in err


def test_an_image_outside_the_flash_is_refused_before_the_probe(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    kit = FakeKit(UID_A)
    install(monkeypatch, kit)
    tools = fake_tools(monkeypatch, tmp_path, [kit])
    bad = write_hex(tmp_path / "ram.hex", [(0x08002000, FW)])
    code, _, err = run(capsys, "flash", "--hex", str(bad), "--board", "cy8ckit_062s2_43012")
    assert code == 3 and "outside flash" in err and tools.calls() == []


def test_the_real_pyocd_says_no_probe_here():
    """The message the fakes print is the installed pyOCD's own (no probe is attached to this machine)."""
    from fwtool.flash.probe import find_tool

    tool = find_tool("pyocd")
    if tool is None:
        pytest.skip("pyOCD not installed (pip install 'fwtool[psoc6]')")
    r = subprocess.run([tool, "flash", "-W", "-t", "cy8c6xxa", "-u", "FWTOOLTEST0000", "--format", "hex",
                        "/nonexistent.hex"], capture_output=True, text=True, timeout=120)
    if "matches unique ID" not in r.stdout:
        pytest.skip(f"a debug probe seems attached or pyOCD changed: {r.stdout.strip()[:80]}")
    assert r.returncode == 1 and "No connected debug probe matches unique ID 'FWTOOLTEST0000'" in r.stdout
    assert "E No target device available [load_cmd]" in r.stderr


# ---- OpenOCD and make program ----------------------------------------------------------------------------------------

def test_infineon_openocd_runs_the_modustoolbox_program_command(hexfile, monkeypatch, tmp_path, capsys):
    kit = FakeKit(UID_A)
    install(monkeypatch, kit)
    tools = fake_tools(monkeypatch, tmp_path, [kit], pyocd=False, openocd="infineon")
    code, out, err = flash(capsys, hexfile, "--method", "openocd")
    assert code == 0, err
    (call,) = tools.calls("openocd")
    assert call[0] == "-s" and call[1].endswith("tools_3.6/openocd/scripts") and call[2] == "-c"
    assert call[3] == (f"source [find interface/kitprog3.cfg]; adapter serial {UID_A}; transport select swd; "
                       "source [find target/infineon/cy8cxxa.cfg]; psoc6 allow_efuse_program off; "
                       f"psoc6 sflash_restrictions 1; program {hexfile.resolve()} verify reset exit;")
    assert kit.flash[0x2000:0x2000 + len(FW)] == FW and json.loads(out)["verified"] is True


def test_auto_falls_back_to_openocd_when_pyocd_is_missing_and_says_so(hexfile, monkeypatch, tmp_path, capsys):
    kit = FakeKit(UID_A)
    install(monkeypatch, kit)
    fake_tools(monkeypatch, tmp_path, [kit], pyocd=False, openocd="infineon")
    code, out, err = flash(capsys, hexfile)
    assert code == 0, err
    r = json.loads(out)
    assert r["method"] == "openocd" and any("pyOCD unavailable (pyOCD is not installed)" in n for n in r["notes"])


def test_debian_openocd_programs_the_ble_part_only(hexfile, monkeypatch, tmp_path, capsys):
    kit = FakeKit(UID_A, flash_bytes=1 << 20)
    install(monkeypatch, kit)
    tools = fake_tools(monkeypatch, tmp_path, [kit], pyocd=False, openocd="debian")
    code, _, err = flash(capsys, hexfile, "--method", "openocd")  # the 2 MiB part
    assert code == 4 and "not Infineon's OpenOCD" in err and "PSoC 6-BLE2" in err and "CY8C624ABZI-S2D44" in err
    assert tools.calls() == []
    code, out, err = flash(capsys, hexfile, "--method", "openocd", board="cy8ckit_062_ble")
    assert code == 0, err
    (call,) = tools.calls("openocd")
    assert call[2:] == ["-f", "interface/cmsis-dap.cfg", "-c", f"adapter serial {UID_A}", "-c", "transport select swd",
                        "-f", "target/psoc6.cfg", "-c", f"program {hexfile.resolve()} verify reset exit"]


def test_openocd_no_probe_message_is_exit_6(hexfile, monkeypatch, tmp_path, capsys):
    install(monkeypatch, FakeKit(UID_A, flash_bytes=1 << 20))
    fake_tools(monkeypatch, tmp_path, [], openocd="debian")
    code, _, err = flash(capsys, hexfile, "--method", "openocd", board="cy8ckit_062_ble")
    assert code == 6 and f"OpenOCD found no probe with serial {UID_A}" in err


def test_the_real_debian_openocd_prints_the_message_the_fake_does():
    import shutil

    if not shutil.which("openocd"):
        pytest.skip("openocd not installed (apt-get install openocd)")
    runner = OpenocdRunner()
    cmd, why = runner.plan(get_board("cy8ckit_062_ble"))
    if cmd is None:
        pytest.skip(f"no usable OpenOCD for the BLE kit here: {why}")
    full = [c.replace("{serial}", "FWTOOLTEST0000").replace("{image}", "/nonexistent.hex") for c in cmd]
    r = subprocess.run(full, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "Error: unable to find a matching CMSIS-DAP device" in r.stderr


def test_mtb_program_refused_without_modustoolbox(hexfile, monkeypatch, tmp_path, capsys):
    install(monkeypatch, FakeKit(UID_A))
    fake_tools(monkeypatch, tmp_path, [])
    code, _, err = flash(capsys, hexfile, "--method", "mtb-program")
    assert code == 4 and "ModusToolbox is not installed" in err


def test_mtb_program_runs_qprogram_in_the_project_that_built_the_image(monkeypatch, tmp_path, capsys):
    monkeypatch.chdir(tmp_path)
    kit = FakeKit(UID_A)
    install(monkeypatch, kit)
    tools = fake_tools(monkeypatch, tmp_path, [kit], pyocd=False, mtb=True)
    proj = tmp_path / "mtb_app"
    (proj / "build" / "APP_CY8CKIT-062S2-43012" / "Debug").mkdir(parents=True)
    (proj / "Makefile").write_text("CY_TOOLS_PATHS ?=\ninclude $(CY_TOOLS_DIR)/make/start.mk\n")
    built = write_hex(proj / "build" / "APP_CY8CKIT-062S2-43012" / "Debug" / "mtb_app.hex",
                      [(0x10000000, CM0P), (0x10002000, FW)])
    other = write_hex(tmp_path / "other.hex", [(0x10002000, FW[:4096])])
    code, _, err = flash(capsys, other, "--method", "mtb-program")
    assert code == 3 and "has not built" in err
    code, out, err = flash(capsys, built, "--method", "mtb-program")
    assert code == 0, err
    (make,) = tools.calls("make")
    assert make[:3] == ["-C", str(proj), "qprogram"] and f"MTB_PROBE_SERIAL={UID_A}" in make
    assert kit.flash[0x2000:0x2000 + len(FW)] == FW and json.loads(out)["verified"] is True


def test_every_psoc6_board_file_parses_and_the_rp2040_boards_are_unchanged():
    names = set(all_boards())
    assert set(PSOC6) <= names and {"pico", "pico_w"} <= names
    assert get_board("pico").runners == ("picoboot", "drive")

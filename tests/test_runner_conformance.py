"""Every registered flash runner against its interface: the capabilities it declares match what it does against
the protocol-level fakes (tests/fakes_picoboot.py). A new runner needs an entry in SETUPS, else this fails."""
import pytest

from fakes_picoboot import FakeBoard, install, make_firmware, make_uf2
from fwtool import devices
from fwtool.core.boards import get_board
from fwtool.core.errors import BadInput
from fwtool.devices.errors import FlashFailed
from fwtool.flash import runners
from fwtool.flash.base import Image, Runner

PICO = get_board("pico")
FW = make_firmware(20_480, seed=4)  # 5 sectors
ALL_KINDS = ("uf2", "bin", "elf", "hex", "srec")


def _picoboot(monkeypatch, tmp_path, **kw):
    board = FakeBoard("bootsel", **kw)
    return board, install(monkeypatch, board)


def _drive(monkeypatch, tmp_path, **kw):
    board = FakeBoard("bootsel", drive_dir=tmp_path / "RPI-RP2", usb_access=False, **kw)
    return board, install(monkeypatch, board)


SETUPS = {"picoboot": _picoboot, "drive": _drive}  # runner -> a fake board in the state the runner writes to


def image(kind="bin", data=FW) -> Image:
    return Image(PICO.flash_base, data, f"t.{kind}", kind, uf2=make_uf2(data) if kind == "uf2" else None)


def device_for(runner: Runner):
    found = devices.discover(PICO)
    dev = next(d for d in found.targets if runner.usable(d)[0])
    return dev


def flash_once(runner, board, kind="bin", **kw):
    board._enter("bootsel")
    return runner.flash(image(kind), device_for(runner), PICO, timeout=10.0, **kw)


@pytest.fixture(params=sorted(runners.RUNNERS))
def runner(request):
    return runners.RUNNERS[request.param]


def test_every_runner_has_a_conformance_setup_and_declares_its_interface(runner):
    assert runner.name in SETUPS, f"add a fake-board setup for the '{runner.name}' runner to SETUPS"
    assert isinstance(runner, Runner) and runner.title and runner.label
    assert runner.image_kinds and set(runner.image_kinds) <= {"uf2", "bin", "elf", "hex"}
    assert not runner.needs_bootloader or runner.ready_modes
    assert runner.name in runners.method_choices()


def test_writes_the_image_and_reports_what_it_declares(runner, monkeypatch, tmp_path):
    board, _ = SETUPS[runner.name](monkeypatch, tmp_path)
    r = flash_once(runner, board)
    assert bytes(board.flash[:len(FW)]) == FW
    assert r["verified"] is runner.verifies
    assert r["rebooted"] is runner.resets
    if runner.resets:
        be_sleep = devices.usb.backend().sleep
        for _ in range(30):
            be_sleep(0.1)
        assert board.mode == "app"


def test_verifies_means_a_corrupted_page_is_detected(runner, monkeypatch, tmp_path):
    if not runner.verifies:
        pytest.skip(f"{runner.name} declares verifies = False (its result says verified: false, checked above)")
    board, _ = SETUPS[runner.name](monkeypatch, tmp_path, faults={"corrupt_page": 20})
    with pytest.raises(FlashFailed, match="verify"):
        flash_once(runner, board)


def test_skips_unchanged_means_a_reflash_writes_nothing(runner, monkeypatch, tmp_path):
    board, _ = SETUPS[runner.name](monkeypatch, tmp_path)
    flash_once(runner, board)
    again = flash_once(runner, board)
    if runner.skips_unchanged:
        assert again["bytes_written"] == 0 and again["sectors_written"] == 0
        assert board.picoboot.erased_sectors == 0
    else:
        assert again["bytes_written"] == len(FW)


def test_needs_bootloader_means_a_running_app_is_not_usable(runner, monkeypatch, tmp_path):
    board = FakeBoard("app")
    install(monkeypatch, board)
    app = devices.select(devices.discover(PICO))
    assert app.mode == "app"
    assert runner.usable(app)[0] is (not runner.needs_bootloader)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_image_kinds_it_takes_are_written_the_others_refused_before_anything(runner, monkeypatch, tmp_path, kind):
    board, be = SETUPS[runner.name](monkeypatch, tmp_path)
    if kind in runner.image_kinds:
        flash_once(runner, board, kind)
        assert bytes(board.flash[:len(FW)]) == FW
        return
    dev = device_for(runner)
    opened = len(be.opened)
    with pytest.raises(BadInput, match=f"cannot flash a .{kind} image"):
        runner.flash(image(kind), dev, PICO, timeout=10.0)
    assert bytes(board.flash[:16]) == b"\xff" * 16 and len(be.opened) == opened
    assert board.picoboot.commands == []
    if board.drive_dir:
        assert sorted(p.name for p in board.drive_dir.iterdir()) == ["INDEX.HTM", "INFO_UF2.TXT"]


def test_external_commands_are_logged(monkeypatch, caplog):
    """Runners start tools only through Runner.run_tool, which logs the command line first."""
    steps = []
    r = Runner()
    r.name = "demo"
    with caplog.at_level("INFO", logger="fwtool.flash"):
        proc = r.run_tool(["python3", "-c", "print('hi')"], on_step=steps.append)
    assert proc.stdout.strip() == "hi"
    assert any("python3 -c" in m for m in caplog.messages) and steps and "python3 -c" in steps[0]

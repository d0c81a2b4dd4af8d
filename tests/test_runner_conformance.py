"""Every registered flash runner against its interface: the capabilities it declares match what it does against
the fakes at fwtool's boundary (tests/fakes_picoboot.py for RP2040: the PICOBOOT protocol and the BOOTSEL drive;
tests/fakes_probe.py for PSoC 6: a KitProg3 on USB and fake pyocd/openocd/make executables that write a flash
file). A new runner needs an entry in SETUPS, else this fails."""
import time

import pytest

import fakes_picoboot as pico_fakes
import fakes_probe as probe_fakes
import fakes_samba as samba_fakes
from fwtool import devices
from fwtool.core.boards import get_board
from fwtool.core.errors import BadInput, FlashFailed
from fwtool.flash.request import WriteOptions
from fwtool.flash import runners
from fwtool.flash.base import Image, Runner

PICO = get_board("pico")
KIT = get_board("cy8ckit_062s2_43012")
NANO = get_board("nano33ble_sense")
FW = pico_fakes.make_firmware(20_480, seed=4)  # 5 sectors
ALL_KINDS = ("uf2", "bin", "elf", "hex", "srec")


class PicoSetup:
    """An RP2040 in the mode the runner writes to (BOOTSEL: PICOBOOT, or its drive)."""

    board = PICO

    def __init__(self, monkeypatch, tmp_path, runner, faults=None):
        kw = {"faults": faults} if faults else {}
        if runner.name == "drive":
            kw.update(drive_dir=tmp_path / "RPI-RP2", usb_access=False)
        self.fake = pico_fakes.FakeBoard("bootsel", **kw)
        self.be = pico_fakes.install(monkeypatch, self.fake)
        self.runner = runner

    def image(self, kind):
        return Image(PICO.flash_base, FW, f"t.{kind}", kind, uf2=pico_fakes.make_uf2(FW) if kind == "uf2" else None)

    def device(self):
        self.fake._enter("bootsel")
        return next(d for d in devices.discover(PICO).targets if self.runner.usable(d)[0])

    def flash(self):
        return bytes(self.fake.flash[:len(FW)])

    def started(self):
        for _ in range(30):
            devices.usb.backend().sleep(0.1)
        return self.fake.mode == "app"

    def untouched(self):
        ok = bytes(self.fake.flash[:16]) == b"\xff" * 16 and not self.be.opened and not self.fake.picoboot.commands
        if self.fake.drive_dir:
            ok = ok and sorted(p.name for p in self.fake.drive_dir.iterdir()) == ["INDEX.HTM", "INFO_UF2.TXT"]
        return ok

    @staticmethod
    def running(monkeypatch, tmp_path):
        pico_fakes.install(monkeypatch, pico_fakes.FakeBoard("app"))
        return devices.select(devices.discover(PICO))


class KitSetup:
    """A PSoC 6 kit with its KitProg3 in CMSIS-DAP mode, and the runner's tool (fake) installed."""

    board = KIT

    def __init__(self, monkeypatch, tmp_path, runner, faults=None):
        self.kit = probe_fakes.FakeKit(**({"corrupt_at": KIT.flash_base + 20 * 256} if faults else {}))
        probe_fakes.install(monkeypatch, self.kit)
        self.tools = probe_fakes.fake_tools(monkeypatch, tmp_path, [self.kit], pyocd=runner.name == "pyocd",
                                            openocd="infineon" if runner.name == "openocd" else None,
                                            mtb=runner.name == "mtb-program")
        self.tmp_path, self.runner = tmp_path, runner

    def image(self, kind):
        if kind == "hex":  # a real file: the probe runners write its segments; make program needs the MTB build
            folder = self.tmp_path / "proj" / "build" / "APP_CY8CKIT-062S2-43012" / "Debug"
            folder.mkdir(parents=True, exist_ok=True)
            makefile = "CY_TOOLS_PATHS ?=\ninclude $(CY_TOOLS_DIR)/make/start.mk\n"
            (self.tmp_path / "proj" / "Makefile").write_text(makefile)
            path = probe_fakes.write_hex(folder / "app.hex", [(KIT.flash_base, FW)])
            return Image(KIT.flash_base, FW, str(path), "hex")
        return Image(KIT.flash_base, FW, f"t.{kind}", kind, uf2=pico_fakes.make_uf2(FW) if kind == "uf2" else None)

    def device(self):
        return devices.select(devices.discover(KIT))

    def flash(self):
        return self.kit.flash[:len(FW)]

    def started(self):
        return self.tools.kit_state(self.kit.uid).get("running") is True

    def untouched(self):
        return self.kit.flash[:16] == b"\x00" * 16 and self.tools.calls() == []

    @staticmethod
    def running(monkeypatch, tmp_path):
        kit = probe_fakes.FakeKit()
        probe_fakes.install(monkeypatch, kit)
        probe_fakes.fake_tools(monkeypatch, tmp_path, [kit], openocd="infineon", mtb=True)
        return devices.select(devices.discover(KIT))


class NanoSetup:
    """An Arduino Nano 33 BLE in its SAM-BA bootloader: a pty that speaks the protocol (tests/fakes_samba.py)."""

    board = NANO

    def __init__(self, monkeypatch, tmp_path, runner, faults=None):
        self.nano = samba_fakes.FakeNano("bootloader", faults=faults)
        samba_fakes.install(monkeypatch, self.nano)
        self.runner = runner

    def image(self, kind):
        return Image(NANO.flash_base, FW, f"t.{kind}", kind, uf2=pico_fakes.make_uf2(FW) if kind == "uf2" else None)

    def device(self):
        if "N#" in self.nano.commands:  # a second flash in one test: back into the bootloader by hand
            for _ in range(200):
                if "K#" in self.nano.commands:
                    break
                time.sleep(0.01)
            self.nano.double_tap()
        return next(d for d in devices.discover(NANO).targets if d.mode == "bootsel")

    def flash(self):
        return self.nano.app_bytes(len(FW))

    def started(self):
        for _ in range(300):
            if self.nano.mode == "app":
                return True
            devices.usb.backend().sleep(0.01)
        return False

    def untouched(self):
        return self.nano.commands == [] and self.nano.app_bytes(16) == b"\xff" * 16

    @staticmethod
    def running(monkeypatch, tmp_path):
        samba_fakes.install(monkeypatch, samba_fakes.FakeNano("app"))
        return devices.select(devices.discover(NANO))


SETUPS = {"picoboot": PicoSetup, "drive": PicoSetup, "pyocd": KitSetup, "openocd": KitSetup,
          "mtb-program": KitSetup, "samba": NanoSetup}  # runner -> a fake board in the state the runner writes to


def flash_once(setup, kind="bin", **kw):
    return setup.runner.flash(setup.image(kind), setup.device(), setup.board, WriteOptions(timeout=10.0, **kw))


@pytest.fixture(params=sorted(runners.RUNNERS))
def runner(request):
    return runners.RUNNERS[request.param]


def kinds_for(runner):
    return sorted(runner.image_kinds)


def test_every_runner_has_a_conformance_setup_and_declares_its_interface(runner):
    assert runner.name in SETUPS, f"add a fake-board setup for the '{runner.name}' runner to SETUPS"
    assert isinstance(runner, Runner) and runner.title and runner.label
    assert runner.image_kinds and set(runner.image_kinds) <= {"uf2", "bin", "elf", "hex"}
    assert not runner.needs_bootloader or runner.ready_modes
    assert runner.name in runners.method_choices()


def test_writes_the_image_and_reports_what_it_declares(runner, monkeypatch, tmp_path):
    s = SETUPS[runner.name](monkeypatch, tmp_path, runner)
    r = flash_once(s, kinds_for(runner)[0])
    assert s.flash() == FW
    assert r.verified is runner.verifies
    assert r.rebooted is runner.resets
    if runner.resets:
        assert s.started()


def test_verifies_means_a_corrupted_page_is_detected(runner, monkeypatch, tmp_path):
    if not runner.verifies:
        pytest.skip(f"{runner.name} declares verifies = False (its result says verified: false, checked above)")
    s = SETUPS[runner.name](monkeypatch, tmp_path, runner, faults={"corrupt_page": 20})
    with pytest.raises(FlashFailed, match="verify"):
        flash_once(s, kinds_for(runner)[0])


def test_skips_unchanged_means_a_reflash_writes_nothing(runner, monkeypatch, tmp_path):
    s = SETUPS[runner.name](monkeypatch, tmp_path, runner)
    kind = kinds_for(runner)[0]
    flash_once(s, kind)
    again = flash_once(s, kind)
    if runner.skips_unchanged:
        assert again.bytes_written == 0 and again.sectors_written == 0
        assert s.fake.picoboot.erased_sectors == 0
    else:
        assert again.bytes_written == len(FW)


def test_needs_bootloader_means_a_running_app_is_not_usable(runner, monkeypatch, tmp_path):
    app = SETUPS[runner.name].running(monkeypatch, tmp_path)
    assert app.mode in ("app", "probe")
    assert runner.usable(app)[0] is (not runner.needs_bootloader)


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_image_kinds_it_takes_are_written_the_others_refused_before_anything(runner, monkeypatch, tmp_path, kind):
    s = SETUPS[runner.name](monkeypatch, tmp_path, runner)
    if kind in runner.image_kinds:
        flash_once(s, kind)
        assert s.flash() == FW
        return
    dev = s.device()
    with pytest.raises(BadInput, match=f"cannot flash a .{kind} image"):
        runner.flash(s.image(kind), dev, s.board, WriteOptions(timeout=10.0))
    assert s.untouched()


def test_external_commands_are_logged(monkeypatch, caplog):
    """Runners start tools only through Runner.run_tool, which logs the command line first."""
    steps = []
    r = Runner()
    r.name = "demo"
    with caplog.at_level("INFO", logger="fwtool.flash"):
        proc = r.run_tool(["python3", "-c", "print('hi')"], on_step=steps.append)
    assert proc.stdout.strip() == "hi"
    assert any("python3 -c" in m for m in caplog.messages) and steps and "python3 -c" in steps[0]

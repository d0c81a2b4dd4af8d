"""Every registered target against its interface (fwtool/targets/base.py), like the family and runner conformance
tests: what its TargetInfo declares (virtual or physical, cycle-accurate, cores, clock, what it can be fed,
whether it serves a port) is what it does. The virtual targets really run fire_alarm where Node / QEMU and the
pinned trees exist (the builds are real: ccache keeps them quick); the physical target runs against the serial
fakes (tests/fakes_serial.py: a board behind a socket:// port, flashed through a faked fwtool.flash).
A new target needs an entry in SETUPS, else this fails."""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

import fakes_emulator
import fakes_serial
import fwtool.flash
import modelgen
from fwtool.core import protocol, runner, vendor
from fwtool.core.boards import all_boards
from fwtool.core.errors import BadInput, Exit, FwtoolError
from fwtool.firmware.families import all_families
from fwtool.targets import registry
from fwtool.monitor.reader import open_serial
from fwtool.targets.base import PHYSICAL, VIRTUAL, TargetConfig, Unsupported, read_lines

RUN_S = 600.0


_BUILT: dict[tuple[str, int], Path] = {}


def _build(tmp_path_factory, board: str, cores: int) -> Path:
    """One real fire_alarm build per (board, cores) for the whole module."""
    if (board, cores) in _BUILT:
        return _BUILT[board, cores]
    if not modelgen.FIRE_ALARM.is_file():
        pytest.skip("shared fire_alarm model not found")
    out = tmp_path_factory.mktemp(f"target-{board}") / "out"
    p = subprocess.run([sys.executable, "-m", "fwtool", "build", "-b", board, "-m", str(modelgen.FIRE_ALARM),
                        "--tflm-cores", str(cores), "--out", str(out)], capture_output=True, text=True, timeout=1800)
    assert p.returncode == 0, p.stderr[-3000:]
    _BUILT[board, cores] = out
    return out


class Rp2040jsSetup:
    """The virtual RP2040: a real fire_alarm build for its cores; fed through the test image that echoes UART0."""

    board = "pico"

    def __init__(self, request, tmp_path_factory, monkeypatch):
        from conftest import build_prerequisites, virtual_board_reason

        reason = virtual_board_reason() or build_prerequisites()
        if reason:
            pytest.skip(reason)
        self.cls = registry.by_name("rp2040js")
        self.image = _build(tmp_path_factory, self.board, self.cls.info.cores) / "firmware.uf2"
        self.echo = tmp_path_factory.mktemp("echo") / "echo.bin"
        self.echo.write_bytes(fakes_emulator.echo())

    def target(self, **kw):
        return self.cls(TargetConfig(board=self.board, max_wall_s=120, **kw))

    def feed_image(self):
        return self.echo

    def hang_image(self, tmp_path):
        p = tmp_path / "hang.bin"
        p.write_bytes(fakes_emulator.print_then("hang"))
        return p


class QemuSetup:
    """The virtual Cortex-M4: a real fire_alarm build for a PSoC 6 kit, run as its mps2-an386 link."""

    board = "cy8ckit_062s2_43012"

    def __init__(self, request, tmp_path_factory, monkeypatch):
        for tool in ("qemu-system-arm", "arm-none-eabi-gcc", "cmake", "ninja"):
            if runner.which(tool) is None:
                pytest.skip(f"{tool} not installed")
        for dep in vendor.deps_for("psoc6", "build"):
            if vendor.locate(dep).path is None:
                pytest.skip(f"vendor tree {dep.name} not synced ('fwtool vendor sync {dep.name}')")
        self.cls = registry.by_name("qemu-mps2-an386")
        out = _build(tmp_path_factory, self.board, self.cls.info.cores)
        self.image = registry.image_for(self.cls, self.board, out / "firmware.hex")

    def target(self, **kw):
        return self.cls(TargetConfig(board=self.board, **kw))

    def hang_image(self, tmp_path):
        return self.image  # fire_alarm never prints the marker the failure test waits for


class Psoc6UnicornSetup(QemuSetup):
    """The virtual PSoC 6 (Unicorn + register models): the same kit's real firmware.hex, both cores from reset."""

    def __init__(self, request, tmp_path_factory, monkeypatch):
        pytest.importorskip("unicorn", reason="unicorn not installed (pip install -e '.[psoc6]')")
        for tool in ("arm-none-eabi-gcc", "cmake", "ninja"):
            if runner.which(tool) is None:
                pytest.skip(f"{tool} not installed")
        for dep in vendor.deps_for("psoc6", "build"):
            if vendor.locate(dep).path is None:
                pytest.skip(f"vendor tree {dep.name} not synced ('fwtool vendor sync {dep.name}')")
        self.cls = registry.by_name("psoc6-unicorn")
        self.image = _build(tmp_path_factory, self.board, self.cls.info.cores) / "firmware.hex"


class QemuM33Setup(QemuSetup):
    """The virtual Cortex-M33: a real single-core fire_alarm build for the Pico 2, run as its mps2-an505 link."""

    board = "pico2"

    def __init__(self, request, tmp_path_factory, monkeypatch):
        for tool in ("qemu-system-arm", "arm-none-eabi-gcc", "cmake", "ninja"):
            if runner.which(tool) is None:
                pytest.skip(f"{tool} not installed")
        for dep in vendor.deps_for("rp2350", "build"):
            if vendor.locate(dep).path is None:
                pytest.skip(f"vendor tree {dep.name} not synced ('fwtool vendor sync {dep.name}')")
        self.cls = registry.by_name("qemu-mps2-an505")
        out = _build(tmp_path_factory, self.board, self.cls.info.cores)
        self.image = registry.image_for(self.cls, self.board, out / "firmware.uf2")


class BoardSetup:
    """A board behind a socket:// port that prints a banner and inferences once the host opens it; flashing is
    fwtool.flash.flash_image faked at its seam (it says where the board is now)."""

    board = "pico"

    def __init__(self, request, tmp_path_factory, monkeypatch):
        self.cls = registry.by_name("board")
        self.image = tmp_path_factory.mktemp("board") / "firmware.uf2"
        self.image.write_bytes(b"not flashed for real")
        self.fake = fakes_serial.SocketBoard()
        request.addfinalizer(self.fake.close)
        self.flashed: list = []

        def flash_image(image, **kw):
            self.flashed.append((Path(image), kw))
            return {"method": "fake", "serial": None, "port": self.fake.url}

        monkeypatch.setattr(fwtool.flash, "flash_image", flash_image)
        threading.Thread(target=self._firmware, daemon=True).start()

    def _firmware(self):
        if self.fake.wait_host(30):
            self.fake.write_line(fakes_serial.banner_line())
            for n in range(1, 4):
                self.fake.write_line(fakes_serial.infer_line(n, 22000 + n, ["fire_alarm"], [0.0]))

    def target(self, **kw):
        return self.cls(TargetConfig(board=self.board, **kw))


class LinuxSetup:
    """A linux-family program: a real fire_alarm build for linux-host run natively, or for rpi4 under
    qemu-aarch64-static."""

    board, name, tools = "linux-host", "linux-native", ("g++", "cmake", "ninja")

    def __init__(self, request, tmp_path_factory, monkeypatch):
        for tool in self.tools:
            if runner.which(tool) is None:
                pytest.skip(f"{tool} not installed")
        for dep in vendor.deps_for("linux", "build"):
            if vendor.locate(dep).path is None:
                pytest.skip(f"vendor tree {dep.name} not synced ('fwtool vendor sync {dep.name}')")
        self.cls = registry.by_name(self.name)
        self.image = _build(tmp_path_factory, self.board, self.cls.info.cores) / "firmware.elf"

    def target(self, **kw):
        return self.cls(TargetConfig(board=self.board, **kw))

    def hang_image(self, tmp_path):
        return self.image  # fire_alarm never prints the marker the failure test waits for


class QemuAarch64Setup(LinuxSetup):
    board, name = "rpi4", "qemu-aarch64"
    tools = ("aarch64-linux-gnu-g++", "qemu-aarch64-static", "cmake", "ninja")


SETUPS = {"rp2040js": Rp2040jsSetup, "qemu-mps2-an386": QemuSetup, "qemu-mps2-an505": QemuM33Setup, "board": BoardSetup,
          "psoc6-unicorn": Psoc6UnicornSetup,
          "linux-native": LinuxSetup, "qemu-aarch64": QemuAarch64Setup}


@pytest.fixture(params=sorted(SETUPS))
def setup(request, tmp_path_factory, monkeypatch):
    return SETUPS[request.param](request, tmp_path_factory, monkeypatch)


def test_every_registered_target_has_a_setup():
    assert set(registry.TARGETS) == set(SETUPS), "add a Setup for the new target to SETUPS"


@pytest.mark.parametrize("name", sorted(registry.TARGETS))
def test_what_a_target_declares_is_consistent(name):
    info = registry.by_name(name).info
    assert info.name == name and info.title and info.kind in (PHYSICAL, VIRTUAL)
    assert info.cores >= 1 and info.cycle in ("cycle", "instruction") and info.feeds <= {"bytes"}
    if info.virtual:  # an emulator's times are estimates on its own declared clock, and it says so
        assert not info.cycle_accurate and info.timing_note
        # its own clock, or (the virtual PSoC 6) instructions counted at the board file's clock_hz
        assert info.clock_hz or info.cycle == "instruction"
    else:  # a board's times are its own, on the board file's clock
        assert info.cycle_accurate and info.timing_note is None and info.clock_hz is None
    assert info.to_dict()["name"] == name


def test_every_family_names_its_virtual_target_as_data():
    for family in all_families().values():
        if family.virtual_target is not None:
            assert registry.by_name(family.virtual_target).info.virtual
    for board in all_boards().values():
        cls = registry.target_class(board.name, "emulator")
        assert registry.default_cores(board.name, "emulator") == cls.info.cores
        assert registry.default_cores(board.name, "board") == registry.by_name("board").info.cores


def test_unknown_targets_are_refused():
    with pytest.raises(BadInput, match="unknown target 'nope'"):
        registry.by_name("nope")
    with pytest.raises(BadInput, match="unknown target 'cloud'"):
        registry.target_class("pico", "cloud")


def test_it_runs_the_image_and_reports_what_it_is(setup):
    t = setup.target()
    seen: list[str] = []
    lines, details = t.run(setup.image, protocol.PREFIX_INFER, 2, RUN_S, seen.append)
    records = [protocol.parse_line(ln) for ln in lines]
    banners = [r for r in records if isinstance(r, protocol.Banner)]
    assert banners and banners[0].fields.get("model") == "fire_alarm"
    assert sum(isinstance(r, protocol.Inference) for r in records) == 2 and lines[-1].startswith("FWT:INFER")
    assert seen == lines  # every line went through on_line, in order
    assert details["target"] == t.info.name and details["virtual"] == t.info.virtual
    assert details["kind"] == ("emulator" if t.info.virtual else "board") and details["cores"] == t.info.cores
    assert details["wall_s"] >= 0
    if isinstance(setup, BoardSetup):  # loaded = flashed, then read where the flash says the board is
        assert setup.flashed[0][0] == setup.image and details["port"] == setup.fake.url


def test_feeding_works_where_declared_and_is_refused_elsewhere(setup, tmp_path):
    t = setup.target()
    if "bytes" not in t.info.feeds:
        with pytest.raises(Unsupported):
            t.feed(b"x")
        return
    if isinstance(setup, BoardSetup):
        t = setup.target(port=setup.fake.url, flash=False)
        t.load(None)  # the board runs its firmware already
        t.start()
        try:
            t.feed(b"FWT:ACK 7\n")
            assert b"FWT:ACK 7\n" in setup.fake.read_input(5.0)
        finally:
            t.stop()
        return
    if hasattr(setup, "feed_image"):  # the virtual RP2040's test image echoes what it is fed
        for start in (t.serve, t.open_link):
            start(setup.feed_image())
            try:
                t.feed(b"FWT:ACK 7\n")
                assert t.read("FWT:ACK", 1, 30) == ["FWT:ACK 7"]
            finally:
                t.stop()
            assert t.end_error() is None  # stopped by us, not ended by itself
        return
    # the others run the real fire_alarm image, which reads no input: its lines come over the link and the link
    # takes bytes (that they reach the firmware: the kws audio stream per target, tests/test_audio_targets.py)
    link = t.open_link(setup.image)
    try:
        assert t.read(protocol.PREFIX_INFER, 1, RUN_S)[-1].startswith(protocol.PREFIX_INFER)
        t.feed(b"FWT:ACK 7\n")
        assert link.in_waiting >= 0
    finally:
        t.stop()
    with pytest.raises(Unsupported):  # stopped: no link left to feed
        t.feed(b"x")


def test_serving_gives_the_monitor_a_port_where_declared(setup):
    t = setup.target()
    if not t.info.serves:
        with pytest.raises(Unsupported):
            t.serve(setup.image)
        return
    try:
        reach = t.serve(setup.image)  # what MonitorOptions gets: here a port (no USB serial number to follow)
        ser = open_serial(reach["port"], 115200, 0.2)  # as the monitor opens it
        try:
            assert read_lines(ser, protocol.PREFIX_BANNER, 1, RUN_S, lambda s: None)[-1].startswith("FWT:BOOT")
        finally:
            ser.close()
    finally:
        t.stop()


def test_a_run_that_does_not_give_what_was_asked(setup, tmp_path):
    """A virtual run raises its error (a timeout: exit 7); a board's port gives what it read by the timeout."""
    t = setup.target()
    if not t.info.virtual:
        lines, _ = t.run(setup.image, "FWT:NEVER", 1, 2.0)
        assert lines and lines[0].startswith(protocol.PREFIX_BANNER)
        return
    with pytest.raises(FwtoolError) as e:
        t.run(setup.hang_image(tmp_path), "FWT:NEVER", 1, 5.0)
    assert e.value.code == Exit.TIMEOUT and e.value.fix

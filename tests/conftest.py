import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The board locks (fwtool/devices/board_lock.py) of this test run are its own: the fake boards share serial numbers
# with every other run on this machine, which must not wait for (or take over) this run's fake boards.
if "FWTOOL_BOARD_LOCKS" not in os.environ:
    import tempfile
    os.environ["FWTOOL_BOARD_LOCKS"] = tempfile.mkdtemp(prefix="fwtool-test-board-locks-")

from modelgen import FIRE_ALARM  # noqa: E402


@pytest.fixture
def fire_alarm() -> Path:
    if not FIRE_ALARM.is_file():
        pytest.skip("fire_alarm model not available (no ../shared/models/fire_alarm.tflite, and example:fire_alarm could not be fetched)")
    return FIRE_ALARM


def build_prerequisites() -> str | None:
    """None when a real RP2040 build can run here, else the reason it cannot."""
    from fwtool.core import vendor
    from fwtool.core.errors import MissingTool

    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-g++", "cmake"):
        if not shutil.which(tool):
            return f"{tool} not installed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi " \
                   "libstdc++-arm-none-eabi-newlib cmake)"
    if not (shutil.which("ninja") or shutil.which("make")):
        return "neither ninja nor make installed"
    for dep in vendor.deps_for("rp2040", "build"):
        try:
            vendor.require(dep)  # fetched on first use (as every fwtool command does) unless offline
        except MissingTool as e:
            return f"vendor tree {dep.name} not available: {e.cause} ({e.fix})"
    return None


def virtual_board_reason() -> str | None:
    """None when the virtual RP2040 can run here (node, the rp2040js npm package, the bootrom), else why not."""
    from fwtool.emulator import bootrom, node
    from fwtool.core.errors import FwtoolError

    try:
        node.find_node()
        node.ensure_rp2040js()
        bootrom.bootrom_file()
    except FwtoolError as e:
        return f"virtual board not available: {e.cause}"
    return None


@pytest.fixture(scope="session")
def emulator_ready():
    reason = virtual_board_reason()
    if reason:
        pytest.skip(reason)
    return True


@pytest.fixture(scope="session")
def real_build_reason():
    return build_prerequisites()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that needs a pinned tree which could not be had (offline, or its first-use fetch failed) is
    skipped with that cause, never failed: trees are fetched on first use (fwtool.core.vendor.require)."""
    from fwtool.core.vendor import TreeUnavailable

    outcome = yield
    rep = outcome.get_result()
    if call.excinfo is not None and call.excinfo.errisinstance(TreeUnavailable) and rep.failed:
        rep.outcome = "skipped"
        rep.longrepr = (str(item.path), item.location[1] or 0, f"Skipped: {call.excinfo.value.cause}")


def pytest_report_header(config):
    reason = build_prerequisites()
    return [f"fwtool real-SDK builds: {'enabled' if reason is None else 'SKIPPED: ' + reason}"]


@pytest.fixture(scope="session")
def fire_alarm_build(tmp_path_factory, real_build_reason):
    """One real `fwtool build --board pico` of fire_alarm shared by the tests that read its output (do not modify
    it). FWTOOL_TEST_PICO_BUILD=<an output folder> reuses an existing build instead."""
    import json
    import subprocess

    d = os.environ.get("FWTOOL_TEST_PICO_BUILD")
    if d:
        if not (Path(d) / "firmware.uf2").is_file():
            pytest.skip(f"FWTOOL_TEST_PICO_BUILD={d} has no firmware.uf2")
        return Path(d)
    if real_build_reason:
        pytest.skip(real_build_reason)
    if not FIRE_ALARM.is_file():
        pytest.skip("shared fire_alarm model not found")
    out = tmp_path_factory.mktemp("fw") / "pico"
    p = subprocess.run([sys.executable, "-m", "fwtool", "build", "--board", "pico", "--model", str(FIRE_ALARM),
                        "--out", str(out), "--json"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]
    json.loads(p.stdout)
    return out

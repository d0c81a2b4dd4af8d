import os
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from modelgen import FIRE_ALARM  # noqa: E402


@pytest.fixture
def fire_alarm() -> Path:
    if not FIRE_ALARM.is_file():
        pytest.skip(f"shared model not found at ../shared/models/fire_alarm.tflite")
    return FIRE_ALARM


def build_prerequisites() -> str | None:
    """None when a real RP2040 build can run here, else the reason it cannot."""
    from fwtool import vendor

    for tool in ("arm-none-eabi-gcc", "arm-none-eabi-g++", "cmake"):
        if not shutil.which(tool):
            return f"{tool} not installed (apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi " \
                   "libstdc++-arm-none-eabi-newlib cmake)"
    if not (shutil.which("ninja") or shutil.which("make")):
        return "neither ninja nor make installed"
    for dep in vendor.deps_for("rp2040", "build"):
        if vendor.locate(dep).path is None:
            return f"vendor tree {dep.name} not available (fwtool vendor sync, or set {dep.env})"
    return None


@pytest.fixture(scope="session")
def real_build_reason():
    return build_prerequisites()


def pytest_report_header(config):
    reason = build_prerequisites()
    return [f"fwtool real-SDK builds: {'enabled' if reason is None else 'SKIPPED: ' + reason}"]

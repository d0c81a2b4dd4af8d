"""fwtool's pytest plugin (fwtool/pytest_plugin.py) run by pytest's own ``pytester``: one inner session on the
virtual RP2040 (one real build, reused by every inner test) with a passing and a failing ``expect``, a timeout, a
banner identity mismatch; the plugin off without --fwtool-board; the labgrid place variant only with labgrid."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import signal
import subprocess
import sys

import pytest

from fwtool.core import paths
from modelgen import FIRE_ALARM

pytest_plugins = ["pytester"]

INNER = '''
import dataclasses

import pytest

from fwtool import api


def test_expect_passes(board):
    m = board.expect(r"^FWT:INFER n=(\\d+)", timeout=60)
    assert int(m.group(1)) >= 0
    infs = board.inferences(2)
    assert [type(i).__name__ for i in infs] == ["Inference", "Inference"]
    assert board.banner.fields["model"] == "fire_alarm"
    assert board.latency().count >= 3
    assert any(ln.startswith("FWT:BOOT") for ln in board.lines())


def test_reset_restarts_the_run(board):
    assert board.inferences(3)[-1].n >= 3
    assert board.reset().fields["model"] == "fire_alarm"
    assert board.inferences(1)[0].n == 1  # a fresh run counts from 1 again


def test_label_never_printed(board):
    board.expect(label="never_printed_label", min_score=0.5, timeout=4)


def test_regex_times_out(board):
    board.expect(r"NEVER PRINTED", timeout=2)


def test_build_fixture(fwtool_build):
    assert fwtool_build.image.is_file() and fwtool_build.model_name == "fire_alarm"


class TestWrongImage:
    @pytest.fixture(scope="session")
    def fwtool_build(self, fwtool_build):
        """The same image, claimed to be another model's build: the banner must give it away."""
        report = {**fwtool_build.report, "model": {**fwtool_build.report["model"], "sha256": "0" * 64}}
        return api.Build(board=fwtool_build.board, model=fwtool_build.model, app=fwtool_build.app,
                         result=dataclasses.replace(fwtool_build.result, report=report), target="virtual")

    def test_identity(self, board):
        pass
'''


# Read at import, before pytester points HOME at its temporary folder (where the inner session would find no cache
# and no config, and fetch every tree again from the manifest's URLs).
OUTER_DIRS = {"FWTOOL_CACHE_DIR": str(paths.cache_dir()), "FWTOOL_CONFIG": str(paths.config_file())}


@pytest.fixture
def outer_fwtool_dirs(monkeypatch):
    """The inner session uses this session's fwtool cache and config file."""
    for name, value in OUTER_DIRS.items():
        monkeypatch.setenv(name, value)


def plugin_args() -> list[str]:
    """``-p fwtool.pytest_plugin`` unless the installed package's pytest11 entry point loads it already."""
    eps = importlib.metadata.entry_points(group="pytest11")
    return [] if any(ep.value == "fwtool.pytest_plugin" for ep in eps) else ["-p", "fwtool.pytest_plugin"]


def test_plugin_is_off_without_board(pytester):
    pytester.makepyfile(test_off="def test_uses_board(board):\n    raise AssertionError('must not run')\n")
    result = pytester.runpytest_subprocess(*plugin_args(), "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*no --fwtool-board given*"])


def test_plugin_options_are_listed(pytester):
    result = pytester.runpytest_subprocess(*plugin_args(), "--help")
    result.stdout.fnmatch_lines(["*--fwtool-board=NAME*", "*--fwtool-model=FILE*", "*--fwtool-target=WHERE*"])


def test_plugin_on_the_virtual_board(pytester, tmp_path_factory, real_build_reason, emulator_ready,
                                     outer_fwtool_dirs):
    if real_build_reason:
        pytest.skip(real_build_reason)
    if not FIRE_ALARM.is_file():
        pytest.skip("fire_alarm model not available")
    pytester.makepyfile(test_inner=INNER)
    out = tmp_path_factory.mktemp("plugin-build")
    result = pytester.runpytest_subprocess(
        *plugin_args(), "-p", "no:cacheprovider", "--fwtool-board", "pico", "--fwtool-model", str(FIRE_ALARM),
        "--fwtool-out", str(out), "-rA", timeout=900)
    result.assert_outcomes(passed=3, failed=2, errors=1)
    text = result.stdout.str()
    # the failing expectations: what was expected, for how long, then the board's last lines
    result.stdout.fnmatch_lines([
        "*expected an inference with top label 'never_printed_label' and score >= 0.5: not seen within 4 s*",
        "*last 20 of * lines the board printed:*",
        "*| FWT:INFER n=* top=*",
    ])
    result.stdout.fnmatch_lines(["*expected a line matching 'NEVER PRINTED': not seen within 2 s*"])
    # the identity check: the banner's sha256 is not the build's
    result.stdout.fnmatch_lines(["*the board runs another image: its banner says model=fire_alarm sha256=*"
                                 "the build is model=fire_alarm sha256=000000000000*"])
    assert "| FWT:BOOT model=fire_alarm" in text
    # the latency summary of a board test is in its report
    result.stdout.fnmatch_lines(["*virtual: invoke latency (emulated, n=*): p50 * ms*"])
    # one build for the whole session
    assert len(list(out.rglob("report.json"))) == 1


LG_INNER = """
def test_same_file_on_each(board):
    board.expect(r"^FWT:INFER n=", timeout=60)
    assert len(board.inferences(2)) == 2


def test_label_never_printed(board):
    board.expect(label="never_printed_label", timeout=3)
"""


def test_plugin_on_a_labgrid_place(pytester, tmp_path_factory, real_build_reason, emulator_ready,
                                   outer_fwtool_dirs):
    """The same test file on the virtual board and on a `fwtool lab --virtual 1` place (--fwtool-target twice)."""
    if importlib.util.find_spec("labgrid") is None:
        pytest.skip("labgrid is not installed here (fwtool[labgrid] lives in its own venv): the labgrid:PLACE "
                    "target is not exercised")
    if real_build_reason:
        pytest.skip(real_build_reason)
    work = tmp_path_factory.mktemp("plugin-lab")
    proc = subprocess.Popen([sys.executable, "-m", "fwtool", "lab", "--virtual", "1", "--json", "--name", "fwt-plug",
                             "--duration", "600"], cwd=work, stdout=subprocess.PIPE,
                            stderr=open(work / "lab.err", "wb"), text=True)
    try:
        line = proc.stdout.readline()
        if not line:
            pytest.fail(f"fwtool lab exited: {(work / 'lab.err').read_text()[-2000:]}")
        info = json.loads(line)
        pytester.makepyfile(test_lg=LG_INNER)
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("LG_COORDINATOR", info["coordinator"])
            result = pytester.runpytest_subprocess(
                *plugin_args(), "-p", "no:cacheprovider", "-p", "no:labgrid", "--fwtool-board", "pico",
                "--fwtool-model", str(FIRE_ALARM), "--fwtool-out", str(work / "out"), "--fwtool-target", "virtual",
                "--fwtool-target", f"labgrid:{info['places'][0]}", "-rA", timeout=900)
        result.assert_outcomes(passed=2, failed=2)
        result.stdout.fnmatch_lines([f"PASSED test_lg.py::test_same_file_on_each[labgrid:{info['places'][0]}]"])
        result.stdout.fnmatch_lines(["*top label 'never_printed_label': not seen within 3 s*",
                                     "*lines the board printed:*"])
    finally:
        if proc.poll() is None:  # Ctrl-C ends the lab cleanly; SIGTERM where SIGINT is ignored (a background job)
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.terminate()
                proc.wait(30)

"""fwtool's pytest plugin: hardware-in-the-loop tests against the virtual board, an attached board or a labgrid
place (docs/pytest-plugin.md).

Registered through the ``pytest11`` entry point, so installing fwtool makes its options known; it does nothing
unless ``--fwtool-board`` is given (its fixtures skip with the reason otherwise), so other suites are unaffected.
Load it explicitly with ``-p fwtool.pytest_plugin`` where fwtool is not installed as a package.

Options: ``--fwtool-board NAME``, ``--fwtool-model FILE|example:NAME``, ``--fwtool-app APP``,
``--fwtool-target virtual|device|labgrid:PLACE`` (repeat it to run every test using ``board`` on each),
``--fwtool-port PORT``, ``--fwtool-out DIR``, ``--fwtool-boot-timeout S``.
Fixtures: ``fwtool_build`` (session: one build per board/model/app/target kind), ``board`` (a started
:class:`fwtool.targets.session.Board`), ``validate`` (a function returning ``fwtool validate --json``'s report).
Everything goes through :mod:`fwtool.api`.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from fwtool import api
from fwtool.core.errors import FwtoolError
from fwtool.firmware import outdir

BUILDS = pytest.StashKey[dict]()


def pytest_addoption(parser) -> None:
    g = parser.getgroup("fwtool", "fwtool hardware-in-the-loop tests (fwtool.pytest_plugin)")
    g.addoption("--fwtool-board", metavar="NAME", help="Board file to build for (enables the fwtool fixtures).")
    g.addoption("--fwtool-model", metavar="FILE", help="Model: a .tflite file or example:NAME.")
    g.addoption("--fwtool-app", metavar="APP", default="inference", help="Firmware app [inference].")
    g.addoption("--fwtool-target", metavar="WHERE", action="append",
                help="virtual (default), device, or labgrid:PLACE; repeat to run each board test on every one.")
    g.addoption("--fwtool-port", metavar="PORT", help="device: the board's serial port or pyserial URL.")
    g.addoption("--fwtool-out", metavar="DIR", help="Build folder (default: fwtool build's folder for the board).")
    g.addoption("--fwtool-boot-timeout", metavar="S", type=float, default=60.0,
                help="Seconds to wait for the boot banner [60].")


def _targets(config) -> list[str]:
    return config.getoption("--fwtool-target") or ["virtual"]


def pytest_report_header(config):
    board = config.getoption("--fwtool-board")
    if board:
        return (f"fwtool: board {board}, model {config.getoption('--fwtool-model')}, app "
                f"{config.getoption('--fwtool-app')}, target {', '.join(_targets(config))}")
    return None


def pytest_configure(config) -> None:
    config.stash[BUILDS] = {}


def pytest_generate_tests(metafunc) -> None:
    """Several --fwtool-target: every test that takes ``board`` runs once on each."""
    targets = _targets(metafunc.config)
    if "board" in metafunc.fixturenames and len(targets) > 1 and metafunc.config.getoption("--fwtool-board"):
        metafunc.parametrize("board", targets, indirect=True, ids=targets)


def _fail(e: FwtoolError):
    pytest.fail(f"error: {e.cause}" + (f"\nfix: {e.fix}" if e.fix else ""), pytrace=False)


def build_kind(target: str) -> str:
    """Targets that run the same build: virtual boards and (virtual) places run single-core TFLM."""
    return "device" if api.parse_target(target)[0] == "device" else "single-core"


def build_for(config, target: str) -> api.Build:
    """The session's build for ``target`` (one per :func:`build_kind`)."""
    board = config.getoption("--fwtool-board")
    if not board:
        pytest.skip("fwtool plugin: no --fwtool-board given")
    model = config.getoption("--fwtool-model")
    if not model:
        pytest.fail("fwtool plugin: --fwtool-board needs --fwtool-model FILE (or example:NAME)", pytrace=False)
    kind = build_kind(target)
    cache = config.stash[BUILDS]
    if kind not in cache:
        out = config.getoption("--fwtool-out")
        try:
            cache[kind] = api.build(model, board=board, app=config.getoption("--fwtool-app"), target=target,
                                    out_dir=Path(out) / kind if out else
                                    outdir.default_out_dir(board, "emulator" if kind == "single-core" else None))
        except FwtoolError as e:
            cache[kind] = e
    got = cache[kind]
    if isinstance(got, FwtoolError):
        _fail(got)
    return got


@pytest.fixture(scope="session")
def fwtool_build(request) -> api.Build:
    """The firmware for --fwtool-board/--fwtool-model/--fwtool-app, built once per session (first target's kind)."""
    return build_for(request.config, _targets(request.config)[0])


@pytest.fixture
def board(request, fwtool_build):
    """The target running the build: started, its banner's model name and sha256 checked against the build.
    The latency summary of its inferences is added to the test's report (``-rA`` shows it)."""
    config = request.config
    target = getattr(request, "param", None) or _targets(config)[0]
    # fwtool_build (which a test module may override) when it is this target's kind, else the session's other build
    build = fwtool_build if build_kind(target) == build_kind(fwtool_build.target) else build_for(config, target)
    try:
        b = api.open_target(build, target, port=config.getoption("--fwtool-port"),
                            boot_timeout=config.getoption("--fwtool-boot-timeout"))
    except FwtoolError as e:
        _fail(e)
    except api.IdentityMismatch as e:
        pytest.fail(str(e), pytrace=False)
    try:
        yield b
    finally:
        try:
            request.node.add_report_section("teardown", "fwtool", f"{target}: {b.latency_summary()}")
        finally:
            b.close()


@pytest.fixture
def validate(request):
    """``validate(count=..., max_diff=..., ...)`` → the report ``fwtool validate --json`` prints, for the
    session's board/model on the first --fwtool-target (keywords: those of :func:`fwtool.api.validate`)."""
    config = request.config
    if not config.getoption("--fwtool-board"):
        pytest.skip("fwtool plugin: no --fwtool-board given")

    def run(**kw) -> dict:
        try:
            return api.validate(config.getoption("--fwtool-model"), board=config.getoption("--fwtool-board"),
                                target=kw.pop("target", _targets(config)[0]),
                                port=kw.pop("port", config.getoption("--fwtool-port")), **kw)
        except FwtoolError as e:
            _fail(e)
    return run

"""fwtool's stable Python API: build firmware, run it on a target, read what it prints, validate it.

This is what the pytest plugin (:mod:`fwtool.pytest_plugin`) calls, and what a script should call instead of
fwtool's internals (which stay free to move). Three calls::

    from fwtool import api

    build = api.build("example:fire_alarm", board="pico")           # once; a Build
    with api.open_target(build, "virtual") as board:                 # started, banner identity checked
        board.expect(label="fire_alarm", min_score=0.5, timeout=60)
        print(board.inferences(3), board.latency())
    report = api.validate("example:fire_alarm", board="pico", count=5)  # what `fwtool validate --json` prints

Targets are named as the plugin's ``--fwtool-target``: ``virtual`` (the board family's virtual target: rp2040js
for RP2040 boards), ``device`` (the attached board: flashed, then read over its serial port) or
``labgrid:PLACE`` (a labgrid place, flashed through its exporter; needs ``fwtool[labgrid]``).

Errors are fwtool's own (:class:`fwtool.core.errors.FwtoolError`: ``cause``, ``fix``, ``code``); an expectation
that is not met raises :class:`ExpectationFailed` (an ``AssertionError``) whose message ends with the last lines
the board printed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fwtool.core.errors import BadInput
from fwtool.firmware import flow
from fwtool.firmware.plan import BuildOptions
from fwtool.firmware.result import BuildResult
from fwtool.lab.places import Lab  # labgrid itself is imported by Lab() (fwtool[labgrid]: optional)
from fwtool.lab.target import PlaceTarget
from fwtool.model import sources
from fwtool.targets import registry
from fwtool.targets.base import TargetConfig
from fwtool.targets.session import Board, ExpectationFailed, IdentityMismatch
from fwtool.validate.flow import ValidateOptions, run as run_validate

__all__ = ["Build", "build", "open_target", "validate", "Board", "ExpectationFailed", "IdentityMismatch",
           "parse_target"]

TARGET_KINDS = ("virtual", "device", "labgrid:PLACE")


@dataclass
class Build:
    """One firmware build: what was asked for and what came out.

    ``result`` is the build's :class:`~fwtool.firmware.result.BuildResult`; ``report`` its report.json (the same
    dict ``fwtool build --json`` prints). ``model_name``/``model_sha256`` are what the banner must show."""

    board: str
    model: Path
    app: str
    result: BuildResult
    target: str = "virtual"
    extra: dict = field(default_factory=dict)

    @property
    def report(self) -> dict:
        return self.result.report

    @property
    def image(self) -> Path:
        """The file a target runs (the family picks UF2/HEX/ELF)."""
        return self.result.artifacts.image

    @property
    def model_name(self) -> str:
        return self.report["model"]["name"]

    @property
    def model_sha256(self) -> str:
        return self.report["model"]["sha256"]


def parse_target(target: str) -> tuple[str, str | None]:
    """``"virtual"`` → ("virtual", None); ``"device"`` → ("device", None); ``"labgrid:P"`` → ("labgrid", "P")."""
    kind, _, place = target.partition(":")
    if kind in ("virtual", "device") and not place:
        return kind, None
    if kind == "labgrid" and place:
        return kind, place
    raise BadInput(f"unknown target '{target}'", f"use one of: {', '.join(TARGET_KINDS)}")


def build(model: str | Path, board: str = "pico", app: str = "inference", target: str = "virtual",
          out_dir: Path | None = None, on_line: Callable[[str], None] = lambda s: None,
          on_step: Callable[[str], None] = lambda s: None) -> Build:
    """Build ``model`` (a .tflite path or ``example:NAME``) for ``board``, for running on ``target``.

    A virtual target gets the cores it emulates (2 on the virtual RP2040: the image a board runs), a board or
    place the board's. The firmware goes to ``out_dir`` (default: fwtool build's folder for the board). Raises
    FwtoolError on refusal or a failed build; returns the :class:`Build`."""
    kind, _ = parse_target(target)
    path = sources.resolve(str(model))
    where = "emulator" if kind == "virtual" else "board"
    cores = registry.default_cores(board, where, path)  # a place (virtual or real) runs the board's image: 2 cores
    opts = BuildOptions(board=board, model=path, out_dir=Path(out_dir) if out_dir else None, app=app,
                        tflm_cores=cores)
    result = flow.run(opts, on_line=on_line, on_step=on_step)
    return Build(board=board, model=path, app=app, result=result, target=target)


def open_target(build: Build, target: str | None = None, *, port: str | None = None, serial: str | None = None,
                coordinator: str | None = None, boot_timeout: float = 60.0, check_identity: bool = True) -> Board:
    """Load ``build`` on ``target`` (default: the one it was built for), start it and wait for its banner.

    ``port``/``serial``: the attached board's serial port or USB serial number (``device``); ``coordinator``:
    the labgrid coordinator (``labgrid:PLACE``; default ``$LG_COORDINATOR``). The banner's model name and sha256
    are checked against the build (:class:`IdentityMismatch` if another image runs) unless ``check_identity`` is
    False. Returns a started :class:`Board`; use it as a context manager (or call ``close()``)."""
    kind, place = parse_target(target or build.target)
    if kind == "virtual":
        cls = registry.virtual_for(build.board, build.model)
        tgt = cls(TargetConfig(board=build.board))
        image = registry.image_for(tgt, build.board, build.image, build.model)
        b = Board.virtual(tgt, image)
    elif kind == "device":
        tgt = registry.by_name("board")(TargetConfig(board=build.board, port=port, serial=serial))
        b = Board.port_target(tgt, build.image)
    else:
        lab = Lab(coordinator)
        try:
            lab.acquire(place)
            tgt = PlaceTarget(lab, place)
        except BaseException:
            lab.close()
            raise
        b = Board.port_target(tgt, build.image, on_close=lambda: (lab.release(place), lab.close()))
    try:
        b.wait_banner(boot_timeout)
        if check_identity:
            b.check_identity(build.model_name, build.model_sha256)
    except BaseException:
        b.close()
        raise
    return b


def validate(model: str | Path, board: str = "pico", target: str = "virtual", *, count: int | None = None,
             seed: int = 0, inputs: list[Path] | None = None, max_diff: int = 1, min_agreement: float = 100.0,
             budget_ms: float | None = None, port: str | None = None, coordinator: str | None = None,
             out_dir: Path | None = None, timeout: float = 300.0,
             on_step: Callable[[str], None] = lambda s: None) -> dict:
    """Validate ``model`` on ``target``: the report dict ``fwtool validate --json`` prints (``report["ok"]``).

    Raises FwtoolError when the comparison cannot happen (bad input, build or target failure)."""
    kind, place = parse_target(target)
    opts = ValidateOptions(model=sources.resolve(str(model)), board=board, inputs=inputs, count=count, seed=seed,
                           target="emulator" if kind == "virtual" else "board", port=port, max_diff=max_diff,
                           min_agreement=min_agreement, budget_ms=budget_ms, out_dir=out_dir, timeout=timeout)
    if kind != "labgrid":
        return run_validate(opts, on_step=on_step)
    with Lab(coordinator) as lab:
        lab.acquire(place)
        try:
            tgt = PlaceTarget(lab, place)
            opts.on_target, opts.tflm_cores = tgt, tgt.info.cores
            return run_validate(opts, on_step=on_step)
        finally:
            lab.release(place)

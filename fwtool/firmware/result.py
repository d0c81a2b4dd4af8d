"""The typed outcome of a build (after Zephyr's RunnerConfig): which files exist and which one is *the* image to flash.

``fwtool build`` returns a :class:`BuildResult`; ``last_build()`` loads the newest one back from its
``report.json``; flash, run, validate and emulate take it instead of reading keys of a dict.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from fwtool.core import boards
from fwtool.core.errors import BadInput, FwtoolError
from fwtool.firmware.outdir import BUILD_ROOT, REPORT_NAME, default_out_dir

KINDS = ("elf", "bin", "hex", "uf2", "map")


@dataclass(frozen=True)
class Artifacts:
    """The files of one build. ``image_kind`` names the one a runner flashes (chosen by the family)."""

    out_dir: Path
    image_kind: str
    elf: Path | None = None
    bin: Path | None = None
    hex: Path | None = None
    uf2: Path | None = None
    map: Path | None = None

    @property
    def report(self) -> Path:
        return self.out_dir / REPORT_NAME

    @property
    def image(self) -> Path:
        path = getattr(self, self.image_kind)
        if path is None:
            raise BadInput(f"the build in {self.out_dir} has no {self.image_kind} image",
                           "rebuild with 'fwtool build'")
        return path

    def files(self) -> dict[str, str]:
        out = {k: str(getattr(self, k)) for k in KINDS if getattr(self, k) is not None}
        out["report"] = str(self.report)
        return out

    @classmethod
    def from_files(cls, out_dir: Path, image_kind: str, files: dict) -> "Artifacts":
        return cls(Path(out_dir), image_kind, **{k: Path(files[k]) for k in KINDS if files.get(k)})


@dataclass
class BuildResult:
    board: str
    app: str
    artifacts: Artifacts
    report: dict = field(repr=False)

    @property
    def notes(self) -> list[str]:
        return list(self.report.get("build", {}).get("notes", []))

    @classmethod
    def from_report(cls, report: dict, out_dir: Path) -> "BuildResult":
        files = report.get("files", {})
        kind = report.get("image_kind") or ("uf2" if files.get("uf2") else "hex" if files.get("hex") else "elf")
        if report["board"].get("file"):  # a user board: flash, run and monitor then know it by name
            try:
                boards.remember(Path(report["board"]["file"]))
            except FwtoolError:
                pass  # moved or broken since the build: a lookup by name says so
        return cls(report["board"]["name"], report.get("build", {}).get("app", "inference"),
                   Artifacts.from_files(out_dir, kind, files), report)


def load(out_dir: Path) -> BuildResult | None:
    """The build in ``out_dir``, or None when there is none (or its report is unreadable)."""
    path = Path(out_dir) / REPORT_NAME
    try:
        report = json.loads(path.read_text())
        return BuildResult.from_report(report, Path(out_dir))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def last_build(out_dir: Path | None = None, board: str | None = None) -> BuildResult | None:
    """The most recent successful build: in ``out_dir``, else ``build/<board>``, else the newest under ``build/``."""
    if out_dir:
        candidates = [Path(out_dir)]
    elif board:
        candidates = [default_out_dir(board)]
    else:
        candidates = [p.parent for p in BUILD_ROOT.glob(f"*/{REPORT_NAME}")]
    found = [c for c in candidates if (c / REPORT_NAME).is_file()]
    if not found:
        return None
    return load(max(found, key=lambda c: (c / REPORT_NAME).stat().st_mtime))

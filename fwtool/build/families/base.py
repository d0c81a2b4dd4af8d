"""The interface every board family implements (in the style of Zephyr's west runners: data in, steps out)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from fwtool.core.toolchain import Tool, ToolStatus, status


@dataclass
class Artifacts:
    """What a family build leaves in its build tree (before fwtool copies them to the output folder)."""

    elf: Path
    bin: Path | None = None
    map: Path | None = None
    extra: dict = field(default_factory=dict)


class Family:
    name: str = ""
    template_dir: str = ""  # folder under templates/
    tools: list[Tool] = []
    # Flash kept for code other than the model (SDK, TFLM runtime, kernels, app) in the fit check before compiling.
    code_reserve_bytes: int = 0
    # RAM kept besides the arena (stacks, heap, SDK/USB state, input/output buffers are added separately).
    ram_reserve_bytes: int = 0
    output_suffix: str = ".bin"  # the file users flash (.uf2 for RP2040, .hex for PSoC 6)

    def tool_status(self) -> list[ToolStatus]:
        return [status(t) for t in self.tools]

    def extra_checks(self) -> list[dict]:
        """Additional doctor rows: {name, ok, detail}."""
        return []

    def vendor_paths(self) -> dict[str, Path]:
        """Locate (or fail with the fix) the vendor trees a build of this family needs."""
        raise NotImplementedError

    def template_context(self, ctx: dict, vendor_paths: dict[str, Path]) -> dict:
        """Family-specific template values added to the generic ``ctx`` (model, ops, kernel_files, …): data only."""
        raise NotImplementedError

    def tflm_patches(self, ctx: dict, vendor_paths: dict[str, Path], patch_dir: Path, cores: int) -> list[str]:
        """Build-time fixes to upstream sources (patched copies in ``patch_dir``); returns the build notes."""
        return []

    def compile(self, project_dir: Path, build_dir: Path, options: dict,
                on_line: Callable[[str], None]) -> Artifacts:
        raise NotImplementedError

    @staticmethod
    def progress(line: str) -> tuple[int, int] | None:
        """(done, total) when a build output line shows progress."""
        return None

    def package(self, artifacts: Artifacts, board, out_dir: Path) -> dict[str, Path]:
        """Produce the flashable file(s) in ``out_dir`` from the build artifacts; validate them."""
        raise NotImplementedError

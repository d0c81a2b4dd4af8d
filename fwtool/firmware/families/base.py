"""The interface every board family implements (in the style of Zephyr's west runners: data in, data out).

A family turns a :class:`~fwtool.firmware.plan.BuildPlan` into firmware in four calls, none of which edits its
inputs; the build flow (fwtool/firmware/flow.py) strings them together:

1. ``template_context(plan, vendor_paths) -> dict``: family values for the templates (SDK paths, library
   sources, …), merged over the generic context. Must return every key in ``context_keys``.
2. ``patches(plan, vendor_paths, patch_dir) -> list[SourcePatch]``: build-time fixes of upstream sources as data
   (the copy is written under ``patch_dir``; the flow swaps it into the source list and collects the notes).
3. ``compile(CompileRequest) -> CompiledFiles``: run the family's build system; every command is logged.
4. ``package(compiled, board) -> {kind: bytes}``: the flashable image(s), validated, keyed by image kind; the
   board's ``image_kind`` must be among them. The flow writes them as ``firmware.<kind>``.

Plus data: ``name``, ``template_dir``, ``tools`` (what ``doctor`` checks), the vendor trees come from
``vendor.deps_for(name, "build")``, and the fit-check reserves.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from fwtool.core.boards import Board
from fwtool.core.errors import DoesNotFit
from fwtool.core.toolchain import Tool, ToolStatus, status

if TYPE_CHECKING:  # for annotations only: the plan module imports the family registry
    from fwtool.firmware.plan import BuildPlan


# GNU ld's overflow lines (RP2040: region `FLASH'/`RAM'; PSoC 6 BSP scripts: `flash'/`ram'), e.g.
#   ld: firmware.elf section `.text' will not fit in region `FLASH'
#   ld: region `FLASH' overflowed by 12345 bytes
_OVERFLOW = re.compile(r"region [`'\"]?([\w.]+)['\"]? overflowed by (\d+) bytes?")
_WONT_FIT = re.compile(r"section [`'\"]?([\w.]+)['\"]? will not fit in region [`'\"]?([\w.]+)")


def link_overflow(lines: list[str], board_name: str = "the board") -> DoesNotFit | None:
    """The linker's "region X overflowed by N bytes" / "will not fit in region" lines as a DoesNotFit (exit 5)
    naming every region and its shortfall; None when the output shows no overflow."""
    regions: dict[str, int] = {}
    sections: list[str] = []
    for ln in lines:
        m = _OVERFLOW.search(ln)
        if m:
            regions[m.group(1)] = max(regions.get(m.group(1), 0), int(m.group(2)))
        m = _WONT_FIT.search(ln)
        if m:
            sections.append(f"{m.group(1)} in {m.group(2)}")
            regions.setdefault(m.group(2), 0)
    if not regions:
        return None
    short = "; ".join(f"{name} short by {n:,} bytes" if n else f"{name} too small" for name, n in regions.items())
    what = f" ({', '.join(dict.fromkeys(sections))})" if sections else ""
    return DoesNotFit(f"the linked firmware does not fit {board_name}: {short}{what}",
                      "use a smaller or int8-quantized model, a smaller --arena, or a board with more memory "
                      "('fwtool boards')")


@dataclass(frozen=True)
class SourcePatch:
    """Compile ``copy`` instead of the upstream ``upstream`` (relative to its vendor tree); ``note`` says why.

    ``copy`` is None for a note without a replacement (e.g. "already single-core; unchanged")."""

    upstream: str
    copy: Path | None
    note: str


def apply_patches(sources: list[str], patches: list[SourcePatch]) -> tuple[list[str], list[str]]:
    """(upstream sources minus the replaced ones, the patched copies) — new lists, inputs untouched."""
    replaced = {p.upstream for p in patches if p.copy is not None}
    copies = [p.copy.as_posix() for p in patches if p.copy is not None]
    return [s for s in sources if s not in replaced], copies


@dataclass(frozen=True)
class CompileRequest:
    project_dir: Path  # the rendered project
    build_dir: Path  # the build system's tree (kept between builds)
    board: Board
    vendor_paths: dict[str, Path]
    jobs: int | None = None
    log: Callable[[str], None] = lambda line: None  # every output line and every command line ("$ …")
    builder: str | None = None  # --builder: one of the family's ``builders`` (None: the family's default)


@dataclass(frozen=True)
class CompiledFiles:
    """What a family build leaves in its build tree (before fwtool copies them to the output folder)."""

    elf: Path
    bin: Path | None = None
    hex: Path | None = None
    map: Path | None = None
    builder: dict | None = None  # {"name", "why"}: which build system ran, for a family with a choice


class Family:
    """Abstract base: subclasses set the data attributes and implement the four calls above."""

    name: str = ""
    template_dir: str = ""  # folder under templates/
    tools: list[Tool] = []
    context_keys: tuple[str, ...] = ()  # the keys template_context returns
    # Flash kept for code other than the model (SDK, TFLM runtime, kernels, app) in the fit check before compiling.
    code_reserve_bytes: int = 0
    # RAM kept besides the arena (stacks, heap, SDK/USB state, input/output buffers are added separately).
    ram_reserve_bytes: int = 0
    # The family's images run on a virtual board that prints the banner (rp2040js): the build then reads the
    # arena the firmware really uses there (model/arena.py target figures) instead of keeping the host margin.
    arena_on_virtual_board: bool = False
    # The fwtool.targets registry name of the virtual target its images run on (None: none; data, not a type test).
    virtual_target: str | None = None
    # What an app may ``need`` that every board of the family has without a board-file table (linux: the audio
    # apps' microphone is raw S16LE PCM on stdin, e.g. from arecord: templates/linux/fwt_mic.cpp.j2).
    features: frozenset[str] = frozenset()
    # Image kinds written executable (mode 0755): a Linux family's static program ("elf").
    executable_kinds: tuple[str, ...] = ()
    # Build systems ``fwtool build --builder`` may choose (psoc6: cmake, mtb); empty: the family has one.
    builders: tuple[str, ...] = ()

    def tflm_cores(self, board: Board, asked: int) -> int:
        """The cores TFLM runs on for ``--tflm-cores asked``. Default 1: only pico-tflmicro splits work across
        cores, and only in CMSIS-NN's plain-C matmul (arm_nn_mat_mult_nt_t_s8.c, TF_LITE_PICO_MULTICORE)."""
        return 1

    def virtual_target_for(self, board: Board) -> str | None:
        """The virtual target of ``board`` (default: the family's ``virtual_target``; a family whose boards run on
        different ones, e.g. linux: native or qemu-aarch64, overrides it)."""
        return self.virtual_target

    def virtual_image(self, image: Path) -> Path:
        """The file the virtual target runs for a build whose flashable image is ``image`` (default: the same)."""
        return Path(image)

    def image_for_target(self, image: Path, target: str) -> Path:
        """The file virtual target ``target`` runs (a family with two virtual targets picks per target)."""
        return self.virtual_image(image)

    def tool_status(self) -> list[ToolStatus]:
        return [status(t) for t in self.tools]

    def extra_checks(self) -> list[dict]:
        """Additional doctor rows: {name, ok, detail}."""
        return []

    def vendor_paths(self) -> dict[str, Path]:
        """Locate (or fail with the fix) the vendor trees a build of this family needs."""
        raise NotImplementedError

    def template_context(self, plan: BuildPlan, vendor_paths: dict[str, Path]) -> dict:
        """Family-specific template values (data only; ``plan`` is not changed)."""
        raise NotImplementedError

    def patches(self, plan: BuildPlan, vendor_paths: dict[str, Path], patch_dir: Path) -> list[SourcePatch]:
        """Build-time fixes to upstream sources (patched copies written under ``patch_dir``)."""
        return []

    def compile(self, request: CompileRequest) -> CompiledFiles:
        raise NotImplementedError

    def package(self, compiled: CompiledFiles, board: Board) -> dict[str, bytes]:
        """The flashable image(s) by kind ({"uf2": bytes}), validated; must include ``board.image_kind``."""
        raise NotImplementedError

    @staticmethod
    def progress(line: str) -> tuple[int, int] | None:
        """(done, total) when a build output line shows progress."""
        return None

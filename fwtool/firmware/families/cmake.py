"""The CMake + Ninja (or make) driver of every CMake-built family: configure once per argument set (a stamp of
the configure command in the build tree), ccache when installed, build with the generator's own tool, every
command line and output line logged, a linker overflow mapped to DoesNotFit (exit 5).

A family composes it: it gives its own configure arguments (:func:`configure_command` adds the generic ones) and
calls :func:`build`; :func:`progress` parses the build tool's lines.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Callable

from fwtool.core import runner
from fwtool.core.errors import FwtoolError
from fwtool.firmware.families.base import CompileRequest, link_overflow

_PROGRESS = re.compile(r"^\[\s*(\d+)/(\d+)\]|^\[\s*(\d+)%\]")
STAMP = ".fwtool-configure"


def generator() -> tuple[str, str]:
    """(CMake generator name, its build tool): Ninja when installed, else make."""
    if runner.which("ninja"):
        return "Ninja", "ninja"
    if runner.which("make"):
        return "Unix Makefiles", "make"
    raise FwtoolError("neither ninja nor make was found", "sudo apt-get install make (or ninja-build)")


def compiler_launcher() -> list[str]:
    """Use ccache when installed: a new out dir or model then reuses the compiled SDK/TFLM objects."""
    if os.environ.get("FWTOOL_NO_CCACHE") or not runner.which("ccache"):
        return []
    return [f"-DCMAKE_{lang}_COMPILER_LAUNCHER=ccache" for lang in ("C", "CXX")]


def configure_command(request: CompileRequest, *family_args: str) -> list[str]:
    """The cmake configure command line: source, build tree, generator, ``family_args``, the ccache launcher."""
    gen, _ = generator()
    return ["cmake", "-S", str(request.project_dir), "-B", str(request.build_dir), "-G", gen, *family_args,
            *compiler_launcher()]


def doctor_row() -> dict:
    """The doctor row for the generator (ninja or make)."""
    gen = "ninja" if runner.which("ninja") else "make" if runner.which("make") else None
    return {"name": "cmake generator", "ok": gen is not None,
            "detail": f"{gen} found" if gen else "neither make nor ninja: sudo apt-get install make"}


def build(request: CompileRequest, configure: list[str],
          check_configure: Callable[[list[str]], None] = lambda lines: None) -> Path:
    """Configure (when ``configure`` differs from the last one in this build tree) and build; the firmware.elf.

    ``check_configure`` sees the configure output and may raise (e.g. pico-sdk found no tinyusb); the stamp is then
    dropped so the next build configures again."""
    build_dir, log = request.build_dir, request.log
    build_dir.mkdir(parents=True, exist_ok=True)
    stamp = build_dir / STAMP
    key = hashlib.sha256(json.dumps(configure).encode()).hexdigest()
    if not (build_dir / "CMakeCache.txt").is_file() or not stamp.is_file() or stamp.read_text() != key:
        log("-- fwtool: configuring (cmake)")
        stamp.unlink(missing_ok=True)
        rc, lines = runner.stream(configure, on_line=log, on_command=log)
        if rc != 0:
            raise FwtoolError(f"cmake configure failed: {first_error(lines)}",
                              f"see {build_dir}/CMakeFiles/CMakeError.log; 'fwtool doctor' checks the setup")
        check_configure(lines)
        stamp.write_text(key)
    jobs = str(request.jobs or os.cpu_count() or 2)
    # The objects carry -g, so ccache would key on the build folder; these let other out dirs share them.
    env = {"CCACHE_NOHASHDIR": "1", "CCACHE_BASEDIR": str(build_dir.parent)}
    _, tool = generator()  # the generator's own tool, so its command line is the one logged
    rc, lines = runner.stream([tool, "-C", str(build_dir), "-j", jobs], env=env, on_line=log, on_command=log)
    if rc != 0:
        raise link_overflow(lines, request.board.name) or FwtoolError(
            f"compile failed: {first_error(lines)}", f"full log: {build_dir.parent}/build.log")
    elf = build_dir / "firmware.elf"
    if not elf.is_file():
        raise FwtoolError("the build finished but produced no firmware.elf", f"inspect {build_dir}")
    return elf


def progress(line: str) -> tuple[int, int] | None:
    """(done, total) from a Ninja ``[12/340]`` or make ``[ 42%]`` line."""
    m = _PROGRESS.match(line)
    if not m:
        return None
    if m.group(3):
        return int(m.group(3)), 100
    return int(m.group(1)), int(m.group(2))


def first_error(lines: list[str]) -> str:
    """The first compiler/linker error line of a build's output (CMake's with the lines that explain it)."""
    for i, ln in enumerate(lines):
        if "error:" in ln or "undefined reference" in ln:
            return ln.strip()[:240]
        if "CMake Error" in ln:  # the reason is on the following lines
            detail = " ".join(x.strip() for x in lines[i + 1:i + 4] if x.strip())
            return f"{ln.strip()} {detail}"[:240]
    return (lines[-1].strip() if lines else "no output")[:240]

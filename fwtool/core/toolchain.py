"""Host tools fwtool drives: find them, read their versions, and say how to install what is missing."""
from __future__ import annotations

import re
from dataclasses import dataclass

from fwtool.core import runner
from fwtool.core.errors import MissingTool

DEBIAN_ARM = "gcc-arm-none-eabi libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib"


@dataclass(frozen=True)
class Tool:
    name: str
    package: str  # Debian/Ubuntu package
    required_for: str  # "build", "emulator", ...
    min_version: tuple[int, ...] = ()


# What every arm-none-eabi CMake build needs (both families list these, then their own extras).
ARM_BUILD_TOOLS = [
    Tool("arm-none-eabi-gcc", DEBIAN_ARM, "build", (10,)),
    Tool("arm-none-eabi-g++", DEBIAN_ARM, "build", (10,)),
    Tool("arm-none-eabi-objcopy", "binutils-arm-none-eabi", "build"),
    Tool("arm-none-eabi-size", "binutils-arm-none-eabi", "build"),
    Tool("cmake", "cmake", "build", (3, 13)),
]


@dataclass
class ToolStatus:
    tool: Tool
    path: str | None
    version: str | None

    @property
    def ok(self) -> bool:
        if not self.path:
            return False
        if self.tool.min_version and self.version:
            return _vtuple(self.version) >= self.tool.min_version
        return True

    def fix(self) -> str:
        return f"sudo apt-get install {self.tool.package}"

    def to_dict(self) -> dict:
        return {"tool": self.tool.name, "ok": self.ok, "path": self.path, "version": self.version,
                "required_for": self.tool.required_for, "fix": None if self.ok else self.fix()}


def _vtuple(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


def version_of(path: str) -> str | None:
    proc = runner.capture([path, "--version"], check=False, timeout=20)
    m = re.search(r"(\d+\.\d+(?:\.\d+)?)", (proc.stdout or proc.stderr).splitlines()[0] if (proc.stdout or proc.stderr) else "")
    return m.group(1) if m else None


def status(tool: Tool) -> ToolStatus:
    path = runner.which(tool.name)
    return ToolStatus(tool, path, version_of(path) if path else None)


def require_all(tools: list[Tool]) -> dict[str, ToolStatus]:
    """Fail with one line naming every missing tool and the one apt-get command that installs them."""
    found = {t.name: status(t) for t in tools}
    bad = [s for s in found.values() if not s.ok]
    if bad:
        names = ", ".join(s.tool.name + (f" (found {s.version}, need ≥{'.'.join(map(str, s.tool.min_version))})"
                                         if s.path else "") for s in bad)
        pkgs = " ".join(sorted({p for s in bad for p in s.tool.package.split()}))
        raise MissingTool(f"missing build tools: {names}", f"sudo apt-get install {pkgs}  (then 'fwtool doctor')")
    return found

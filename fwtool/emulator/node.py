"""Node.js discovery and the pinned ``rp2040js`` npm package, installed once into fwtool's cache.

Lookup: ``FWTOOL_NODE`` (a node executable) else ``node``/``nodejs`` on PATH, version >= 18 (rp2040js's
``engines``). The package goes to ``<cache>/npm/rp2040js-<version>/node_modules/rp2040js`` with
``npm install --prefix`` (scripts disabled); the lock file's sha512 integrity must equal the pinned one.
``FWTOOL_RP2040JS_MODULE`` may name an existing ``node_modules/rp2040js`` folder instead (used as is).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from fwtool.core import runner
from fwtool.core.errors import FwtoolError, MissingTool
from fwtool.core import locks
from fwtool.core.paths import cache_dir

NODE_MIN = (18, 0)
RP2040JS_VERSION = "1.4.1"
RP2040JS_INTEGRITY = ("sha512-Yzr5xG7ZwbtA50IYAU1k/oSoSyDAhPtT5qC/Q2eFApoLuAYE8DQbPIMPs/0kh4Ietd4P0OpKk3CIkfNqjcr56g==")
NODE_FIX = "sudo apt-get install nodejs npm (Debian 12+/Ubuntu 24.04+ ship Node >= 18), or set FWTOOL_NODE"
MARKER = ".fwtool-npm"


@dataclass(frozen=True)
class Node:
    path: str
    version: tuple[int, ...]

    @property
    def version_str(self) -> str:
        return ".".join(map(str, self.version))


def parse_node_version(text: str) -> tuple[int, ...] | None:
    m = re.search(r"v?(\d+)\.(\d+)\.(\d+)", text)
    return tuple(int(x) for x in m.groups()) if m else None


def find_node() -> Node:
    exe = os.environ.get("FWTOOL_NODE") or runner.which("node") or runner.which("nodejs")
    if not exe:
        raise MissingTool("Node.js was not found: the virtual board runs rp2040js on Node >= 18", NODE_FIX)
    proc = runner.capture([exe, "--version"], timeout=30, check=False)
    version = parse_node_version(proc.stdout or "")
    if proc.returncode != 0 or version is None:
        raise MissingTool(f"'{exe} --version' did not report a Node.js version", NODE_FIX)
    if version[:2] < NODE_MIN:
        raise MissingTool(f"Node.js {'.'.join(map(str, version))} is too old: rp2040js needs {NODE_MIN[0]} or newer",
                          NODE_FIX)
    return Node(exe, version)


@dataclass(frozen=True)
class Rp2040js:
    package_dir: Path  # .../node_modules/rp2040js
    version: str
    source: str  # "cache" or "env"

    @property
    def entry(self) -> Path:
        return self.package_dir / "dist" / "esm" / "index.js"

    def to_dict(self) -> dict:
        return {"path": str(self.package_dir), "version": self.version, "source": self.source}


def install_dir(version: str = RP2040JS_VERSION) -> Path:
    return cache_dir() / "npm" / f"rp2040js-{version}"


def _package_version(package_dir: Path) -> str | None:
    try:
        return json.loads((package_dir / "package.json").read_text()).get("version")
    except (OSError, ValueError):
        return None


def _stamp(version: str, integrity: str) -> str:
    return f"{version}\n{integrity}"


def installed(version: str = RP2040JS_VERSION, integrity: str = RP2040JS_INTEGRITY) -> Rp2040js | None:
    env = os.environ.get("FWTOOL_RP2040JS_MODULE")
    if env:
        p = Path(env).expanduser()
        if not (p / "dist" / "esm" / "index.js").is_file():
            raise MissingTool(f"FWTOOL_RP2040JS_MODULE={env} is not an rp2040js package folder (no dist/esm/index.js)",
                              "point it at node_modules/rp2040js of an npm install, or unset it")
        return Rp2040js(p, _package_version(p) or "?", "env")
    prefix = install_dir(version)
    pkg = prefix / "node_modules" / "rp2040js"
    marker = prefix / MARKER
    if marker.is_file() and marker.read_text().strip() == _stamp(version, integrity) and (pkg / "dist/esm/index.js").is_file():
        return Rp2040js(pkg, version, "cache")
    return None


def ensure_rp2040js(version: str = RP2040JS_VERSION, integrity: str = RP2040JS_INTEGRITY,
                    on_line=None) -> Rp2040js:
    """The pinned rp2040js package, installed into the cache on first use (about 1 s with network access)."""
    have = installed(version, integrity)
    if have:
        return have
    npm = runner.which("npm")
    if not npm:
        raise MissingTool("npm was not found: it installs the rp2040js emulator package once", NODE_FIX)
    prefix = install_dir(version)
    # one installer at a time (core/locks.py): a second process waits, then finds the package installed
    with locks.hold(locks.sibling_lock(prefix), f"the rp2040js@{version} install in the cache"):
        return installed(version, integrity) or _install(npm, prefix, version, integrity, on_line)


def _install(npm: str, prefix: Path, version: str, integrity: str, on_line) -> Rp2040js:
    work = prefix.with_name(f"{prefix.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        if on_line:
            on_line(f"installing rp2040js@{version} into {prefix} (once)")
        proc = runner.capture([npm, "install", "--prefix", str(work), "--no-audit", "--no-fund", "--ignore-scripts",
                               "--loglevel=error", f"rp2040js@{version}"], timeout=600, check=False)
        if proc.returncode != 0:
            tail = next((ln for ln in reversed((proc.stderr or proc.stdout).splitlines())
                         if ln.strip() and "Unknown user config" not in ln), "no output")
            raise MissingTool(f"npm could not install rp2040js@{version}: {tail.strip()[:200]}",
                              "check network access to the npm registry ('npm config get registry'), or set "
                              "FWTOOL_RP2040JS_MODULE to an existing node_modules/rp2040js")
        lock = json.loads((work / "package-lock.json").read_text())
        got = lock.get("packages", {}).get("node_modules/rp2040js", {}).get("integrity")
        if got != integrity:
            raise FwtoolError(f"the installed rp2040js@{version} has integrity {got}, not the pinned {integrity}",
                              "the registry served a different tarball; check 'npm config get registry'")
        pkg = work / "node_modules" / "rp2040js"
        if _package_version(pkg) != version or not (pkg / "dist/esm/index.js").is_file():
            raise FwtoolError(f"npm installed something other than rp2040js {version} into {work}",
                              "delete that folder and retry")
        (work / MARKER).write_text(_stamp(version, integrity) + "\n")
        shutil.rmtree(prefix, ignore_errors=True)
        os.replace(work, prefix)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return installed(version, integrity)  # type: ignore[return-value]

"""The pinned upstream trees (vendor/manifest.toml): where they are, and ``sync`` to fetch them into the cache.

Lookup order for each entry: its environment variable (e.g. PICO_SDK_PATH), then ``path`` in the config file,
then the cache (``<cache>/vendor/<name>-<rev12>``, complete only when its marker file names the pinned commit).

Trees on first use: :func:`require` fetches a pinned tree that is not in the cache (with progress, commit verified,
exactly as ``fwtool vendor sync`` does) unless fwtool is offline (``fwtool --offline``, ``FWTOOL_OFFLINE=1`` or
``offline = true`` in the config file); offline, the error names the exact command that fetches the tree.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from fwtool.core import config, locks, runner, ui
from fwtool.core.errors import FwtoolError, MissingTool
from fwtool.core.paths import cache_dir, resource_dir
from fwtool.core.tomlcompat import tomllib

MARKER = ".fwtool-vendor"
state = {"offline": False}  # set by 'fwtool --offline'


class TreeUnavailable(MissingTool):
    """A pinned tree is not here and could not be fetched now (offline, or the fetch failed): exit 4.
    tests/conftest.py turns this into a skip with its cause, so no test fails because a tree is absent."""


def set_offline(enabled: bool) -> None:
    state["offline"] = bool(enabled)


def offline() -> bool:
    """True when trees must not be fetched on first use: --offline, FWTOOL_OFFLINE=1, or offline = true."""
    if state["offline"] or os.environ.get("FWTOOL_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return True
    return bool(config.load().get("offline", False))


def sync_command(dep: Dep) -> str:
    """The exact command that fetches ``dep`` (its name: plain 'fwtool vendor sync' fetches only build trees)."""
    return f"fwtool vendor sync {dep.name}"


@dataclass(frozen=True)
class Dep:
    name: str
    url: str
    rev: str
    version: str
    env: str
    families: tuple[str, ...]
    needed: str
    exclude: tuple[str, ...]
    license: str = ""

    @property
    def stamp(self) -> str:
        """What the cache marker records: the commit and the paths left out (a change means re-sync)."""
        return "\n".join([self.rev, *self.exclude])

    @property
    def cache_path(self) -> Path:
        return cache_dir() / "vendor" / f"{self.name}-{self.rev[:12]}"


@dataclass
class Located:
    dep: Dep
    path: Path | None
    source: str  # "env", "config", "cache", "missing"
    rev: str | None = None  # HEAD of the tree if it is a git checkout

    @property
    def pinned(self) -> bool:
        return self.rev is not None and self.rev == self.dep.rev

    def to_dict(self) -> dict:
        return {"name": self.dep.name, "path": str(self.path) if self.path else None, "source": self.source,
                "rev": self.rev, "pinned_rev": self.dep.rev, "version": self.dep.version, "pinned": self.pinned,
                "license": self.dep.license or None}


def manifest() -> dict[str, Dep]:
    d = tomllib.loads((resource_dir("vendor") / "manifest.toml").read_text())
    return {name: Dep(name, e["url"], e["rev"], str(e.get("version", e["rev"][:7])), e["env"],
                      tuple(e.get("families", [])), e.get("needed", "build"), tuple(e.get("exclude", [])),
                      str(e.get("license", "")))
            for name, e in d.items()}


def deps_for(family: str, needed: str = "build") -> list[Dep]:
    return [d for d in manifest().values() if family in d.families and d.needed == needed]


def _git_head(path: Path) -> str | None:
    if not (path / ".git").exists():
        return None
    proc = runner.capture(["git", "-C", str(path), "rev-parse", "HEAD"], check=False, timeout=20)
    return proc.stdout.strip() or None if proc.returncode == 0 else None


def locate(dep: Dep) -> Located:
    env = os.environ.get(dep.env)
    if env:
        p = config.expand_path(env, dep.env)
        return Located(dep, p if p.is_dir() else None, "env" if p.is_dir() else "missing", _git_head(p))
    cfg = config.vendor_override(dep.name).get("path")
    if cfg:
        p = config.expand_path(cfg, f"vendor.{dep.name}.path in the config file")
        return Located(dep, p if p.is_dir() else None, "config" if p.is_dir() else "missing", _git_head(p))
    p = dep.cache_path
    marker = p / MARKER
    if marker.is_file() and marker.read_text().strip() == dep.stamp:
        return Located(dep, p, "cache", dep.rev)
    return Located(dep, None, "missing")


def require(dep: Dep) -> Path:
    """The tree's folder; a pinned tree not in the cache is fetched now (first use) unless fwtool is offline."""
    loc = locate(dep)
    if loc.path is not None:
        return loc.path
    where = os.environ.get(dep.env) or config.vendor_override(dep.name).get("path")
    if where:
        raise MissingTool(f"{dep.name} not found at {where} (from {dep.env} or the config file)",
                          f"point {dep.env} at a {dep.name} checkout, or unset it and run '{sync_command(dep)}'")
    if offline():
        raise TreeUnavailable(f"{dep.name} {dep.version} is not in the cache and fwtool is offline",
                              f"run '{sync_command(dep)}' once online (or set {dep.env} to an existing checkout)")
    ui.info(f"{dep.name} {dep.version}: not in the cache yet; fetching it now (first use; --offline turns this off)")
    try:
        return sync_with_progress(dep)
    except FwtoolError as e:
        raise TreeUnavailable(f"{dep.name} {dep.version} is not in the cache and fetching it failed: {e.cause}",
                              f"check the network (or the [vendor.{dep.name}] url in the config file), then run "
                              f"'{sync_command(dep)}'; or set {dep.env} to an existing checkout") from e


def sync_with_progress(dep: Dep, force: bool = False) -> Path:
    """:func:`sync` with git's progress on one status line and a closing 'commit verified' line (stderr)."""
    with ui.err.status(f"{dep.name} {dep.version}: fetching {dep.rev[:12]}…") as st:
        def on_line(line: str) -> None:
            line = line.strip().split("\r")[-1]
            if line:
                st.update(f"{dep.name} {dep.version}: {line[:90]}")
        path = sync(dep, on_line=on_line, force=force)
    ui.info(f"{dep.name} {dep.version}: {path} (commit {dep.rev[:12]} verified)")
    return path


def _git(args: list[str], cwd: Path, on_line=None) -> None:
    try:
        rc, lines = runner.stream(["git", "-c", "advice.detachedHead=false", *args], cwd=cwd, on_line=on_line)
    except OSError as e:  # the partial checkout vanished under git (removed by hand, a full disk)
        raise FwtoolError(f"git {args[0]} could not run in {cwd.name}: {e.strerror}",
                          "the partial checkout was damaged; run the same command again (it starts it afresh)") from e
    if rc != 0:
        tail = next((ln for ln in reversed(lines) if ln.strip()), "")
        if args[0] in ("fetch",) or "unable to access" in tail or "Could not read from remote" in tail:
            fix = "check the network or the mirror URL, then run the same command again"
        else:  # init/remote/config/sparse-checkout/checkout fail locally: the partial tree, not the network
            fix = ("the partial checkout was damaged (removed or changed while git worked, or the disk is full); "
                   "run the same command again: it starts from a fresh partial checkout")
        raise FwtoolError(f"git {args[0]} failed in {cwd.name}: {tail.strip()}", fix)


def _current(dep: Dep) -> bool:
    marker = dep.cache_path / MARKER
    try:
        return marker.is_file() and marker.read_text().strip() == dep.stamp
    except OSError:
        return False


def sync(dep: Dep, on_line: Callable[[str], None] | None = None, force: bool = False) -> Path:
    """Fetch exactly ``dep.rev`` into the cache. Interrupt-safe: work happens in ``<dir>.partial``, then a rename.
    One process per tree (core/locks.py): a second sync of it waits, then finds it done (even with ``force``,
    when the first one fetched it while it waited)."""
    runner.require("git", "install git (Debian: apt-get install git)")
    final = dep.cache_path
    if not force and _current(dep):
        return final
    waited = []
    with locks.hold(locks.sibling_lock(final), f"the {dep.name} tree in the cache",
                    on_event=lambda e: waited.append(e) if e == "waiting" else None):
        if _current(dep) and (not force or waited):  # the process we waited for fetched and verified it
            return final
        return _sync_locked(dep, final, on_line)


def _sync_locked(dep: Dep, final: Path, on_line) -> Path:
    url = config.vendor_override(dep.name).get("url", dep.url)
    work = final.with_name(final.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        _git(["init", "-q"], work)
        if "://" not in url and config.expand_path(url, f"vendor.{dep.name}.url").exists():  # a mirror on disk
            url = Path(url).expanduser().resolve().as_uri()
        _git(["remote", "add", "origin", url], work)
        if url.startswith("file://"):
            # A local mirror serves with its own config; GitHub already allows fetching a commit with a filter.
            _git(["config", "remote.origin.uploadpack",
                  "git -c uploadpack.allowFilter=true -c uploadpack.allowAnySHA1InWant=true upload-pack"], work)
        # Partial clone: commit and trees now, blobs only for the paths checked out.
        _git(["fetch", "--depth", "1", "--filter=blob:none", "--progress", "origin", dep.rev], work, on_line)
        _git(["sparse-checkout", "set", "--no-cone", "/*", *[f"!/{p}" for p in dep.exclude]], work)
        _git(["checkout", "-q", "--detach", "FETCH_HEAD"], work, on_line)
        head = _git_head(work)
        if head != dep.rev:
            raise FwtoolError(f"{dep.name}: fetched commit {head} is not the pinned {dep.rev}",
                              "the URL serves different history; check the mirror")
        (work / MARKER).write_text(dep.stamp + "\n")
        # the verified tree replaces the old one by two renames (a forced re-sync removed the old tree first, so a
        # signal in between left no tree at all); what is left of an interrupted swap is removed by the next sync
        old = final.with_name(final.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if final.exists():
            final.rename(old)
        work.rename(final)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return final

"""Example models fwtool obtains itself (``--model example:NAME``, ``fwtool examples``): files in pinned trees.

The catalog is fwtool/data/examples.toml. A model shipped as a C array header (the Pico tutorial's
``tflite_model.h``) is decoded once into the cache; every use checks the model's sha256 against the catalog.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from fwtool.core import vendor
from fwtool.core.errors import BadInput, MissingTool
from fwtool.core.escape import terminal
from fwtool.core.files import atomic_write
from fwtool.core.paths import cache_dir, data_file
from fwtool.core.tomlcompat import tomllib
from fwtool.model import carray

PREFIX = "example:"


@dataclass(frozen=True)
class Example:
    name: str
    tree: str
    path: str
    sha256: str
    summary: str
    app: str

    def dep(self) -> vendor.Dep:
        return vendor.manifest()[self.tree]

    def to_dict(self) -> dict:
        dep = self.dep()
        loc = vendor.locate(dep)
        return {"name": self.name, "model": f"{PREFIX}{self.name}", "summary": self.summary, "app": self.app,
                "source": {"tree": dep.name, "url": dep.url, "rev": dep.rev, "version": dep.version,
                           "path": self.path},
                "license": dep.license or None, "sha256": self.sha256,
                "available": loc.path is not None}


def catalog() -> dict[str, Example]:
    d = tomllib.loads(data_file("examples.toml").read_text())
    return {name: Example(name, e["tree"], e["path"], e["sha256"], e["summary"], e.get("app", "inference"))
            for name, e in d.items()}


def is_example(value: str) -> bool:
    return str(value).startswith(PREFIX)


def get(name: str) -> Example:
    known = catalog()
    if name not in known:
        raise BadInput(f"unknown example model '{terminal(name)}'; known: {', '.join(known)}",
                       "run 'fwtool examples' to list them (use e.g. --model example:fire_alarm)")
    return known[name]


def model_path(name: str) -> Path:
    """The example's .tflite on disk (its tree fetched on first use), its sha256 checked."""
    ex = get(name)
    dep = ex.dep()
    root = vendor.require(dep)
    src = root / ex.path
    if not src.is_file():
        raise MissingTool(f"example {name}: {dep.name} at {root} has no {ex.path}",
                          f"run 'fwtool vendor sync {dep.name} --force' for the pinned {dep.version}"
                          + (f", or unset {dep.env}" if dep.env else ""))
    if carray.is_header(src):
        out = cache_dir() / "examples" / f"{name}-{ex.sha256[:12]}" / f"{name}.tflite"
        if out.is_file() and hashlib.sha256(out.read_bytes()).hexdigest() == ex.sha256:
            return out
        data = carray.read_header(src).data
        _check(ex, dep, data)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(out, data)
        return out
    _check(ex, dep, src.read_bytes())
    return src


def _check(ex: Example, dep: vendor.Dep, data: bytes) -> None:
    got = hashlib.sha256(data).hexdigest()
    if got != ex.sha256:
        raise MissingTool(f"example {ex.name}: {ex.path} in {dep.name} is not the pinned model (sha256 {got[:12]}, "
                          f"expected {ex.sha256[:12]})",
                          f"use the pinned {dep.name} {dep.version} ('fwtool vendor sync {dep.name} --force', and "
                          f"unset {dep.env} if it points elsewhere)")

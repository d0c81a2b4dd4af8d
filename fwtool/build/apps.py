"""Firmware apps: ``templates/<family>/apps/<name>/`` holds the app's templates (main.cpp.j2, …) and ``app.toml``.

Files directly in ``templates/<family>/`` are shared by every app (CMake project, model array, op resolver,
config header). An app may declare the input layout it feeds the model (``[input] shape, dtype``); a model
whose input 0 differs is refused before anything is generated.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fwtool.core.errors import BadInput
from fwtool.model.tflite import Model
from fwtool.core.paths import resource_dir
from fwtool.core.tomlcompat import tomllib


@dataclass(frozen=True)
class App:
    name: str
    family_dir: str
    path: Path
    description: str
    input_shape: tuple[int, ...] | None
    input_dtype: str | None

    def check_model(self, model: Model) -> None:
        t = model.inputs[0]
        if self.input_shape is not None and tuple(t.shape) != self.input_shape:
            want = "x".join(map(str, self.input_shape))
            raise BadInput(f"model input '{t.name}' is {t.shape_str} but app '{self.name}' feeds {want}",
                           f"re-train/convert the model for a {want} input, or use another --app")
        if self.input_dtype is not None and t.dtype.lower() != self.input_dtype.lower():
            raise BadInput(f"model input '{t.name}' is {t.dtype.lower()} but app '{self.name}' feeds "
                           f"{self.input_dtype}", "convert with that input type (fwtool quantize does int8)")


def list_apps(family_dir: str) -> dict[str, App]:
    root = resource_dir("templates") / family_dir / "apps"
    apps = {}
    for meta in sorted(root.glob("*/app.toml")):
        d = tomllib.loads(meta.read_text())
        inp = d.get("input", {})
        apps[meta.parent.name] = App(meta.parent.name, family_dir, meta.parent, d.get("description", ""),
                                     tuple(inp["shape"]) if "shape" in inp else None, inp.get("dtype"))
    return apps


def get_app(family_dir: str, name: str) -> App:
    apps = list_apps(family_dir)
    if name not in apps:
        raise BadInput(f"unknown app '{name}' for this board; available: {', '.join(apps)}",
                       "pick one of those with --app")
    return apps[name]

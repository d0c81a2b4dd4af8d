"""Firmware apps, independent of the board family: ``templates/apps/<name>/`` holds the app's templates
(main.cpp.j2, …) and ``app.toml``.

A build renders three layers into one project (fwtool/firmware/render.py): ``templates/common/`` (model data, op
resolver, FWT: lines, interpreter set-up and the inference/validation loops, written against ``fwt_platform.h``),
then the family's folder (its platform layer and build template), then the app's folder; a later layer's file
overrides an earlier one of the same name. ``app.toml`` declares:

- ``description``
- ``sources``: the files the app adds to the project (rendered names, e.g. ``["main.cpp"]``); every family's build
  template compiles them (``app_sources`` in the template context)
- ``vendor``: extra vendor trees it needs beyond the family's (names in vendor/manifest.toml)
- ``needs``: board features; a board has feature X when its board file has a top-level ``[X]`` table
- ``defines``: preprocessor definitions for the whole firmware (``NAME=VALUE``; every family's build template
  applies them, ``app_defines`` in the template context), e.g. the recorder's binary-safe stdio
- ``[input] shape, dtype``: the input layout the app feeds the model; a model whose input 0 differs is refused
  before anything is generated.
- ``tflm_profiler``: true when the app attaches a TFLM profiler (MicroProfilerInterface): TFLM then keeps its
  per-operator profiler hook, which a family's release define TF_LITE_STRIP_ERROR_STRINGS compiles out
  (firmware/context.py drops that define for such an app).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from fwtool.core.boards import Board, all_boards
from fwtool.core.errors import BadInput
from fwtool.core.paths import resource_dir
from fwtool.core.tomlcompat import tomllib
from fwtool.model.tflite import Model

APPS_DIR = "apps"  # under templates/
COMMON_DIR = "common"  # under templates/
SOURCE_SUFFIXES = (".c", ".cpp", ".cc", ".S")


@dataclass(frozen=True)
class App:
    name: str
    path: Path
    description: str
    input_shape: tuple[int, ...] | None
    input_dtype: str | None
    sources: tuple[str, ...] = ()
    vendor: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    defines: tuple[str, ...] = ()
    tflm_profiler: bool = False

    def check_model(self, model: Model) -> None:
        t = model.inputs[0]
        if self.input_shape is not None and tuple(t.shape) != self.input_shape:
            want = "x".join(map(str, self.input_shape))
            raise BadInput(f"model input '{t.name}' is {t.shape_str} but app '{self.name}' feeds {want}",
                           f"re-train/convert the model for a {want} input, or use another --app")
        if self.input_dtype is not None and t.dtype.lower() != self.input_dtype.lower():
            raise BadInput(f"model input '{t.name}' is {t.dtype.lower()} but app '{self.name}' feeds "
                           f"{self.input_dtype}", "convert with that input type (fwtool quantize does int8)")

    def check_board(self, board: Board, provided: frozenset[str] = frozenset()) -> None:
        """Refuse a board that lacks a feature the app ``needs`` (naming the boards that have it). ``provided``:
        what every board of its family has without a board table (Family.features: linux's audio on stdin)."""
        for feature in self.needs:
            if feature not in provided and not has_feature(board, feature):
                have = [b.name for b in all_boards().values() if has_feature(b, feature)]
                raise BadInput(f"app '{self.name}' needs a {feature} but board '{board.name}' has none "
                               f"(no [{feature}] table in its board file)",
                               f"use a board that has one ({', '.join(have)})" if have else
                               f"add a [{feature}] table to the board file, or use another --app")


def has_feature(board: Board, feature: str) -> bool:
    """A board has ``feature`` when its board file has a top-level ``[feature]`` table (e.g. ``pdm_mic``)."""
    return feature in board.features


def _str_list(d: dict, key: str, meta: Path) -> tuple[str, ...]:
    value = d.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadInput(f"{meta}: '{key}' must be a list of strings", f"write e.g. {key} = [\"name\"]")
    return tuple(value)


def _defines(d: dict, meta: Path) -> tuple[str, ...]:
    defines = _str_list(d, "defines", meta)
    for item in defines:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(=[A-Za-z0-9_.+\-]*)?", item):
            raise BadInput(f"{meta}: define '{item}' is not NAME or NAME=VALUE (letters, digits, _ . + -)",
                           "write e.g. defines = [\"PICO_STDIO_ENABLE_CRLF_SUPPORT=0\"]")
    return defines


def load_app(meta: Path) -> App:
    """The app described by ``meta`` (an ``app.toml``; the folder name is the app's name)."""
    d = tomllib.loads(meta.read_text())
    inp = d.get("input", {})
    return App(meta.parent.name, meta.parent, d.get("description", ""),
               tuple(inp["shape"]) if "shape" in inp else None, inp.get("dtype"),
               sources=_str_list(d, "sources", meta),
               vendor=_str_list(d, "vendor", meta), needs=_str_list(d, "needs", meta),
               defines=_defines(d, meta), tflm_profiler=_flag(d, "tflm_profiler", meta))


def _flag(d: dict, key: str, meta: Path) -> bool:
    value = d.get(key, False)
    if not isinstance(value, bool):
        raise BadInput(f"{meta}: '{key}' must be true or false", f"write e.g. {key} = true")
    return value


def list_apps() -> dict[str, App]:
    root = resource_dir("templates") / APPS_DIR
    return {meta.parent.name: load_app(meta) for meta in sorted(root.glob("*/app.toml"))}


def get_app(name: str) -> App:
    apps = list_apps()
    if name not in apps:
        raise BadInput(f"unknown app '{name}' for this board; available: {', '.join(apps)}",
                       "pick one of those with --app")
    return apps[name]


def common_sources() -> list[str]:
    """The sources every firmware compiles: the rendered names of ``templates/common/`` C/C++ files."""
    root = resource_dir("templates") / COMMON_DIR
    names = (p.name[:-3] if p.name.endswith(".j2") else p.name for p in root.iterdir() if p.is_file())
    return sorted(n for n in names if n.endswith(SOURCE_SUFFIXES))


def template_values(app: App) -> dict:
    """What the templates need to know about ``app`` (merged into the build's template context)."""
    common = common_sources()
    return {"app_name": app.name, "common_sources": common,
            "app_sources": [s for s in app.sources if s not in common], "app_defines": list(app.defines)}

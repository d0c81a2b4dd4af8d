"""A second model embedded next to the app's model: an audio app's front end that is itself a .tflite model.

The kws app runs TFLM's micro_speech audio preprocessor (``audio_preprocessor_int8.tflite``: int16 [1, 480] ->
int8 [40], signal-library custom ops, stateful) on the device in its own interpreter and arena, alive from boot.
An app declares it in its ``app.toml``::

    [preprocessor]
    vendor = "tflite-micro"        # the pinned tree the default comes from (vendor/manifest.toml)
    path = "tensorflow/lite/micro/examples/micro_speech/models/audio_preprocessor_int8.tflite"
    input = { shape = [1, 480], dtype = "int16" }   # what the app feeds it (one window of samples)
    output = { elements = 40, dtype = "int8" }      # what the app takes from it (one feature row)
    labels = ["silence", "unknown", "yes", "no"]    # the classifier's labels when no --labels is given

A user's own preprocessor (``fwtool build --preprocessor FILE``) replaces the default; it is checked like the main
model (TFLM ops, integer tensors) and against the app's contract. Its arena is measured like the main model's.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fwtool.firmware.apps import App
from fwtool.core import escape, vendor
from fwtool.core.errors import BadInput, MissingTool
from fwtool.core.tomlcompat import tomllib
from fwtool.model import arena as arena_mod
from fwtool.model.tflite import Model, check_for_tflm, load_model, resolver_calls


@dataclass(frozen=True)
class PreprocessorPlan:
    model: Model
    ops: list[dict] = field(repr=False)  # resolver_calls(model)
    arena: arena_mod.ArenaSize
    origin: str  # "tflite-micro 90b983c" or "--preprocessor"
    labels: tuple[str, ...] = ()  # the app's default classifier labels

    @property
    def kernel_files(self) -> list[str]:
        return sorted({op["kernel"] for op in self.ops})

    def to_dict(self) -> dict:
        return {"name": self.model.name, "path": str(self.model.path), "sha256": self.model.sha256,
                "bytes": self.model.size, "origin": self.origin, "ops": [o["op"] for o in self.ops],
                "arena": self.arena.to_dict()}


def app_table(app: App) -> dict | None:
    """The app's ``[preprocessor]`` table (None: the app runs no preprocessor model)."""
    meta = app.path / "app.toml"
    if not meta.is_file():
        return None
    table = tomllib.loads(meta.read_text()).get("preprocessor")
    return table if isinstance(table, dict) else None


def default_path(app: App, table: dict) -> tuple[Path, str]:
    """The app's default preprocessor file in its pinned vendor tree; MissingTool naming the sync command."""
    name = table.get("vendor", "")
    dep = vendor.manifest().get(name)
    if dep is None:
        raise BadInput(f"app '{app.name}' takes its preprocessor from vendor tree '{name}', which "
                       "vendor/manifest.toml does not pin", f"fix [preprocessor] in {app.path.name}/app.toml")
    rel = table.get("path", "")
    try:
        root = vendor.require(dep)  # fetched on first use unless offline
    except vendor.TreeUnavailable as e:
        raise vendor.TreeUnavailable(f"app '{app.name}' embeds {Path(rel).name} from {name}: {e.cause}",
                                     f"{e.fix} (or pass your own with --preprocessor FILE)") from e
    path = root / rel
    if not path.is_file():
        raise MissingTool(f"{name} at {root} has no {rel}",
                          f"run 'fwtool vendor sync {name}' for the pinned {dep.version} (or --preprocessor FILE)")
    return path, f"{name} {dep.version}"


def _io_desc(t) -> str:
    return f"{t.dtype.lower()}[{', '.join(map(str, t.shape))}]"


def check_contract(model: Model, table: dict, app: App) -> None:
    """Refuse a preprocessor whose input or output is not what the app feeds and reads."""
    want_in, want_out = table.get("input", {}), table.get("output", {})
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise BadInput(f"preprocessor {model.path.name} has {len(model.inputs)} inputs and {len(model.outputs)} "
                       f"outputs; app '{app.name}' feeds one and reads one",
                       "export the front end as one input (a window of samples) -> one output (a feature row)")
    t_in, t_out = model.inputs[0], model.outputs[0]
    in_ok = (list(t_in.shape) == list(want_in.get("shape", t_in.shape))
             and t_in.dtype.lower() == want_in.get("dtype", t_in.dtype.lower()))
    out_ok = (t_out.elements == want_out.get("elements", t_out.elements)
              and t_out.dtype.lower() == want_out.get("dtype", t_out.dtype.lower()))
    if not (in_ok and out_ok):
        need_in = f"{want_in.get('dtype', '?')}[{', '.join(map(str, want_in.get('shape', [])))}]"
        need_out = f"{want_out.get('dtype', '?')}[{want_out.get('elements', '?')}]"
        raise BadInput(f"preprocessor {model.path.name} maps {_io_desc(t_in)} -> {_io_desc(t_out)}; app "
                       f"'{app.name}' feeds it {need_in} and reads {need_out}",
                       f"use a preprocessor with that signature (the default: {Path(table.get('path', '')).name})")


def plan_preprocessor(app: App, path: Path | None, arena: int | None = None) -> PreprocessorPlan | None:
    """The preprocessor app ``app`` embeds (``path``: the user's --preprocessor), checked and with its arena
    measured; None for an app without one. Raises before anything is written."""
    table = app_table(app)
    if table is None:
        if path is not None:
            raise BadInput(f"app '{app.name}' runs no preprocessor model, so --preprocessor {Path(path).name} has "
                           "nothing to do", "drop --preprocessor, or use --app kws")
        return None
    if path is not None:
        model_path, origin = Path(path), "--preprocessor"
    else:
        model_path, origin = default_path(app, table)
    model = load_model(model_path)
    check_for_tflm(model)
    check_contract(model, table, app)
    labels = tuple(str(x) for x in table.get("labels", []))
    return PreprocessorPlan(model, resolver_calls(model), arena_mod.size_for(model, arena), origin, labels)


def labels_for(pre: PreprocessorPlan | None, given: Path | None, labels: list[str]) -> list[str]:
    """The app's default labels when the user gave none and the count matches the model's outputs."""
    if pre is None or given is not None or len(pre.labels) != len(labels):
        return labels
    return list(pre.labels)


def template_values(pre: PreprocessorPlan | None) -> dict:
    """``pre``: the preprocessor's bytes, ops, arena and tensor contract for the app's templates (None: no
    preprocessor)."""
    if pre is None:  # every key, so that templates need no conditionals; an app with a [preprocessor] has one
        return {"pre": {"file": "(none)", "sha": "", "sha_short": "", "bytes": 0, "hex": escape.c_array_lines(b""),
                        "origin": "(none)", "ops": [], "op_count": 0, "arena_bytes": 0, "arena_measured": 0,
                        "input_elements": 0, "output_elements": 0}}
    m = pre.model
    return {"pre": {
        "file": escape.c_comment(m.path.name), "sha": m.sha256, "sha_short": m.sha256[:12], "bytes": m.size,
        "hex": escape.c_array_lines(m.data), "origin": escape.c_comment(pre.origin), "ops": pre.ops, "op_count": len(pre.ops), "arena_bytes": pre.arena.total,
        "arena_measured": pre.arena.measured, "input_elements": m.inputs[0].elements,
        "output_elements": m.outputs[0].elements,
    }}

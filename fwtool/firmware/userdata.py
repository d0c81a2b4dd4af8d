"""The user's data a build embeds: the ``--labels`` file and the ``--input`` arrays (one per model input), checked and converted without
changing a value silently (out-of-range, non-finite or complex values are refused with the count and first index;
labels keep their text, and any change the FWT: line format forces is reported as a note)."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from fwtool.core import userfile
from fwtool.core.errors import BadInput
from fwtool.core.escape import terminal
from fwtool.model.tflite import Model

MAX_LABELS_FILE = 1024 * 1024
MAX_LABEL_BYTES = 256  # one label, UTF-8
MAX_LABELS_CSV = 32 * 1024  # all labels in the FWT:BOOT line (the host splits lines at 64 KiB)
DEFAULT_LABELS = 1024  # default names for at most this many outputs; later ones print '?'
MAX_INPUT_FILE = 64 * 1024 * 1024
# Labels travel in the space-separated FWT: lines, comma-separated: these characters cannot be kept.
_PROTOCOL_UNSAFE = re.compile(r"[\s,\x00-\x1f\x7f-\x9f]")


def _show(label: str) -> str:
    return terminal(label if len(label) <= 40 else label[:40] + "...")


def read_labels(path: Path | None, count: int, notes: list[str] | None = None) -> list[str]:
    """One label per output value from ``path`` (UTF-8 text, one per line), else ``class_<i>`` names."""
    if path is None:
        shown = min(count, DEFAULT_LABELS)
        if count > shown and notes is not None:
            notes.append(f"the model has {count:,} output values; default labels name the first {shown:,} "
                         "(the firmware prints '?' for the others); pass --labels to name them")
        return [f"class_{i}" for i in range(shown)]
    fix = "pass a UTF-8 text file with one label per line"
    raw = userfile.read_bytes(path, "labels file", MAX_LABELS_FILE, fix)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadInput(f"labels file {terminal(path.name)} is not UTF-8 text (byte {e.start})", fix) from e
    labels, changed = [], []
    for line in text.splitlines():
        label = line.strip()
        if not label:
            continue
        safe = _PROTOCOL_UNSAFE.sub("_", label)
        if safe != label:
            changed.append((len(labels), label, safe))
        if len(safe.encode()) > MAX_LABEL_BYTES:
            raise BadInput(f"label {len(labels)} in {terminal(path.name)} is {len(safe.encode()):,} bytes "
                           f"(at most {MAX_LABEL_BYTES} per label)", "shorten that label")
        labels.append(safe)
    if len(labels) != count:
        raise BadInput(f"{terminal(path.name)} has {len(labels)} labels but the model outputs {count:,} values",
                       "give exactly one label per output value, one per line")
    csv = sum(len(lb.encode()) + 1 for lb in labels)
    if csv > MAX_LABELS_CSV:
        raise BadInput(f"the labels in {terminal(path.name)} take {csv:,} bytes (at most {MAX_LABELS_CSV:,})",
                       "use shorter labels")
    if changed and notes is not None:
        i, before, after = changed[0]
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        notes.append(f"labels: spaces, commas and control characters became '_' (label {i} '{_show(before)}' -> "
                     f"'{_show(after)}'{more}); FWT: lines separate labels with them")
    return labels


def _first(mask: np.ndarray) -> str:
    idx = np.argwhere(mask)[0]
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def _load(path: Path) -> np.ndarray | dict[str, np.ndarray]:
    """A .npy array, or an .npz archive's arrays by key."""
    fix = "save the input with numpy.save('input.npy', x) (a numeric array shaped like the model's input)"
    userfile.check(path, "input file", MAX_INPUT_FILE, fix)
    try:
        arr = np.load(path, allow_pickle=False)
        if isinstance(arr, np.lib.npyio.NpzFile):
            with arr:
                return {k: arr[k] for k in arr.keys()}
    except ValueError as e:
        with open(path, "rb") as f:
            is_npy = f.read(6) == b"\x93NUMPY"
        what = "holds Python objects (pickled)" if is_npy and "pickle" in str(e).lower() else "is not a .npy array"
        raise BadInput(f"input file {terminal(path.name)} {what}", fix) from e
    except Exception as e:
        raise BadInput(f"cannot read {terminal(path.name)} as a .npy array ({type(e).__name__})", fix) from e
    return arr


def _numeric(arr: np.ndarray, shown: str) -> np.ndarray:
    if arr.dtype.kind not in "biuf":
        kind = {"c": "complex", "U": "string", "S": "bytes", "O": "object", "V": "structured", "M": "datetime",
                "m": "timedelta"}.get(arr.dtype.kind, arr.dtype.kind)
        raise BadInput(f"input file {shown} holds a {kind} array ({arr.dtype}); --input takes "
                       "integer or real numbers",
                       "save the input with numpy.save('input.npy', x) (a numeric array shaped like the model's input)")
    return arr


def _io_names(model: Model) -> str:
    return ", ".join(f"{i} '{terminal(t.name)}' {t.shape_str}" for i, t in enumerate(model.inputs))


def input_arrays(paths: "Path | list[Path] | None", model: Model) -> list[tuple[np.ndarray, str]]:
    """One (array, shown name) per model input, in input order, from ``--input`` files: one .npy per input
    (repeated option), or one .npz whose arrays are keyed by input name or index (``0``, ``arr_0``, ...)."""
    if paths is None:
        return []
    paths = [Path(p) for p in (paths if isinstance(paths, (list, tuple)) else [paths])]
    n = len(model.inputs)
    if len(paths) == 1:
        loaded = _load(paths[0])
        if isinstance(loaded, dict):
            return _from_npz(loaded, paths[0], model)
        if n != 1:
            raise BadInput(f"the model has {n} inputs ({_io_names(model)}) but one --input array was given",
                           "give --input once per input, in input order, or one .npz keyed by input name or index")
        return [(_numeric(loaded, terminal(paths[0].name)), terminal(paths[0].name))]
    if len(paths) != n:
        raise BadInput(f"{len(paths)} --input files for a model with {n} input(s) ({_io_names(model)})",
                       "give --input once per input, in input order (or one .npz keyed by input name or index)")
    out = []
    for p in paths:
        loaded = _load(p)
        if isinstance(loaded, dict):
            raise BadInput(f"input file {terminal(p.name)} is an .npz archive; with several --input files each is "
                           "one .npy array", "numpy.save() each input array, or pass the one .npz alone")
        out.append((_numeric(loaded, terminal(p.name)), terminal(p.name)))
    return out


def _from_npz(arrays: dict[str, np.ndarray], path: Path, model: Model) -> list[tuple[np.ndarray, str]]:
    out = []
    for i, t in enumerate(model.inputs):
        keys = [k for k in (t.name, str(i), f"arr_{i}", f"input_{i}") if k in arrays]
        if not keys:
            raise BadInput(f"{terminal(path.name)} is an .npz archive with no array for input {i} "
                           f"'{terminal(t.name)}' (it holds: "
                           f"{terminal(', '.join(arrays)) or 'nothing'})",
                           "key each array by input name or index: numpy.savez(f, **{'0': a, '1': b})")
        out.append((_numeric(arrays[keys[0]], f"{terminal(path.name)}[{terminal(keys[0])}]"),
                    f"{terminal(path.name)}[{terminal(keys[0])}]"))
    return out


def tensor_input(arr: np.ndarray, shown: str, t) -> bytes:
    """The bytes of tensor ``t`` from ``arr``: real values quantized with the tensor's scale/zero point, integers
    as they are; values the tensor type cannot hold are refused, never wrapped or clipped silently."""
    if arr.size != t.elements:
        raise BadInput(f"{shown} has {arr.size:,} values, input '{terminal(t.name)}' needs "
                       f"{t.elements:,} ({t.shape_str})", f"save an array of shape {t.shape_str}")
    dtype = t.numpy_dtype
    if dtype is None or np.dtype(dtype).kind not in "iu":
        raise BadInput(f"input '{terminal(t.name)}' is {t.dtype.lower()}; --input fills integer inputs only",
                       "quantize the model to int8 input (fwtool quantize)")
    info = np.iinfo(dtype)
    if arr.dtype.kind == "f":  # real-valued input: quantize with the tensor's own parameters
        bad = ~np.isfinite(arr)
        if bad.any():
            raise BadInput(f"{shown} has {int(bad.sum()):,} NaN/infinite value(s), the first at "
                           f"index {_first(bad)}", "replace them with real numbers")
        scale, zp = (t.scale[0], t.zero_point[0]) if t.scale else (1.0, 0)
        with np.errstate(over="ignore", invalid="ignore"):
            q = np.round(arr.astype(np.float64) / scale) + zp
        out = (q < info.min) | (q > info.max)
        if out.any():
            raise BadInput(f"{shown}: {int(out.sum()):,} value(s) fall outside {t.dtype.lower()} after "
                           f"quantizing (scale {scale:.6g}, zero point {zp}), the first at index "
                           f"{_first(out)} ({arr[out][0]:.6g})",
                           "give values in the range the model was quantized for")
        return q.astype(dtype).tobytes()
    wide = arr.astype(np.int64) if arr.dtype != np.uint64 else arr
    out = (wide < info.min) | (wide > info.max) if arr.dtype != np.uint64 else wide > info.max
    if out.any():
        raise BadInput(f"{shown}: {int(out.sum()):,} value(s) do not fit {t.dtype.lower()} "
                       f"[{info.min}, {info.max}], the first at index {_first(out)} ({int(arr[out][0])})",
                       f"save values in [{info.min}, {info.max}] (or real values as float32 to be quantized)")
    return arr.astype(dtype).tobytes()


def read_input(path: "Path | list[Path] | None", model: Model) -> tuple[bytes, str]:
    """The bytes of every input tensor, back to back in input order (what the firmware copies into the inputs),
    from ``--input`` (see :func:`input_arrays`); ``(b"", "zeros")`` without one."""
    arrays = input_arrays(path, model)
    if not arrays:
        return b"", "zeros"
    data = b"".join(tensor_input(arr, shown, t) for (arr, shown), t in zip(arrays, model.inputs))
    return data, " + ".join(shown for _, shown in arrays)

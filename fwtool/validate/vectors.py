"""Validate's input vectors: N seeded random values over each input type's full range, or loaded from files.

A model with several inputs gets one array per input (N vectors each): ``--inputs`` repeated once per input in
input order, or one .npz keyed by input name or index. Float arrays are quantized with that input's own scale/zero
point. A vector as the firmware embeds it is every input's bytes back to back; the firmware reports the SHA-256 of
all vectors (``FWT:DONE inputs=``), computed the same way as :func:`vectors_sha`.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from fwtool.core.errors import BadInput
from fwtool.model.tflite import Tensor

DEFAULT_COUNT = 20


def _int_info(t: Tensor):
    return np.iinfo(t.numpy_dtype)


def random_inputs(t: Tensor, count: int, seed: int = 0) -> np.ndarray:
    """``count`` vectors of uniformly random values over the tensor type's whole range (reproducible by seed)."""
    info = _int_info(t)
    rng = np.random.default_rng(seed)
    return rng.integers(int(info.min), int(info.max) + 1, size=(count, *t.shape), dtype=np.int64).astype(t.numpy_dtype)


def _read(path: Path):
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"inputs file {path} does not exist", "pass a .npy file saved with numpy.save()")
    try:
        arr = np.load(path, allow_pickle=False)
        if isinstance(arr, np.lib.npyio.NpzFile):
            with arr:
                return {k: arr[k] for k in arr.keys()}
        return arr
    except Exception as e:
        raise BadInput(f"cannot read {path.name} as a .npy/.npz array ({type(e).__name__})",
                       "save the inputs with numpy.save() (or numpy.savez() keyed by input name or index); "
                       "pickled objects are not accepted") from e


def load_inputs(path: Path, t: Tensor, limit: int | None = None, arr: np.ndarray | None = None,
                shown: str | None = None) -> np.ndarray:
    """Vectors from a .npy: shape = the input's (one vector) or (N, ...) with the input's element count each."""
    path = Path(path)
    shown = shown or path.name
    if arr is None:
        arr = _read(path)
        if isinstance(arr, dict):
            raise BadInput(f"{path.name} is an .npz archive; for one input pass a .npy",
                           "numpy.save() the input array, or key the .npz by input name or index")
    if arr.dtype.kind not in "iuf" or arr.size == 0:
        raise BadInput(f"{shown} holds {arr.dtype} values", "save a non-empty numeric array")
    n_el = t.elements
    if list(arr.shape) == list(t.shape) or arr.size == n_el:
        arr = arr.reshape(1, n_el)
    elif arr.ndim >= 2 and int(np.prod(arr.shape[1:])) == n_el:
        arr = arr.reshape(arr.shape[0], n_el)
    else:
        raise BadInput(f"{shown} has shape {list(arr.shape)}; input '{t.name}' needs {t.shape_str} per vector",
                       f"save an array of shape (N, {', '.join(map(str, t.shape))}) or ({t.shape_str})")
    info = _int_info(t)
    if arr.dtype.kind == "f":  # real values: quantize with the tensor's own parameters
        scale, zp = (t.scale[0], t.zero_point[0]) if t.scale else (1.0, 0)
        arr = np.clip(np.round(arr / scale) + zp, info.min, info.max)
    elif arr.min() < info.min or arr.max() > info.max:
        raise BadInput(f"{shown} has values outside {t.dtype.lower()} ({int(arr.min())}..{int(arr.max())})",
                       "pass real (float) values to be quantized, or already-quantized values in range")
    if limit:
        arr = arr[:limit]
    return arr.astype(t.numpy_dtype).reshape(arr.shape[0], *t.shape)


def _names(tensors: list[Tensor]) -> str:
    return ", ".join(f"{i} '{t.name}' {t.shape_str}" for i, t in enumerate(tensors))


def load_all(paths: list[Path], tensors: list[Tensor], limit: int | None = None) -> list[np.ndarray]:
    """One (N, *shape) array per input: one file per input (in order), or one .npz keyed by name or index."""
    if len(paths) == 1:
        data = _read(paths[0])
        if isinstance(data, dict):
            out = []
            for i, t in enumerate(tensors):
                key = next((k for k in (t.name, str(i), f"arr_{i}", f"input_{i}") if k in data), None)
                if key is None:
                    raise BadInput(f"{Path(paths[0]).name} has no array for input {i} '{t.name}' (it holds: "
                                   f"{', '.join(data) or 'nothing'})",
                                   "key the arrays by input name or index: numpy.savez(f, **{'0': a, '1': b})")
                out.append(load_inputs(paths[0], t, limit, data[key], f"{Path(paths[0]).name}[{key}]"))
        elif len(tensors) == 1:
            out = [load_inputs(paths[0], tensors[0], limit, data)]
        else:
            raise BadInput(f"the model has {len(tensors)} inputs ({_names(tensors)}); one --inputs array was given",
                           "give --inputs once per input, in input order, or one .npz keyed by input name or index")
    elif len(paths) != len(tensors):
        raise BadInput(f"{len(paths)} --inputs files for a model with {len(tensors)} input(s) ({_names(tensors)})",
                       "give --inputs once per input, in input order (or one .npz keyed by input name or index)")
    else:
        out = [load_inputs(p, t, limit) for p, t in zip(paths, tensors)]
    counts = {len(a) for a in out}
    if len(counts) != 1:
        raise BadInput(f"the --inputs arrays hold different numbers of vectors ({', '.join(str(len(a)) for a in out)})",
                       "give the same number of vectors (first axis) for every input")
    return out


def vectors_sha(vectors) -> str:
    """The short SHA-256 of all vectors' bytes back to back, each vector = every input's bytes in input order
    (what the firmware prints as ``inputs=``). ``vectors``: one array per input, or one array (single input)."""
    return hashlib.sha256(b"".join(as_bytes(vectors))).hexdigest()[:12]


def as_bytes(vectors) -> list[bytes]:
    """One ``bytes`` per vector (every input's bytes back to back), as the build embeds them
    (``BuildOptions.inputs``)."""
    per_input = [vectors] if isinstance(vectors, np.ndarray) else list(vectors)
    return [b"".join(np.ascontiguousarray(a[v]).tobytes() for a in per_input) for v in range(len(per_input[0]))]


def make_vectors(tensors, inputs=None, count: int | None = None, seed: int = 0) -> tuple[list[np.ndarray], str]:
    """One (N, *shape) array per input tensor (``tensors``: the model's inputs, or one Tensor) and a description
    of where they came from. Random vectors: input i uses seed ``seed + i`` (input 0: the same as before)."""
    tensors = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    paths = [] if inputs is None else [Path(p) for p in (inputs if isinstance(inputs, (list, tuple)) else [inputs])]
    if paths:
        vectors = load_all(paths, tensors, count)
        return vectors, f"{' + '.join(p.name for p in paths)} ({len(vectors[0])} vectors)"
    n = count or DEFAULT_COUNT
    kinds = "/".join(sorted({t.dtype.lower() for t in tensors}))
    return ([random_inputs(t, n, seed + i) for i, t in enumerate(tensors)],
            f"random {kinds} (seed {seed}, {n} vectors)")

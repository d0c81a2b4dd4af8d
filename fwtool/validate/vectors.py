"""Validate's input vectors: N seeded random values over the input type's full range, or loaded from a .npy.

Float arrays are quantized with input 0's own scale/zero point; the firmware reports the SHA-256 of the vectors it
embedded (``FWT:DONE inputs=``), computed the same way as :func:`vectors_sha`.
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


def load_inputs(path: Path, t: Tensor, limit: int | None = None) -> np.ndarray:
    """Vectors from a .npy: shape = the input's (one vector) or (N, ...) with the input's element count each."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"inputs file {path} does not exist", "pass a .npy file saved with numpy.save()")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as e:
        raise BadInput(f"cannot read {path.name} as a .npy array ({type(e).__name__})",
                       "save the inputs with numpy.save(); pickled objects and .npz are not accepted") from e
    if arr.dtype.kind not in "iuf" or arr.size == 0:
        raise BadInput(f"{path.name} holds {arr.dtype} values", "save a non-empty numeric array")
    n_el = t.elements
    if list(arr.shape) == list(t.shape) or arr.size == n_el:
        arr = arr.reshape(1, n_el)
    elif arr.ndim >= 2 and int(np.prod(arr.shape[1:])) == n_el:
        arr = arr.reshape(arr.shape[0], n_el)
    else:
        raise BadInput(f"{path.name} has shape {list(arr.shape)}; input '{t.name}' needs {t.shape_str} per vector",
                       f"save an array of shape (N, {', '.join(map(str, t.shape))}) or ({t.shape_str})")
    info = _int_info(t)
    if arr.dtype.kind == "f":  # real values: quantize with the tensor's own parameters
        scale, zp = (t.scale[0], t.zero_point[0]) if t.scale else (1.0, 0)
        arr = np.clip(np.round(arr / scale) + zp, info.min, info.max)
    elif arr.min() < info.min or arr.max() > info.max:
        raise BadInput(f"{path.name} has values outside {t.dtype.lower()} ({int(arr.min())}..{int(arr.max())})",
                       "pass real (float) values to be quantized, or already-quantized values in range")
    if limit:
        arr = arr[:limit]
    return arr.astype(t.numpy_dtype).reshape(arr.shape[0], *t.shape)


def vectors_sha(vectors: np.ndarray) -> str:
    """The short SHA-256 of the vectors' bytes back to back (what the firmware prints as ``inputs=``)."""
    return hashlib.sha256(np.ascontiguousarray(vectors).tobytes()).hexdigest()[:12]


def as_bytes(vectors: np.ndarray) -> list[bytes]:
    """One ``bytes`` per vector, as the build embeds them (``BuildOptions.inputs``)."""
    return [np.ascontiguousarray(v).tobytes() for v in vectors]


def make_vectors(t: Tensor, inputs: Path | None = None, count: int | None = None,
                 seed: int = 0) -> tuple[np.ndarray, str]:
    """The vectors for input ``t`` and a description of where they came from."""
    if inputs is not None:
        vectors = load_inputs(inputs, t, count)
        return vectors, f"{Path(inputs).name} ({len(vectors)} vectors)"
    n = count or DEFAULT_COUNT
    return random_inputs(t, n, seed), f"random {t.dtype.lower()} (seed {seed}, {n} vectors)"

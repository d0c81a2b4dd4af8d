"""Sample data for quantization and evaluation: .npy/.npz files (or folders of them) -> (N, *input shape) float32.

A file may hold one sample or a batch; size-1 axes may differ from the model's input (124x129 data for a
124x129x1 input). Calibration samples are picked evenly over the data (datasets are often sorted by class).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from fwtool.core import userfile
from fwtool.core.errors import BadInput

DATA_SUFFIXES = (".npy", ".npz")
MAX_DATA_FILE = 4 * 1024 * 1024 * 1024  # representative/evaluation data: large, but not a device or FIFO


def _fmt(shape) -> str:
    return "x".join(str(d) for d in shape) or "scalar"


def _load_one(path: Path) -> np.ndarray:
    userfile.check(path, "data file", MAX_DATA_FILE, "pass .npy/.npz files (numpy.save / numpy.savez)")
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as z:
                keys = list(z.keys())
                if "x" in keys:
                    return z["x"]
                if len(keys) == 1:
                    return z[keys[0]]
                raise BadInput(f"{path.name} holds arrays {', '.join(keys)}; fwtool does not know which are the inputs",
                               "name the input array 'x' (numpy.savez(path, x=inputs)) or save it alone as .npy")
        return np.load(path, allow_pickle=False)
    except BadInput:
        raise
    except Exception as e:
        raise BadInput(f"cannot read {path} as a numpy array ({type(e).__name__})",
                       "save inputs with numpy.save()/numpy.savez(); pickled objects are not accepted") from e


def load_arrays(path: Path, what: str) -> list[tuple[Path, np.ndarray]]:
    """Arrays from a .npy/.npz file or every .npy/.npz under a folder (sorted by path)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in DATA_SUFFIXES)
        if not files:
            raise BadInput(f"{what} folder {path} has no .npy/.npz files", "put the input arrays there as .npy files")
    elif path.is_file():
        if path.suffix.lower() not in DATA_SUFFIXES:
            raise BadInput(f"{what} {path.name} is not a .npy/.npz file",
                           "save the inputs with numpy.save('data.npy', x) (shape N x the model's input)")
        files = [path]
    else:  # missing, FIFO, device, symlink loop: userfile says which
        userfile.check(path, what, MAX_DATA_FILE, "pass a .npy/.npz file or a folder of them")
        raise BadInput(f"{what} {path} is not a file or folder", "pass a .npy/.npz file or a folder of them")
    return [(f, _load_one(f)) for f in files]


def _squeezed(shape) -> list[int]:
    return [int(d) for d in shape if d != 1]


def as_samples(arrays: list[tuple[Path, np.ndarray]], sample_shape: tuple[int, ...], what: str) -> np.ndarray:
    """Stack arrays into (N, *sample_shape) float32; a file may hold one sample or a batch of them.

    Size-1 axes may differ (124x129 data for a 124x129x1 input); anything else is refused naming both shapes.
    """
    want = tuple(int(d) for d in sample_shape)
    out = []
    for path, arr in arrays:
        if arr.dtype.kind not in "fiub":
            raise BadInput(f"{what} {path.name} has dtype {arr.dtype}, not numbers",
                           "save a numeric array (float32 as fed to the model in training)")
        shape = tuple(arr.shape)
        if shape[1:] == want:
            batch = arr
        elif shape == want:
            batch = arr[None]
        elif len(shape) >= 1 and _squeezed(shape[1:]) == _squeezed(want):
            batch = arr.reshape((shape[0],) + want)
        elif _squeezed(shape) == _squeezed(want):
            batch = arr.reshape((1,) + want)
        else:
            raise BadInput(f"{what} {path.name} holds samples of shape {_fmt(shape[1:])} (array {_fmt(shape)}), "
                           f"but the model input is {_fmt(want)} (batch excluded)",
                           f"save the data as an array of shape N x {_fmt(want)}, fed exactly as in training")
        out.append(np.asarray(batch, dtype=np.float32))
    x = np.concatenate(out) if len(out) > 1 else out[0]
    if not np.isfinite(x).all():
        raise BadInput(f"{what} contains NaN or infinite values", "clean the data before quantizing")
    return x


def pick(x: np.ndarray, n: int, source: str) -> np.ndarray:
    """``n`` samples spread evenly over ``x`` (deterministic)."""
    if len(x) < n:
        raise BadInput(f"{source} has {len(x)} samples; the representative dataset needs at least {n}",
                       f"give more samples (a few hundred spread over all classes), or --samples {len(x)} "
                       "to calibrate on fewer (ranges may be clipped)")
    idx = np.unique(np.linspace(0, len(x) - 1, n).round().astype(np.int64))
    return x[idx]

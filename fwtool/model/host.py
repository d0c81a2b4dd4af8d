"""The host TFLM interpreter (the ``tflite-micro`` wheel: TFLM itself, 64-bit, reference kernels), in one place.

Arena measurement, validate's reference (``--reference tflm``) and quantize's int8 evaluation all run models
through this module:

* :class:`HostInterpreter` wraps one interpreter (arena size, inputs, invoke, outputs, arena used);
* :func:`quiet_native_output` hides (or logs) what native code writes straight to fd 1/2 while it runs;
* :func:`run_child` / :func:`contained_outputs` run it in a child process, so that a native crash (SIGSEGV,
  SIGFPE, SIGABRT are seen on malformed models) becomes one :func:`crash_error` instead of killing fwtool.

The child entry point is ``python -m fwtool.model.host outputs MODEL VECTORS.npz OUT ARENA N_OUTPUTS`` (VECTORS.npz:
one array ``in<i>`` per model input, N vectors each).
"""
from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from fwtool.core import runner
from fwtool.core.errors import BadInput, FwtoolError, MissingTool

DEFAULT_ARENA = 16 * 1024 * 1024  # enough for any model a microcontroller can hold
CHILD_TIMEOUT_S = 600.0
_ERROR_FILE = "error.txt"


def load_runtime():
    """The ``tflite_micro`` runtime module, or a MissingTool saying how to get it."""
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise MissingTool("the tflite-micro Python package is missing (the host TFLM interpreter)",
                          "pip install tflite-micro") from e
    return runtime


@contextlib.contextmanager
def quiet_native_output(log_path: Path | None = None):
    """Send what native code (TFLM, TensorFlow) writes to fd 1/2 to ``log_path`` (default: nowhere) while the
    block runs; Python warnings are silenced too. ``FWTOOL_DEBUG=1`` leaves everything visible."""
    if os.environ.get("FWTOOL_DEBUG"):
        yield
        return
    for s in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            s.flush()
    saved = [os.dup(1), os.dup(2)]
    target = (os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644) if log_path is not None
              else os.open(os.devnull, os.O_WRONLY))
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for s in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                s.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, target):
            os.close(fd)


class HostInterpreter:
    """One TFLM interpreter over a model's bytes. Errors (AllocateTensors, Invoke) raise the runtime's own
    exceptions; run it through :func:`contained_outputs` when a native crash must not end fwtool."""

    def __init__(self, model_data: bytes, arena_size: int = DEFAULT_ARENA):
        self.arena_size = arena_size
        self._interp = load_runtime().Interpreter.from_bytes(bytes(model_data), arena_size=arena_size)

    def set_input(self, index: int, value: np.ndarray) -> None:
        self._interp.set_input(value, index)

    def invoke(self) -> None:
        self._interp.invoke()

    def output(self, index: int) -> np.ndarray:
        return np.asarray(self._interp.get_output(index))

    def run(self, inputs: Sequence[np.ndarray], n_outputs: int) -> list[np.ndarray]:
        """Set ``inputs`` (in order), invoke once, return the first ``n_outputs`` outputs."""
        for i, value in enumerate(inputs):
            self.set_input(i, value)
        self.invoke()
        return [self.output(i) for i in range(n_outputs)]

    def arena_used(self) -> int | None:
        """Bytes of the arena in use (TFLM's allocation report; None if it gives none). Call after invoke()."""
        with tempfile.TemporaryDirectory(prefix="fwtool-host-") as tmp:
            log = Path(tmp) / "allocations.txt"
            with quiet_native_output(log):
                self._interp.print_allocations()
            text = log.read_text(errors="replace") if log.is_file() else ""  # FWTOOL_DEBUG: printed instead
            m = re.search(r"Arena allocation total (\d+) bytes", text)
        return int(m.group(1)) if m else None


# ---- the contained run ---------------------------------------------------------------------------------------
@dataclass
class ChildResult:
    returncode: int
    stdout: str
    stderr: str

    @property
    def signal(self) -> str | None:
        """The signal that killed the child (``SIGSEGV``…), or None if it exited."""
        if self.returncode >= 0:
            return None
        try:
            return signal.Signals(-self.returncode).name
        except ValueError:
            return f"signal {-self.returncode}"


def child_command(module: str, args: Sequence[object]) -> list[str]:
    """The command line of a child Python process running ``module`` (a seam for tests)."""
    return [sys.executable, "-m", module, *map(str, args)]


def run_child(module: str, args: Sequence[object], timeout: float = CHILD_TIMEOUT_S) -> ChildResult:
    """Run ``python -m module args`` to its end; never raises for how it ended (see :attr:`ChildResult.signal`)."""
    proc = runner.capture(child_command(module, args), timeout=timeout, check=False)
    return ChildResult(proc.returncode, proc.stdout or "", proc.stderr or "")


def crash_error(sig: str) -> FwtoolError:
    return BadInput(f"the TFLM interpreter crashed on this model ({sig}) — the model is malformed or uses an "
                    "unsupported op version", "check the model with 'fwtool inspect'; re-export or re-quantize it")


class InterpreterFailed(Exception):
    """The interpreter reported an error (AllocateTensors/Invoke failed); ``detail`` is its first line."""

    def __init__(self, detail: str):
        super().__init__(detail)
        self.detail = detail


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:160] if text else type(e).__name__


def contained_outputs(model_data: bytes, vectors: "np.ndarray | Sequence[np.ndarray]", n_outputs: int,
                      arena_size: int | None = None) -> list[list[np.ndarray]]:
    """Per vector, the model's first ``n_outputs`` outputs (as the interpreter returns them), computed in a child
    process. ``vectors``: one array (N, *input 0 shape), or one such array per model input (same N, input order).
    A native crash raises :func:`crash_error`; an interpreter error raises :class:`InterpreterFailed`."""
    load_runtime()  # a missing package is a MissingTool here, not a child's import error
    per_input = [vectors] if isinstance(vectors, np.ndarray) else list(vectors)
    with tempfile.TemporaryDirectory(prefix="fwtool-host-") as tmp:
        folder = Path(tmp)
        (folder / "model.tflite").write_bytes(bytes(model_data))
        np.savez(folder / "vectors.npz", **{f"in{i}": np.ascontiguousarray(a) for i, a in enumerate(per_input)})
        res = run_child("fwtool.model.host", ["outputs", folder / "model.tflite", folder / "vectors.npz",
                                              folder / "outputs.npz", arena_size or DEFAULT_ARENA, n_outputs])
        if res.signal:
            raise crash_error(res.signal)
        error = folder / _ERROR_FILE
        if error.is_file():
            raise InterpreterFailed(error.read_text(errors="replace").strip() or "unknown error")
        if res.returncode != 0 or not (folder / "outputs.npz").is_file():
            tail = (res.stderr or res.stdout).strip().splitlines()[-1:] or [f"exit {res.returncode}"]
            raise InterpreterFailed(tail[0][:160])
        with np.load(folder / "outputs.npz", allow_pickle=False) as z:
            return [[np.array(z[f"v{v}_t{t}"]) for t in range(n_outputs)] for v in range(len(per_input[0]))]


def _outputs_main(model_file: str, vectors_file: str, out_file: str, arena: str, n_outputs: str) -> int:
    out = Path(out_file)
    try:
        data = Path(model_file).read_bytes()
        with np.load(vectors_file, allow_pickle=False) as z:
            per_input = [z[f"in{i}"] for i in range(len(z.files))]
        with quiet_native_output():
            interp = HostInterpreter(data, int(arena))
            results = {}
            for v in range(len(per_input[0])):
                for t, value in enumerate(interp.run([a[v] for a in per_input], int(n_outputs))):
                    results[f"v{v}_t{t}"] = value
    except Exception as e:  # the interpreter's own error (not a crash): reported to the parent
        (out.parent / _ERROR_FILE).write_text(_first_line(e))
        return 2
    np.savez(out, **results)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) == 6 and argv[0] == "outputs":
        return _outputs_main(*argv[1:])
    print("usage: python -m fwtool.model.host outputs MODEL VECTORS OUT ARENA N_OUTPUTS", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""``fwtool validate``: run the same input vectors on the target and through the host reference, compare outputs.

1. Input vectors: ``--inputs file.npy`` (float arrays are quantized with input 0's scale/zero point) or N seeded
   random values over the input type's full range.
2. The validation firmware (templates/<family>/apps/validate) embeds them, runs each once and prints every output
   tensor (``FWT:OUT v= t= us= q=``, then ``FWT:DONE n= inputs=``; fwtool/protocol.py).
3. It runs on the virtual board (rp2040js; single-core TFLM) or on a real board (flashed, then read over its port).
4. The host reference runs the same vectors: the TFLM Python interpreter (``tflite-micro``, reference kernels), or
   TensorFlow Lite (``--reference tflite``). ``--reference-model`` compares against a different .tflite.
5. Per output tensor: max |Δ| and mean |Δ| in quantized steps, top-1 agreement, cosine similarity; the thresholds
   ``--max-diff`` and ``--min-agreement`` decide the exit code (8 when not met).

Top-1 agreement: the index of the largest value per vector; for a one-value output (a sigmoid detector) the
decision ``q >= middle of the type's range`` (int8: q >= 0, i.e. 0.5 for a sigmoid with scale 1/256, zp -128).
Cosine similarity: of all vectors' zero-point-corrected values, concatenated.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from fwtool.core import protocol
from fwtool.core.errors import BadInput, DoesNotFit, Exit, FwtoolError, MissingTool
from fwtool.model.tflite import Model, Tensor, load_model

DEFAULT_COUNT = 20
INT_TYPES = ("INT8", "UINT8", "INT16", "INT32")
REFERENCE_ARENA = 16 * 1024 * 1024


@dataclass
class ValidateOptions:
    model: Path
    board: str = "pico"
    inputs: Path | None = None
    count: int | None = None  # random vectors (default 20), or the first N of --inputs
    seed: int = 0
    reference: str = "tflm"  # tflm | tflite
    reference_model: Path | None = None
    target: str = "emulator"  # emulator | board
    port: str | None = None  # board: serial port or pyserial URL (default: the one the flashed board appears on)
    serial: str | None = None  # board: USB serial number
    flash: bool = True  # board: flash the validation firmware first
    max_diff: int = 1
    min_agreement: float = 100.0  # percent
    budget_ms: float | None = None
    out_dir: Path | None = None
    arena: int | None = None
    jobs: int | None = None
    timeout: float = 300.0  # seconds for the run on the target
    tflm_cores: int | None = None  # default: 1 on the emulator, 2 on a board


# ---- inputs ----------------------------------------------------------------------------------------------------
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
    return hashlib.sha256(np.ascontiguousarray(vectors).tobytes()).hexdigest()[:12]


# ---- host reference --------------------------------------------------------------------------------------------
def reference_outputs(model: Model, vectors: np.ndarray, backend: str = "tflm") -> list[list[np.ndarray]]:
    """Per vector, per output tensor: the flattened integer outputs of the host interpreter."""
    if backend == "tflm":
        return _tflm_outputs(model, vectors)
    if backend == "tflite":
        return _tflite_outputs(model, vectors)
    raise BadInput(f"unknown reference '{backend}'", "use --reference tflm or --reference tflite")


def _tflm_outputs(model: Model, vectors: np.ndarray) -> list[list[np.ndarray]]:
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as e:  # pragma: no cover - a dependency of the package
        raise MissingTool("the tflite-micro Python package is missing (the host reference)",
                          "pip install tflite-micro") from e
    from fwtool.model.arena import _quiet_fds

    out = []
    with _quiet_fds():
        try:
            interp = runtime.Interpreter.from_bytes(model.data, arena_size=REFERENCE_ARENA)
            for v in vectors:
                interp.set_input(v.reshape(model.inputs[0].shape), 0)
                interp.invoke()
                out.append([np.asarray(interp.get_output(i)).reshape(-1).astype(np.int64)
                            for i in range(len(model.outputs))])
        except Exception as e:
            raise FwtoolError(f"the TFLM reference interpreter could not run {model.path.name}: "
                              f"{str(e).splitlines()[0][:160] if str(e) else type(e).__name__}",
                              "check the model with 'fwtool inspect'") from e
    return out


def _tflite_outputs(model: Model, vectors: np.ndarray) -> list[list[np.ndarray]]:
    """TensorFlow Lite with its reference kernels (BUILTIN_REF: no XNNPACK, whose int8 results may differ)."""
    import os
    import warnings

    from fwtool.model.arena import _quiet_fds

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with _quiet_fds(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import tensorflow as tf  # optional, heavy
            interp = tf.lite.Interpreter(
                model_content=model.data,
                experimental_op_resolver_type=tf.lite.experimental.OpResolverType.BUILTIN_REF)
    except ImportError as e:
        raise MissingTool("--reference tflite needs TensorFlow, which is not installed",
                          "pip install 'fwtool[tf]' (tensorflow-cpu), or use the default --reference tflm") from e
    interp.allocate_tensors()
    inp = interp.get_input_details()
    by_index = {d["index"]: d for d in interp.get_output_details()}
    in_index = next((d["index"] for d in inp if d["index"] == model.inputs[0].index), inp[0]["index"])
    out = []
    for v in vectors:
        interp.set_tensor(in_index, v.reshape(model.inputs[0].shape))
        interp.invoke()
        out.append([np.asarray(interp.get_tensor(by_index[t.index]["index"] if t.index in by_index else t.index))
                    .reshape(-1).astype(np.int64) for t in model.outputs])
    return out


# ---- device output ---------------------------------------------------------------------------------------------
@dataclass
class DeviceRun:
    outputs: list[list[np.ndarray]]  # per vector, per output tensor
    us: list[int]  # Invoke() time per vector
    banner: dict
    inputs_sha: str | None


def parse_device_lines(lines: list[str], n_vectors: int, n_outputs: int) -> DeviceRun:
    """The last complete FWT:BOOT ... FWT:DONE run in ``lines`` (a board may print several)."""
    banner: dict = {}
    cur: dict[tuple[int, int], protocol.Output] = {}
    errors: list[str] = []
    done = None
    for line in lines:
        rec = protocol.parse_line(line)
        if isinstance(rec, protocol.Banner):
            banner, cur = rec.fields, {}
        elif isinstance(rec, protocol.Output):
            cur[(rec.v, rec.t)] = rec
        elif isinstance(rec, protocol.FirmwareError):
            errors.append(rec.text)
        elif isinstance(rec, protocol.Done):
            done = (rec, dict(cur), dict(banner))
    if done is None:
        if errors:
            raise FwtoolError(f"the validation firmware reported: {errors[-1]}", "fix that, then re-run validate")
        got = len({v for v, _ in cur})
        raise FwtoolError(f"the validation firmware did not finish (FWT:DONE missing; {got} of {n_vectors} vectors "
                          "printed)", "raise --timeout, or check the serial output with 'fwtool monitor'",
                          Exit.TIMEOUT)
    rec, outs, banner = done
    if rec.n != n_vectors:
        raise FwtoolError(f"the board ran {rec.n} vectors, this validation has {n_vectors}: it runs another "
                          "validation firmware", "let validate flash the board (drop --no-flash)", Exit.MISMATCH)
    missing = [(v, t) for v in range(n_vectors) for t in range(n_outputs) if (v, t) not in outs]
    if missing:
        v, t = missing[0]
        raise FwtoolError(f"the validation output misses {len(missing)} tensor line(s) (first: vector {v}, "
                          f"output {t})", "the serial stream lost data; re-run", Exit.FAILED)
    outputs = [[np.asarray(outs[(v, t)].q, dtype=np.int64) for t in range(n_outputs)] for v in range(n_vectors)]
    us = [outs[(v, 0)].us for v in range(n_vectors)]
    return DeviceRun(outputs, us, banner, getattr(rec, "inputs", None))


# ---- metrics ---------------------------------------------------------------------------------------------------
def top1(values: np.ndarray, dtype: str) -> int:
    """Index of the largest value; for one value, the decision value >= the middle of the type's range."""
    if values.size == 1:
        info = np.iinfo(np.dtype(dtype.lower()))
        return int(values[0] >= (int(info.min) + int(info.max) + 1) // 2)
    return int(np.argmax(values))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 and nb == 0.0:
        return 1.0
    if na == 0.0 or nb == 0.0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def compare_output(index: int, tensor: Tensor, device: list[np.ndarray], reference: list[np.ndarray],
                   max_diff: int, min_agreement: float) -> dict:
    """Metrics for one output tensor over all vectors (device[v], reference[v]: flat int arrays)."""
    n = len(reference)
    result = {"index": index, "name": tensor.name, "shape": tensor.shape, "dtype": tensor.dtype.lower(),
              "elements": tensor.elements, "vectors": n, "problems": []}
    sizes = {a.size for a in device} | {b.size for b in reference}
    if len(sizes) != 1 or any(a.size != b.size for a, b in zip(device, reference)):
        result.update({"max_abs_diff": None, "mean_abs_diff": None, "top1_agreement": 0.0, "cosine": None,
                       "pass": False})
        result["problems"].append(f"sizes differ: device {sorted({a.size for a in device})} vs reference "
                                  f"{sorted({b.size for b in reference})} values")
        return result
    d = np.stack(device).astype(np.int64)
    r = np.stack(reference).astype(np.int64)
    diff = np.abs(d - r)
    zp = tensor.zero_point[0] if tensor.zero_point else 0
    agree = sum(top1(d[i], tensor.dtype) == top1(r[i], tensor.dtype) for i in range(n))
    result.update({
        "max_abs_diff": int(diff.max()), "mean_abs_diff": round(float(diff.mean()), 6),
        "top1_agreement": round(100.0 * agree / n, 2), "top1_rule": "argmax" if tensor.elements > 1 else "q >= mid",
        "cosine": round(cosine((d - zp).reshape(-1).astype(np.float64), (r - zp).reshape(-1).astype(np.float64)), 6),
        "differing_values": int((diff > 0).sum()), "distinct_reference_values": int(np.unique(r).size),
    })
    if result["max_abs_diff"] > max_diff:
        worst = np.unravel_index(int(np.argmax(diff)), diff.shape)
        result["problems"].append(f"max |Δ| {result['max_abs_diff']} > {max_diff} (vector {worst[0]}, value "
                                  f"{worst[1]}: device {int(d[worst])}, reference {int(r[worst])})")
    if result["top1_agreement"] < min_agreement:
        result["problems"].append(f"top-1 agreement {result['top1_agreement']:g} % < {min_agreement:g} %")
    result["pass"] = not result["problems"]
    return result


# ---- the whole run ---------------------------------------------------------------------------------------------
def _check_model(model: Model, what: str) -> None:
    if len(model.inputs) != 1:
        raise BadInput(f"{what} has {len(model.inputs)} inputs; validate feeds input 0 only",
                       "validate a single-input model")
    for t in [*model.inputs, *model.outputs]:
        if t.dtype not in INT_TYPES:
            raise BadInput(f"{what} tensor '{t.name}' is {t.dtype.lower()}; validate compares quantized integer "
                           "tensors", "quantize the model to int8 ('fwtool quantize')")


def _check_reference_signature(model: Model, ref: Model) -> list[str]:
    if list(ref.inputs[0].shape) != list(model.inputs[0].shape) or ref.inputs[0].dtype != model.inputs[0].dtype:
        raise BadInput(f"reference model input {ref.inputs[0].dtype.lower()}:{ref.inputs[0].shape_str} differs from "
                       f"the firmware's {model.inputs[0].dtype.lower()}:{model.inputs[0].shape_str}",
                       "pass a reference model with the same input")
    problems = []
    if len(ref.outputs) != len(model.outputs):
        problems.append(f"the reference model has {len(ref.outputs)} outputs, the firmware's {len(model.outputs)}")
    return problems


def make_vectors(opts: ValidateOptions, model: Model) -> tuple[np.ndarray, str]:
    t = model.inputs[0]
    if opts.inputs is not None:
        vectors = load_inputs(opts.inputs, t, opts.count)
        return vectors, f"{Path(opts.inputs).name} ({len(vectors)} vectors)"
    n = opts.count or DEFAULT_COUNT
    return random_inputs(t, n, opts.seed), f"random {t.dtype.lower()} (seed {opts.seed}, {n} vectors)"


def _hex_lines(data: bytes, per_line: int = 24) -> list[str]:
    return [",".join(f"0x{b:02x}" for b in data[i:i + per_line]) + "," for i in range(0, len(data), per_line)]


def build_firmware(opts: ValidateOptions, model: Model, vectors: np.ndarray, source: str,
                   on_line: Callable[[str], None] = lambda s: None, on_step: Callable[[str], None] = lambda s: None) -> dict:
    from fwtool.build import flow as build
    from fwtool.core.boards import get_board
    from fwtool.build.families import get_family

    board = get_board(opts.board)
    family = get_family(board.family)
    data = np.ascontiguousarray(vectors).tobytes()
    need = model.size + len(data) + family.code_reserve_bytes
    if need > board.flash_bytes:
        per = vectors[0].nbytes
        fit = max(0, (board.flash_bytes - model.size - family.code_reserve_bytes) // per)
        raise DoesNotFit(f"{len(vectors)} input vectors of {per:,} B + the model need {need:,} B of flash; "
                         f"{board.name} has {board.flash_bytes:,}", f"validate with --count {fit} or fewer")
    cores = opts.tflm_cores or (1 if opts.target == "emulator" else 2)
    suffix = "-validate-emu" if opts.target == "emulator" else "-validate"
    out_dir = Path(opts.out_dir) if opts.out_dir else Path("build") / f"{board.name}{suffix}"
    bopts = build.BuildOptions(board=opts.board, model=Path(opts.model), out_dir=out_dir, arena=opts.arena,
                               app="validate", jobs=opts.jobs, tflm_cores=cores,
                               extra={"template": {"vectors_hex": _hex_lines(data), "vector_count": len(vectors),
                                                   "vector_bytes": vectors[0].nbytes, "vector_source": source,
                                                   "vectors_sha": vectors_sha(vectors)}})
    return build.run(bopts, on_line=on_line, on_step=on_step)


def run_on_emulator(uf2: Path, opts: ValidateOptions, on_line: Callable[[str], None]) -> tuple[list[str], dict]:
    from fwtool import emulator

    result = emulator.run_capture(uf2, count=1, until=protocol.PREFIX_DONE, timeout=opts.timeout,
                                  max_emulated_s=None, on_line=on_line)
    if not result.ok:
        raise emulator.failure(result.reason, result.detail)
    return result.lines, {"kind": "emulator", "emulated_us": result.emulated_us, "wall_s": result.wall_s,
                          "clock_mhz": emulator.CLOCK_MHZ}


def read_port_until_done(port: str, timeout: float, on_line: Callable[[str], None], baud: int = 115200) -> list[str]:
    """Open ``port`` (a device or pyserial URL; opening raises DTR, which starts a validation run over USB) and
    read lines until ``FWT:DONE`` or ``timeout`` seconds."""
    import serial

    try:
        ser = serial.serial_for_url(port, baudrate=baud, timeout=0.2)
    except (serial.SerialException, OSError, ValueError) as e:
        raise FwtoolError(f"cannot open {port}: {e}", "check the port ('fwtool flash --list'), or pass --port",
                          Exit.NO_DEVICE) from e
    lines: list[str] = []
    buf = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            try:
                chunk = ser.read(ser.in_waiting or 1)
            except (serial.SerialException, OSError) as e:
                raise FwtoolError(f"the board went away while validating: {e}", "reconnect it and re-run",
                                  Exit.LOST_DEVICE) from e
            if not chunk:
                continue
            buf += chunk
            *complete, buf = buf.split(b"\n")
            for raw in complete:
                line = raw.rstrip(b"\r").decode("utf-8", errors="replace")
                lines.append(line)
                on_line(line)
                if isinstance(protocol.parse_line(line), protocol.Done):
                    return lines
    finally:
        ser.close()
    return lines


def run_on_board(uf2: Path | None, opts: ValidateOptions, on_line: Callable[[str], None],
                 on_step: Callable[[str], None]) -> tuple[list[str], dict]:
    port = opts.port
    info: dict = {"kind": "board"}
    if opts.flash:
        from fwtool.flash import flash_image

        on_step("flashing the validation firmware")
        res = flash_image(uf2, board=opts.board, serial=opts.serial)
        info.update({"flash_method": res.get("method"), "serial": res.get("serial")})
        port = port or res.get("port")
    if not port:
        from fwtool.core.boards import get_board
        from fwtool.devices.ports import Discovery, choose_port, wanted_for

        port = choose_port(wanted_for(get_board(opts.board), serial=opts.serial), Discovery(), wait_s=5.0).device
    info["port"] = port
    on_step(f"reading results from {port}")
    t0 = time.monotonic()
    lines = read_port_until_done(port, opts.timeout, on_line)
    info["wall_s"] = round(time.monotonic() - t0, 3)
    return lines, info


def run(opts: ValidateOptions, on_line: Callable[[str], None] = lambda s: None,
        on_step: Callable[[str], None] = lambda s: None, on_build_line: Callable[[str], None] = lambda s: None) -> dict:
    """Validate; returns the report (``report["ok"]``, ``report["exit_code"]``). Raises for anything that stops
    the comparison from happening (bad input, build failure, target failure)."""
    from fwtool.emulator import TIMING_NOTE, latency_stats

    if opts.target not in ("emulator", "board"):
        raise BadInput(f"unknown target '{opts.target}'", "use --emulator (default) or a board (--port/--device)")
    model = load_model(opts.model)
    _check_model(model, model.path.name)
    ref_model = model
    warnings: list[str] = []
    problems: list[str] = []
    if opts.reference_model is not None:
        ref_model = load_model(opts.reference_model)
        _check_model(ref_model, ref_model.path.name)
        problems += _check_reference_signature(model, ref_model)
    on_step("preparing input vectors")
    vectors, source = make_vectors(opts, model)

    on_step("running the host reference")
    t0 = time.monotonic()
    reference = reference_outputs(ref_model, vectors, opts.reference)
    ref_s = time.monotonic() - t0

    if opts.target == "board" and not opts.flash:  # the board already runs it: the checksums below confirm
        report_build = {"files": {"uf2": None}, "build": {"tflm_cores": None, "notes": []}}
        uf2 = None
    else:
        on_step("building the validation firmware")
        report_build = build_firmware(opts, model, vectors, source, on_line=on_build_line, on_step=on_step)
        uf2 = Path(report_build["files"]["uf2"])

    on_step("running on the virtual board" if opts.target == "emulator" else "running on the board")
    if opts.target == "emulator":
        lines, target = run_on_emulator(uf2, opts, on_line)
    else:
        lines, target = run_on_board(uf2, opts, on_line, on_step)
    dev = parse_device_lines(lines, len(vectors), len(model.outputs))
    if dev.banner.get("sha256") and not model.sha256.startswith(str(dev.banner["sha256"])):
        raise FwtoolError(f"the board runs model {dev.banner.get('model')} (sha256 {dev.banner['sha256']}), not "
                          f"{model.path.name}", "let validate flash the board (drop --no-flash)", Exit.MISMATCH)
    if not dev.banner.get("sha256") and uf2 is None:
        raise FwtoolError("the board printed no FWT:BOOT banner, so its model cannot be checked",
                          "let validate flash the board (drop --no-flash)", Exit.MISMATCH)
    if dev.inputs_sha != vectors_sha(vectors) and (dev.inputs_sha or uf2 is None):
        raise FwtoolError("the board ran different input vectors than this validation", "let validate flash the "
                          "board (drop --no-flash), with the same --inputs/--count/--seed", Exit.MISMATCH)

    outputs = []
    for i, t in enumerate(model.outputs):
        dev_i = [dev.outputs[v][i] for v in range(len(vectors))]
        if i < len(ref_model.outputs):
            ref_i = [reference[v][i] for v in range(len(vectors))]
        else:
            ref_i = [np.zeros(0, dtype=np.int64) for _ in vectors]
        res = compare_output(i, t, dev_i, ref_i, opts.max_diff, opts.min_agreement)
        if res.get("distinct_reference_values") == 1 and len(vectors) > 1:
            warnings.append(f"output {i}: the reference gives the same value for all {len(vectors)} inputs "
                            f"(q={int(ref_i[0][0]) if ref_i[0].size else '?'}): these inputs barely exercise the "
                            "model; pass representative inputs with --inputs file.npy")
        outputs.append(res)
    ok = not problems and all(o["pass"] for o in outputs)
    lat = latency_stats(dev.us, opts.budget_ms, "emulated" if opts.target == "emulator" else "board")
    if lat is not None and lat.within_budget is False:
        problems.append(f"p95 invoke latency {lat.p95_ms:.2f} ms exceeds the {opts.budget_ms:g} ms budget")
        ok = False
    report = {
        "ok": ok, "exit_code": int(Exit.OK if ok else Exit.MISMATCH),
        "model": {"name": model.name, "file": str(model.path), "sha256": model.sha256},
        "reference": {"backend": opts.reference, "model": ref_model.name, "file": str(ref_model.path),
                      "sha256": ref_model.sha256, "seconds": round(ref_s, 3)},
        "inputs": {"source": source, "count": int(len(vectors)), "dtype": model.inputs[0].dtype.lower(),
                   "shape": model.inputs[0].shape, "sha256": vectors_sha(vectors)},
        "thresholds": {"max_diff": opts.max_diff, "min_agreement": opts.min_agreement, "budget_ms": opts.budget_ms},
        "target": target, "board": opts.board,
        "firmware": {"uf2": str(uf2) if uf2 else None, "tflm_cores": report_build["build"]["tflm_cores"],
                     "notes": report_build["build"].get("notes", []), "banner": dev.banner},
        "outputs": outputs, "latency": lat.to_dict() if lat else None,
        "timing_note": TIMING_NOTE if opts.target == "emulator" else None,
        "problems": problems + [p for o in outputs for p in (f"output {o['index']}: {x}" for x in o["problems"])],
        "warnings": warnings,
    }
    return report

"""Validate's comparison: the FWT:OUT/FWT:DONE lines a target printed -> outputs, then per output tensor max |Δ|
and mean |Δ| in quantized steps, top-1 agreement and cosine similarity against the host reference.

Top-1 agreement: the index of the largest value per vector; for a one-value output (a sigmoid detector) the
decision ``q >= middle of the type's range`` (int8: q >= 0, i.e. 0.5 for a sigmoid with scale 1/256, zp -128).
Cosine similarity: of all vectors' zero-point-corrected values, concatenated.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fwtool.core import protocol
from fwtool.core.errors import Exit, FwtoolError
from fwtool.model.tflite import Tensor


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


def compare_all(tensors: list[Tensor], device: list[list[np.ndarray]], reference: list[list[np.ndarray]],
                max_diff: int, min_agreement: float) -> tuple[list[dict], list[str]]:
    """:func:`compare_output` for every output tensor (device[v][t], reference[v][t]); a reference with fewer
    outputs compares as empty. Returns (results, warnings)."""
    n = len(device)
    results, warnings = [], []
    for i, t in enumerate(tensors):
        dev_i = [device[v][i] for v in range(n)]
        ref_i = [reference[v][i] if i < len(reference[v]) else np.zeros(0, dtype=np.int64) for v in range(n)]
        res = compare_output(i, t, dev_i, ref_i, max_diff, min_agreement)
        if res.get("distinct_reference_values") == 1 and n > 1:
            warnings.append(f"output {i}: the reference gives the same value for all {n} inputs "
                            f"(q={int(ref_i[0][0]) if ref_i[0].size else '?'}): these inputs barely exercise the "
                            "model; pass representative inputs with --inputs file.npy")
        results.append(res)
    return results, warnings

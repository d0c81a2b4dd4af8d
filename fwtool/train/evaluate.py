"""The test report: per-class accuracy float vs int8, confusion matrix, ROC AUC per class, the worst test clips.

int8 scores come from TFLM's interpreter (fwtool.model.host, in a child process) on the int8 inputs the device
computes — the firmware's arithmetic, not the float model's.
"""
from __future__ import annotations

import numpy as np

from fwtool.core.errors import FwtoolError
from fwtool.model import host
from fwtool.model.tflite import Model

WORST = 10


def run_int8(model: Model, q: np.ndarray) -> np.ndarray:
    """Dequantized output 0 of the int8 model on int8 inputs ``q`` [n, ...input shape[1:]]: float32 [n, classes]."""
    ti, to = model.inputs[0], model.outputs[0]
    if len(q) == 0:
        return np.zeros((0, to.elements), np.float32)
    try:
        raw = host.contained_outputs(model.data, np.asarray(q, np.int8).reshape((len(q),) + tuple(ti.shape)), 1)
    except host.InterpreterFailed as e:
        raise FwtoolError(f"the TFLM interpreter could not run the int8 model: {e.detail}",
                          "check the model with 'fwtool inspect'") from e
    s, z = (to.scale[0], to.zero_point[0]) if to.scale else (1.0, 0)
    return np.stack([(per[0].astype(np.float32).reshape(-1) - np.float32(z)) * np.float32(s) for per in raw])


def raw_q(model: Model, q: np.ndarray) -> np.ndarray:
    """Quantized output 0 (as the firmware sees it) on int8 inputs: int [n, classes]."""
    ti = model.inputs[0]
    if len(q) == 0:
        return np.zeros((0, model.outputs[0].elements), np.int64)
    raw = host.contained_outputs(model.data, np.asarray(q, np.int8).reshape((len(q),) + tuple(ti.shape)), 1)
    return np.stack([per[0].astype(np.int64).reshape(-1) for per in raw])


def auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """ROC AUC by the rank statistic (ties count half); None when one side is empty."""
    pos, neg = scores[positive], scores[~positive]
    if len(pos) == 0 or len(neg) == 0:
        return None
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(allv))
    i = 0
    while i < len(allv):  # average ranks over ties
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[i:j + 1] = (i + j) / 2 + 1
        i = j + 1
    r = np.empty(len(allv))
    r[order] = ranks
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def roc_curve(scores: np.ndarray, positive: np.ndarray) -> tuple[list[float], list[float]]:
    thr = np.unique(np.concatenate([[np.inf], scores, [-np.inf]]))[::-1]
    p, n = max(int(positive.sum()), 1), max(int((~positive).sum()), 1)
    tpr = [float(np.sum(scores[positive] >= t) / p) for t in thr]
    fpr = [float(np.sum(scores[~positive] >= t) / n) for t in thr]
    return fpr, tpr


def report(labels: list[str], y: np.ndarray, p_float: np.ndarray, p_int8: np.ndarray, names: list[str]) -> dict:
    """Accuracy (overall and per class) of both models, the int8 confusion matrix (rows: true, columns: predicted),
    one-vs-rest ROC AUC per class (int8 scores), the WORST test clips by their int8 score for the true class."""
    n = len(labels)
    pf, pi = np.argmax(p_float, 1), np.argmax(p_int8, 1)
    conf = np.zeros((n, n), np.int64)
    for t, q in zip(y, pi):
        conf[t, q] += 1
    per = {}
    for i, lab in enumerate(labels):
        m = y == i
        per[lab] = {"clips": int(m.sum()),
                    "float_accuracy": round(100 * float(np.mean(pf[m] == i)), 2) if m.any() else None,
                    "int8_accuracy": round(100 * float(np.mean(pi[m] == i)), 2) if m.any() else None,
                    "roc_auc": (round(a, 4) if (a := auc(p_int8[:, i], m)) is not None else None)}
    true_score = p_int8[np.arange(len(y)), y] if len(y) else np.zeros(0)
    worst = [{"clip": names[k], "label": labels[y[k]], "score": round(float(true_score[k]), 4),
              "predicted": labels[pi[k]], "predicted_score": round(float(p_int8[k, pi[k]]), 4)}
             for k in np.argsort(true_score, kind="stable")[:WORST]]
    return {
        "clips": int(len(y)),
        "float_accuracy": round(100 * float(np.mean(pf == y)), 2) if len(y) else None,
        "int8_accuracy": round(100 * float(np.mean(pi == y)), 2) if len(y) else None,
        "agreement": round(100 * float(np.mean(pf == pi)), 2) if len(y) else None,
        "per_class": per, "confusion": {"labels": labels, "matrix": conf.tolist()}, "worst": worst,
    }
